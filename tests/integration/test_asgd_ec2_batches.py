#!/usr/bin/python3
"""A group of 2,500 on the EC2 stand-in: launches in provider-sized calls (issue 14).

asgd with [provider] type = ec2 and min_size 2,500 against the stand-in
(tests/tools/ec2_standin.py, addresses handed out on loopback), where the
second RunInstances call is answered 503 Unavailable once. asgd must:
  1. reach 2,500 instances in calls of at most 1,000 (EC2's RunInstances
     limit), each call with its own ClientToken; the failed call re-sent alone
     with ITS token and count, the others not held back by it; no instance
     launched twice (the stand-in counts real launches);
  2. take a max_size above the fleet table's old fixed cap (4,096) from the
     file (max_size = 5000 here) and through the API (PATCH to 20,000);
  3. page /api/v1/instances (limit/after) over all 2,500, each exactly once, in
     id order, with a Link to the next page;
  4. scale in by 1,500 in TerminateInstances calls of at most 1,000 ids.
Health comes from EC2 states ([health] type = ec2): no agents are needed.
"""
import json
import os
import sys
import tempfile
import time
import urllib.error
import urllib.request
import warnings

import ec2_standin
from asgd_harness import Group, wait_until

AK = "AKIDASGDEC2BATCH0001"
SK = "asgd/ec2+batch/secret0000000000000000000"
TOKEN = "batch-token-" + str(os.getpid())
N = 2500


