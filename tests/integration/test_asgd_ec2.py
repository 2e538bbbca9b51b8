#!/usr/bin/python3
"""asgd with [provider] type = ec2 against the EC2 stand-in (tests/tools/ec2_standin.py).

One stand-in answers 30 % of all requests with RequestLimitExceeded for the
whole test, and asgd must still:
  1. bring the group to min_size running instances, tagged asg:group=<name>;
  2. replace an instance terminated behind its back (through the stand-in's
     admin API, as if someone used the console);
  3. survive kill -9 and a restart without launching anything twice (same
     instances adopted by tag; the stand-in counts real launches);
  4. keep its instances through an EC2 outage (every request 503 Unavailable);
and never run more than max_size instances.
Meanwhile a second asgd with a wrong secret key talks to a second stand-in: it
must log one clear error and make no more than a few calls a minute.
"""
import json
import os
import re
import signal
import sys
import threading
import time
import warnings

import ec2_standin
from asgd_harness import Group, wait_until

AK = "AKIDASGDEC2TEST00001"
SK = "asgd/ec2+test/secret00000000000000000000"


def standin(*extra):
    # shutting-down lasts 20 s (EC2: about a minute), so asgd's describe, every 15 s for ec2,
    # sees the instance on its way out rather than only its absence
    args = ec2_standin.parse_args(["--access-key", AK, "--secret-key", SK,
                                   "--pending-seconds", "1", "--shutdown-seconds", "20",
                                   "--terminated-linger", "20"] + list(extra))
    srv, st = ec2_standin.serve(args)
    return srv, st, "http://127.0.0.1:%d" % srv.server_address[1]


USER_DATA = """#!/bin/sh
umask 077
printf '%s\\n' '{{token}}' > /etc/asgd-agent.token
exec /usr/local/bin/monitorc --listen 0.0.0.0:{{agent_port}} --monitor {{monitor_address}} \\
    --token-file /etc/asgd-agent.token  # group {{group}}
"""


def ec2_group(prefix, url, min_size, max_size):
    extra = "\n".join([
        "[provider]", "type = ec2", "",
        "[ec2]", "region = us-east-1", "endpoint = " + url,
        "image_id = ami-0abcdef1234567890", "instance_type = t3.micro",
        "subnet_ids = subnet-aaaa1111, subnet-bbbb2222", "tags = team=it, purpose=test",
        "retry_base_delay = 20ms", "max_attempts = 6", "call_timeout = 3s",
        "api_calls_per_second = 20", ""])
    g = Group(prefix, min_size=min_size, max_size=max_size, extra="\n" + extra,
              health={"type": "ec2", "grace_period": "1s"})
    # the user data lives in the group's dir, which goes (or stays) with the group
    g.user_data_path = os.path.join(g.dir, "user-data")
    with open(g.user_data_path, "w") as f:
        f.write(USER_DATA)
    with open(g.config, "a") as f:  # the config ends in [ec2]
        f.write("user_data_file = " + g.user_data_path + "\n")
    return g


def start_with_env(g, secret):
    saved = dict(os.environ)
    os.environ.update({"AWS_ACCESS_KEY_ID": AK, "AWS_SECRET_ACCESS_KEY": secret,
                       "AWS_EC2_METADATA_DISABLED": "true", "HOME": g.dir})
    for k in ("AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_EC2",
              "AWS_REGION", "AWS_DEFAULT_REGION"):
        os.environ.pop(k, None)
    try:
        return g.start()
    finally:
        os.environ.clear()
        os.environ.update(saved)


def live_ids(st, group):
    with st.lock:
        now = time.time()
        return sorted(i.id for i in st.instances.values()
                      if i.tags.get("asg:group") == group and i.state(st, now) in
                      ("pending", "running"))


def running_ids(g):
    # [health] type = ec2: the EC2 state decides; the agents' poll results do not count
    # (the stand-in's instances have no monitorc to answer)
    return sorted(i["id"] for i in g.instances() if i["lifecycle"] == "in-service")


