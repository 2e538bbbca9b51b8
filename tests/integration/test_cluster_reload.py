"""Configuration reload with the etcd store (issue 13 item 3): two asgd nodes on a real 3-member
etcd cluster share a groups folder; one of them is reloaded (SIGHUP) after the folder changed.

The reloaded node writes the change into etcd, where the cluster applies it whichever node owns
each group: a new group file is seeded and started by its owner-to-be, a removed one is deleted
from etcd and its owner stops managing it (its agents keep running), and a changed health
interval reaches the owner's monitor (the poll rate measured at the group's agent drops; the
other node's API shows the new setting).
"""
import os
import sys
import time

from asgd_harness import agent_polls, edit_file, pid_alive, poll_rate, wait_until
from cluster_harness import Estate, Etcd, Node, advertise_all, healthy_in_service, reload_and_wait

HEALTH = {"interval": "500ms", "timeout": "300ms", "healthy_threshold": 2,
          "unhealthy_threshold": 3, "grace_period": "3s"}


def main():
    est = Estate("crl")
    keep = est.add_group("keep", min_size=1, max_size=2, health=HEALTH)
    drop = est.add_group("drop", min_size=1, max_size=2, health=HEALTH)
    kf = os.path.join(est.groups_dir, "keep.ini")
    edit_file(kf, "agent_args = --load file:", "agent_args = --log-level debug --load file:")
    etcd = None
    try:
        etcd = Etcd(est.dir)
        nodes = [Node(est, n, store="etcd", endpoints=etcd.endpoints, lease_ttl="3s")
                 for n in ("a", "b")]
        advertise_all(nodes)
        for n in nodes:
            n.start()
        for n in nodes:
            wait_until(n.up, 30, what=f"{n.name} up")
        a, b = nodes
        for g in (keep, drop):
            wait_until(lambda: len(healthy_in_service(a, g)) == 1, 60, what=f"{g}: 1 healthy")
        inst = healthy_in_service(a, keep)[0]["id"]
        agent_log = os.path.join(est.groups["keep"]["local_dir"], "local", inst + ".log")
        wait_until(lambda: agent_polls(agent_log) > 3, 10, what="keep's agent logs its polls")
        before = poll_rate(agent_log, 4)
        drop_pids = est.agent_pids("drop")
        assert len(drop_pids) == 1, drop_pids

        # the folder changes; only node a is reloaded
        fresh = est.add_group("fresh", min_size=1, max_size=2, health=HEALTH)
        os.unlink(os.path.join(est.groups_dir, "drop.ini"))
        edit_file(kf, "interval = 500ms", "interval = 2s")
        out = reload_and_wait(a)
        assert "reload of" in out and "done" in out, out
        print(out.strip().splitlines()[-1])

        wait_until(lambda: len(healthy_in_service(b, fresh)) == 1, 60, what="fresh runs")
        for n in nodes:
            wait_until(lambda: n.api("GET", f"/api/v1/groups/{drop}")[0] == 404, 20,
                       what=f"{drop} gone on {n.name}")
            wait_until(lambda: n.api("GET", f"/api/v1/groups/{keep}")[1]["health"]["interval"]
                       == "2s", 20, what=f"keep's interval 2s on {n.name}")
        time.sleep(1)
        assert est.agent_pids("drop") == drop_pids and all(pid_alive(p) for p in drop_pids)
        owner = b.api("GET", f"/api/v1/groups/{fresh}")[1]["owner_node"]
        print(f"fresh runs on node {owner}; {drop} is no longer managed (its agent runs on)")
        time.sleep(2.5)
        after = poll_rate(agent_log, 8)
        print(f"poll rate at keep's agent: {before:.2f}/s at 500ms, {after:.2f}/s at 2s")
        assert before > 0 and after < before / 2.5, (before, after)
        print("ok")
    finally:
        est.cleanup()
        if etcd:
            etcd.stop()


if __name__ == "__main__":
    sys.exit(main())
