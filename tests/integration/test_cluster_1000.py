"""1,000 groups with min_size = 0 over three real asgd nodes on a real 3-member etcd.

The groups are created through one node's API; ownership spreads them within ceil(G/N) + 1
per node while all nodes are up; the node owning the most is killed with SIGKILL and every one
of its groups is owned again within lease_ttl + 3 s (measured from the kill, as any surviving
node's API reports it)."""
import math
import os
import signal
import sys
import time

from asgd_harness import wait_until
from cluster_harness import Estate, Etcd, Node, http

GROUPS = int(os.environ.get("ASGD_TEST_GROUPS", "1000"))
TTL = 3.0


def owners(node):
    """Every group's owner from the node's cluster view (its watch cache: no proxying)."""
    st, j = node.api("GET", "/api/v1/cluster", timeout=20)
    if st != 200 or not isinstance(j, dict) or "groups" not in j:
        return None
    return {g["name"]: g.get("owner") for g in j["groups"]}


def main():
    est = Estate("k")
    etcd = None
    try:
        etcd = Etcd(est.dir)
        # one group file so the node files are valid (it is the 1,000th group)
        est.add_group("seed", min_size=0, max_size=1)
        nodes = [Node(est, f"m{i}", store="etcd", endpoints=etcd.endpoints, lease_ttl="3s")
                 for i in range(1, 4)]
        for n in nodes:
            n.start()
        for n in nodes:
            wait_until(n.up, 30, what=f"{n.name} up")
        t0 = time.monotonic()
        for i in range(GROUPS - 1):
            spec = {"group": {"name": f"{est.tag}-k{i}", "min_size": 0, "max_size": 2},
                    "provider": {"type": "local"}}
            st, j = nodes[i % 3].api("POST", "/api/v1/groups", spec, auth=True, timeout=20)
            assert st == 201, (i, st, j)
        print(f"created {GROUPS} groups in {time.monotonic() - t0:.1f} s")
        names = [n.name for n in nodes]
        bound = math.ceil(GROUPS / 3) + 1

        def spread():
            o = owners(nodes[0])
            if o is None or len(o) != GROUPS or any(v not in names for v in o.values()):
                return False
            counts = {n: sum(1 for v in o.values() if v == n) for n in names}
            return counts if max(counts.values()) <= bound else False

        counts = wait_until(spread, 120, step=1.0, what=f"{GROUPS} groups owned within {bound}")
        print(f"spread over three nodes: {counts} (bound ceil(G/N)+1 = {bound})")

        victim_name = max(counts, key=counts.get)
        victim = next(n for n in nodes if n.name == victim_name)
        survivor = next(n for n in nodes if n is not victim)
        lost = [g for g, v in owners(survivor).items() if v == victim_name]
        t0 = time.monotonic()
        victim.kill(signal.SIGKILL)

        def reowned():
            o = owners(survivor)
            return o is not None and all(o.get(g) not in (None, victim_name) for g in lost)

        wait_until(reowned, TTL + 30, step=0.1, what="re-owned")
        took = time.monotonic() - t0
        print(f"{len(lost)} groups of the killed node {victim_name} owned again after "
              f"{took:.2f} s (bound lease_ttl + 3 s = {TTL + 3:.0f} s)")
        assert took <= TTL + 3.0, took
    finally:
        est.cleanup()
        if etcd:
            etcd.stop()


if __name__ == "__main__":
    sys.exit(main())