def main():
    warnings.simplefilter("ignore", ResourceWarning)
    # 30 % of requests throttled; with seed 1 the first two are (random.Random(1)), so the
    # throttling is certain to be exercised however the requests are timed
    srv, st, url = standin("--throttle", "0.3", "--seed", "1")
    bad_srv, bad_st, bad_url = standin()
    g = ec2_group("ec2", url, 2, 4)
    bad = ec2_group("ec2bad", bad_url, 2, 4)
    peak = [0]
    stop = threading.Event()

    def watch_peak():
        while not stop.is_set():
            peak[0] = max(peak[0], len(live_ids(st, g.name)))
            time.sleep(0.05)

    watcher = threading.Thread(target=watch_peak, daemon=True)
    watcher.start()
    try:
        t_bad = time.monotonic()
        start_with_env(bad, "not-the-right-secret-key-0000000000000")

        # 1. min_size running instances, under 30 % throttling
        t0 = time.monotonic()
        p = start_with_env(g, SK)
        wait_until(lambda: len(running_ids(g)) == 2, 40, what="2 running instances")
        print("2 running instances after %.1fs (30%% throttled)" % (time.monotonic() - t0))
        first = running_ids(g)
        assert live_ids(st, g.name) == first, (live_ids(st, g.name), first)
        with st.lock:
            inst = st.instances[first[0]]
            assert inst.tags == {"asg:group": g.name, "team": "it", "purpose": "test"}, inst.tags
            subnets = sorted(st.instances[i].subnet for i in first)
        assert subnets == ["subnet-aaaa1111", "subnet-bbbb2222"], subnets
        assert st.stats["launched"] == 2, st.stats
        # user data: the template with MonitorS's address and the agent token filled in
        import base64
        with open(os.path.join(g.state, "agent.token")) as f:
            token = f.read().strip()
        with st.lock:
            ud = base64.b64decode(st.instances[first[0]].user_data).decode()
        want = USER_DATA.replace("{{token}}", token).replace("{{agent_port}}", str(g.agent_port))
        want = want.replace("{{monitor_address}}", "127.0.0.1:%d" % g.mon_port)
        want = want.replace("{{group}}", g.name)
        assert ud == want, (ud, want)
        assert token not in g.log_text(), "the agent token must not be logged"

        # 2. terminated behind asgd's back -> replaced
        victim = first[0]
        with st.lock:
            ec2_standin.terminate(st, [victim])
        t1 = time.monotonic()

        def replaced():
            ids = running_ids(g)
            return len(ids) == 2 and victim not in ids and ids
        after = wait_until(replaced, 45, step=0.2, what="a replacement for " + victim)
        print("instance terminated behind asgd's back replaced in %.1fs" % (time.monotonic() - t1))
        assert st.stats["launched"] == 3, st.stats
        wait_until(lambda: live_ids(st, g.name) == after, 10, what="the stand-in to agree")

        # 3. kill -9 and restart: the same instances, no launch
        g.stop(p, signal.SIGKILL)
        time.sleep(1)
        p = start_with_env(g, SK)
        wait_until(lambda: running_ids(g) == after, 30, what="the same 2 instances after restart")
        time.sleep(5)
        assert running_ids(g) == after, (running_ids(g), after)
        assert live_ids(st, g.name) == after, live_ids(st, g.name)
        assert st.stats["launched"] == 3, "restart launched again: %r" % st.stats
        assert st.stats["throttled"] > 0, st.stats
        assert st.stats["auth_failures"] == 0, st.stats
        assert peak[0] <= 4, "more than max_size live: %d" % peak[0]
        print("restart adopted %s without a launch; %d requests, %d throttled; peak %d live"
              % (after, st.stats["requests"], st.stats["throttled"], peak[0]))

        # 4. an EC2 outage (every request 503 Unavailable): asgd forgets nothing, launches nothing
        with st.lock:
            st.faults["unavailable"] = 1.0
            seen = st.stats["errors"].get("Unavailable", 0)
        wait_until(lambda: st.stats["errors"].get("Unavailable", 0) > seen, 30,
                   what="a describe during the outage")
        time.sleep(2)
        assert running_ids(g) == after, (running_ids(g), after)
        with st.lock:
            st.faults["unavailable"] = 0.0
        assert st.stats["launched"] == 3, st.stats
        assert live_ids(st, g.name) == after
        print("outage: %d requests answered Unavailable, the group kept %s"
              % (st.stats["errors"]["Unavailable"] - seen, after))
        g.stop(p)

        # 5. the asgd with the wrong key: one clear error, a few calls a minute
        elapsed = time.monotonic() - t_bad
        calls = bad_st.stats["requests"]
        log = bad.log_text()
        errors = [l for l in log.splitlines() if re.search(r"\berror\b", l.split("]")[0])]
        auth_errors = [l for l in errors if "AuthFailure" in l]
        print("wrong key: %d calls in %.0fs, %d error line(s): %s"
              % (calls, elapsed, len(errors), auth_errors[:1]))
        # one failure event: asgd may report it from the controller and from start-up,
        # but never again while the key stays wrong
        stamps = [l.split()[0] for l in auth_errors]
        assert 1 <= len(auth_errors) <= 2 and stamps[0][:19] == stamps[-1][:19], errors
        assert "credentials" in auth_errors[0], auth_errors
        assert calls <= max(3, int(3 * elapsed / 60) + 1), (calls, elapsed)
        assert bad_st.stats["launched"] == 0
        assert "not-the-right-secret" not in log and SK not in log
        assert AK not in log, "the full access key id should not be logged"
        print("ok")
    finally:
        stop.set()
        g.cleanup()
        bad.cleanup()
        srv.shutdown()
        bad_srv.shutdown()


if __name__ == "__main__":
    sys.exit(main())
