"""One asgd node with SQLite and a groups folder of three group files: the three groups run
side by side, each with its own fleet table, controller and load, and each is scaled by its
own load; the API lists them; a group is created and deleted through the API while the node
runs (409 while it has instances, ?force=true terminates them first)."""
import os
import sys
import time

from asgd_harness import wait_until
from cluster_harness import Estate, Node, healthy_in_service

POLICY = {"type": "threshold", "evaluation_period": "3s", "cooldown": "3s",
          "scale_up_threshold": 70, "scale_down_threshold": 20, "scale_up_factor": 2,
          "scale_down_factor": 0.5}


def by_name(node):
    gs = node.groups() or []
    return {g["name"]: g for g in gs}


def main():
    est = Estate("grp")
    web = est.add_group("web", min_size=1, max_size=4, load=50, policy=POLICY)
    wrk = est.add_group("workers", min_size=2, max_size=4, load=50, policy=POLICY)
    bat = est.add_group("batch", min_size=1, max_size=3, load=50, policy=POLICY)
    node = Node(est, "solo")
    try:
        node.start()
        wait_until(node.up, 20, what="API up")
        wait_until(lambda: len(by_name(node)) == 3, 20, what="three groups listed")
        for name, want in ((web, 1), (wrk, 2), (bat, 1)):
            wait_until(lambda: len(healthy_in_service(node, name)) == want, 30,
                       what=f"{name}: {want} healthy")
        # each group has its own fleet table
        for name in (web, wrk, bat):
            assert os.path.exists(f"/dev/shm/asgd-{name}"), name
        print("three groups running:", {k: v.get("desired_capacity") for k, v in by_name(node).items()})

        # only the web group's load rises: only web grows
        est.set_load("web", 95)
        wait_until(lambda: len(healthy_in_service(node, web)) == 4, 40, what="web grows to 4")
        g = by_name(node)
        assert g[wrk]["desired_capacity"] == 2, g[wrk]
        assert g[bat]["desired_capacity"] == 1, g[bat]
        # batch's load drops: it stays at its min; workers' rises to its max
        est.set_load("workers", 99)
        wait_until(lambda: len(healthy_in_service(node, wrk)) == 4, 40, what="workers grow to 4")
        assert by_name(node)[bat]["desired_capacity"] == 1
        est.set_load("web", 5)
        wait_until(lambda: by_name(node)[web]["desired_capacity"] == 1, 40, what="web back to 1")
        print("each group scaled by its own load:",
              {k: v.get("desired_capacity") for k, v in by_name(node).items()})

        # old single-group routes refuse with several groups, naming the new ones
        st, j = node.api("GET", "/api/v1/instances")
        assert st in (400, 409) and "/api/v1/groups/" in j["detail"], (st, j)

        # a group created through the API runs at once; delete refuses while it has instances
        spec = {"group": {"name": f"{est.tag}-api", "min_size": 1, "max_size": 2},
                "provider": {"type": "local"},
                "local": {"agent_args": f"--load file:{est.groups['web']['load_file']}",
                          "dir": os.path.join(est.dir, "local", "api")},
                "health": {"interval": "500ms", "timeout": "300ms", "grace_period": "3s"}}
        st, j = node.api("POST", "/api/v1/groups", spec, auth=True)
        assert st == 201, (st, j)
        st, j = node.api("POST", "/api/v1/groups", spec, auth=True)
        assert st == 409, (st, j)
        bad = {"group": {"name": f"{est.tag}-bad", "min_size": 3, "max_size": 2}}
        st, j = node.api("POST", "/api/v1/groups", bad, auth=True)
        assert st == 400 and "min_size" in j["detail"], (st, j)
        api_group = f"{est.tag}-api"
        wait_until(lambda: len(healthy_in_service(node, api_group)) == 1, 30,
                   what="API-created group has 1 healthy")
        st, j = node.api("DELETE", f"/api/v1/groups/{api_group}", auth=True)
        assert st == 409, (st, j)
        est.groups["api"] = {"name": api_group}
        others = [p for p in est.agent_pids() if p not in est.agent_pids("api")]
        assert len(est.agent_pids("api")) == 1
        st, j = node.api("DELETE", f"/api/v1/groups/{api_group}?force=true", auth=True)
        assert st in (200, 202), (st, j)
        wait_until(lambda: api_group not in by_name(node), 20, what="group gone")
        st, _ = node.api("GET", f"/api/v1/groups/{api_group}")
        assert st == 404, st
        # its agent was terminated; the others' were not
        wait_until(lambda: est.agent_pids("api") == [], 20, what="the deleted group's agent gone")
        assert all(p in est.agent_pids() for p in others)
        print("created and force-deleted a group through the API")
    finally:
        est.cleanup()


if __name__ == "__main__":
    sys.exit(main())