def api(port, method, path, body=None, token=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.headers, json.loads(r.read().decode())
    except urllib.error.HTTPError as e:
        return e.code, e.headers, json.loads(e.read().decode() or "null")
    except (urllib.error.URLError, ConnectionError):
        return 0, {}, None


def group_info(port):
    st, _, j = api(port, "GET", "/api/v1/group")
    return j if st == 200 else {}


def main():
    warnings.simplefilter("ignore", ResourceWarning)
    args = ec2_standin.parse_args(["--access-key", AK, "--secret-key", SK,
                                   "--pending-seconds", "1", "--shutdown-seconds", "2",
                                   "--terminated-linger", "5", "--address-base", "127.77.0.1"])
    srv, st = ec2_standin.serve(args)
    url = "http://127.0.0.1:%d" % srv.server_address[1]
    with st.lock:
        st.faults["fail_runs_after"] = 1  # the first call goes through,
        st.faults["fail_runs"] = 1        # the second is refused once
    tokdir = tempfile.mkdtemp(prefix="asgd-batch-")
    tok = os.path.join(tokdir, "api.token")
    with open(tok, "w") as f:
        f.write(TOKEN + "\n")
    os.chmod(tok, 0o600)
    extra = "\n".join([
        f"token_file = {tok}", "",
        "[provider]", "type = ec2", "",
        "[ec2]", "region = us-east-1", "endpoint = " + url,
        "image_id = ami-0abcdef1234567890", "instance_type = t3.micro",
        "subnet_ids = subnet-aaaa1111",
        # one attempt per call: the refused call reaches the controller as a failure
        "retry_base_delay = 20ms", "max_attempts = 1", "call_timeout = 20s",
        "api_calls_per_second = 100", ""])
    # the file takes a max_size above the old 4,096 cap
    g = Group("ec2b", min_size=N, max_size=5000, extra=extra,
              health={"type": "ec2", "grace_period": "10m"})
    saved = dict(os.environ)
    os.environ.update({"AWS_ACCESS_KEY_ID": AK, "AWS_SECRET_ACCESS_KEY": SK,
                       "AWS_EC2_METADATA_DISABLED": "true", "HOME": g.dir})
    for k in ("AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_EC2",
              "AWS_REGION", "AWS_DEFAULT_REGION"):
        os.environ.pop(k, None)
    try:
        t0 = time.monotonic()
        g.start()
        os.environ.clear()
        os.environ.update(saved)

        # 1. 2,500 in calls of <= 1,000, one failed call re-sent alone with its token
        wait_until(lambda: group_info(g.api_port).get("instances") == N, 120, step=0.5,
                   what=f"{N} instances in the group")
        took = time.monotonic() - t0
        with st.lock:
            calls = [dict(c) for c in st.stats["run_calls"]]
            launched = st.stats["launched"]
            live = sum(1 for i in st.instances.values()
                       if i.tags.get("asg:group") == g.name and i.state(st) in
                       ("pending", "running"))
        print(f"{N} instances after {took:.1f}s; RunInstances calls: "
              + ", ".join(f"{c['token'][-6:]}x{c['count']}{'' if c['ok'] else ' FAILED'}"
                          for c in calls))
        assert launched == N and live == N, (launched, live)
        assert all(c["count"] <= 1000 for c in calls), calls
        failed = [c for c in calls if not c["ok"]]
        assert len(failed) == 1 and calls[1] is not None and not calls[1]["ok"], calls
        ok = [c for c in calls if c["ok"]]
        tokens = [c["token"] for c in ok]
        assert len(tokens) == len(set(tokens)) == 3, "one successful call per token: %r" % calls
        assert sorted(c["count"] for c in ok) == [500, 1000, 1000], ok
        # the refused call came back alone: same token, same count, after the third call
        again = [i for i, c in enumerate(calls) if c["token"] == failed[0]["token"] and c["ok"]]
        assert len(again) == 1 and again[0] >= 3, calls
        assert calls[again[0]]["count"] == failed[0]["count"], calls
        # the activities of a tick are written at its end, just after its instances appear
        def launches():
            _, _, acts = api(g.api_port, "GET", "/api/v1/activities?limit=50")
            return [a for a in acts or [] if a.get("kind") == "launch"]
        wait_until(lambda: sum(1 for a in launches() if a.get("status") == "ok") == 3, 10,
                   what="3 launch calls recorded ok")
        assert sum(1 for a in launches() if a.get("status") == "retrying") == 1, launches()
        assert any("(call 2 of 3)" in a.get("cause", "") for a in launches()), launches()

        # 2. the API takes a max_size above the old cap too (file: 5000 above)
        s, _, j = api(g.api_port, "PATCH", "/api/v1/group", {"max_size": 20000}, TOKEN)
        assert s == 200 and j["max_size"] == 20000, (s, j)
        s, _, j = api(g.api_port, "PATCH", "/api/v1/group", {"max_size": 100001}, TOKEN)
        assert s == 400 and "100000" in j["detail"], (s, j)
        print("max_size 5000 from the file and 20000 through the API accepted; 100001: "
              + j["detail"])

        # 3. paging over every instance
        seen, after, pages = [], None, 0
        while True:
            path = "/api/v1/instances?limit=1000" + (f"&after={after}" if after else "")
            t1 = time.monotonic()
            s, hdr, page = api(g.api_port, "GET", path)
            ms = (time.monotonic() - t1) * 1000
            assert s == 200, (s, page)
            pages += 1
            seen += [i["id"] for i in page]
            if len(page) < 1000:
                assert 'rel="next"' not in (hdr.get("Link") or ""), hdr
                break
            assert 'rel="next"' in hdr.get("Link", ""), dict(hdr)
            after = page[-1]["id"]
        assert len(seen) == N and len(set(seen)) == N and seen == sorted(seen), (len(seen), pages)
        t1 = time.monotonic()
        s, _, small = api(g.api_port, "GET", "/api/v1/instances?limit=100")
        print(f"paging: {pages} pages of <= 1000 cover all {N} once, in id order; "
              f"limit=100 in {(time.monotonic() - t1) * 1000:.0f} ms")
        assert s == 200 and len(small) == 100 and [i["id"] for i in small] == seen[:100]

        # 4. scale in by 1,500: TerminateInstances calls of at most 1,000 ids
        with st.lock:
            st.reset_stats()
        s, _, j = api(g.api_port, "PATCH", "/api/v1/group",
                      {"min_size": 0, "desired_capacity": 1000}, TOKEN)
        assert s == 200, (s, j)
        wait_until(lambda: group_info(g.api_port).get("instances") == 1000, 120, step=0.5,
                   what="1000 instances after the scale-in")
        with st.lock:
            terms = st.stats["calls"].get("TerminateInstances", 0)
        print(f"scale-in 2500 -> 1000 in {terms} TerminateInstances calls")
        assert 2 <= terms <= 4, st.stats["calls"]
        print("ok")
    finally:
        os.environ.clear()
        os.environ.update(saved)
        g.cleanup()
        srv.shutdown()
        for f in os.listdir(tokdir):
            os.unlink(os.path.join(tokdir, f))
        os.rmdir(tokdir)


if __name__ == "__main__":
    sys.exit(main())
