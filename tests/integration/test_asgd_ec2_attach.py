"""Detach and attach with the ec2 provider against the EC2 stand-in (issue 12,
docs/lifecycle.md): detach --decrement removes the group tag (DeleteTags) and leaves the
instance running; attach by instance id tags it again (CreateTags), raises desired and the
instance is in service again, its address learnt from the next describe."""
import os
import sys
import time
import warnings

from asgd_harness import wait_until
from group_api import api
from test_asgd_ec2 import ec2_group, live_ids, running_ids, standin, start_with_env, SK

TOKEN = "ec2-attach-" + str(os.getpid())


def main():
    warnings.simplefilter("ignore", ResourceWarning)
    srv, st, url = standin()
    g = ec2_group("ec2att", url, 1, 3)
    g.use_token(TOKEN)
    try:
        p = start_with_env(g, SK)
        wait_until(lambda: len(running_ids(g)) == 1, 40, what="1 running instance")
        api(g, "PATCH", "", {"desired_capacity": 2})
        ids = wait_until(lambda: len(running_ids(g)) == 2 and running_ids(g), 40,
                         what="2 running instances")
        d = ids[0]
        api(g, "POST", f"/instances/{d}/detach", {"decrement_desired": True})
        wait_until(lambda: d not in running_ids(g) and live_ids(st, g.name) == ids[1:], 15,
                   what="detached: untagged, out of the group")
        with st.lock:
            inst = st.instances[d]
            state = inst.state(st, time.time())
            assert "asg:group" not in inst.tags and state == "running", (inst.tags, state)
        time.sleep(2)
        assert api(g, "GET", "")["desired_capacity"] == 1
        assert running_ids(g) == ids[1:], running_ids(g)
        api(g, "POST", "/instances", {"attach": d})
        wait_until(lambda: sorted(running_ids(g)) == sorted(ids), 30, what="attached back")
        assert api(g, "GET", "")["desired_capacity"] == 2
        assert live_ids(st, g.name) == sorted(ids)
        wait_until(lambda: {i["id"]: i for i in api(g, "GET", "/instances")}[d]["address"], 30,
                   what="the attached instance's address from describe")
        kinds = [a["kind"] for a in api(g, "GET", "/activities?limit=50")]
        assert "detach" in kinds and "attach" in kinds, kinds
        assert st.stats["launched"] == 2, st.stats
        print(f"ec2: {d} detached (untagged, still running) and attached back by id; "
              f"launches {st.stats['launched']}")
        g.stop(p)
        print("ok")
    finally:
        g.cleanup()
        srv.shutdown()


if __name__ == "__main__":
    sys.exit(main())
