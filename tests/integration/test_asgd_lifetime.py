"""max_instance_lifetime with real processes: a local group of 2 with a lifetime of 8 s has both
original instances replaced, one at a time and launching first, so the healthy in-service count
sampled every 100 ms never drops below 2 once reached; each replacement is recorded."""
import json
import os
import sys
import time
import urllib.error
import urllib.request

from asgd_harness import Group, wait_until

TOKEN = "it-token-" + str(os.getpid())


def call(port, method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method)
    req.add_header("Authorization", "Bearer " + TOKEN)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read().decode())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read().decode())
    except (OSError, ValueError):
        return 0, None


def main():
    g = Group("life", min_size=2, max_size=4, load=50)
    tok = os.path.join(g.dir, "api.token")
    with open(tok, "w") as f:
        f.write(TOKEN + "\n")
    os.chmod(tok, 0o600)
    with open(g.config, "a") as f:  # the harness's config ends in [api]
        f.write(f"token_file = {tok}\n")

    def healthy():
        st, inst = call(g.api_port, "GET", "/api/v1/instances")
        return [i for i in (inst if st == 200 else [])
                if i["lifecycle"] == "in-service" and i["health"] == "healthy"]

    try:
        g.start()
        wait_until(lambda: len(healthy()) == 2, 30, what="2 healthy instances")
        originals = {i["id"] for i in healthy()}
        st, grp = call(g.api_port, "PATCH", "/api/v1/group", {"max_instance_lifetime": "8s"})
        assert st == 200 and grp["max_instance_lifetime"] == "8s", (st, grp)
        t0 = time.monotonic()
        low = 99
        seen = set()
        while time.monotonic() - t0 < 45:
            h = healthy()
            low = min(low, len(h))
            seen |= {i["id"] for i in h}
            if not originals & {i["id"] for i in h} and len(h) >= 2:
                break
            time.sleep(0.1)
        took = time.monotonic() - t0
        now = {i["id"] for i in healthy()}
        assert not originals & now, f"originals still there after {took:.1f}s: {originals & now}"
        assert low >= 2, f"healthy count dropped to {low}"
        # a tick's activities are written together at its end: the last one may land a moment
        # after the instance left the healthy list
        deadline = time.monotonic() + 5
        while True:
            st, acts = call(g.api_port, "GET", "/api/v1/activities?limit=200")
            repl = [a for a in acts
                    if a["kind"] == "replace" and "max_instance_lifetime" in a["cause"]]
            if all(any(oid in a["cause"] for a in repl) for oid in originals):
                break
            assert time.monotonic() < deadline, (originals, repl)
            time.sleep(0.1)
        print(f"both originals replaced in {took:.1f}s, healthy never below {low} "
              f"({len(seen)} instances seen); e.g. {repl[-1]['cause']}")
        print("ok")
    finally:
        g.cleanup()


if __name__ == "__main__":
    sys.exit(main())
