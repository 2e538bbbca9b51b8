#!/usr/bin/python3
"""bench/cluster: failover time and steady-state etcd load of an asgd cluster.

Runs a real 3-member etcd cluster and three real asgd nodes on loopback with G groups
(min_size 0: ownership and controllers only, no agents), then measures:

1. etcd writes per second per group in steady state (no scaling): the committed raft
   proposals (etcd_server_proposals_committed_total, every write is one proposal; lease
   renewals are not proposals in etcd 3.4) over a window, with the same cluster idle before
   the groups exist as the baseline measured in this run. Target: <= 0.2 writes/s per group.
2. failover time over K kills (kill -9 of a node, rotating): from the kill until every group
   it owned has another owner, as a surviving node's API reports it; the killed node is
   restarted and the estate rebalanced before the next kill. Baseline measured in the same
   run: the raw lease expiry of etcd itself (a key on a lease of the same TTL that stops
   being renewed, until a watch sees it deleted), the floor no lease-based failover can beat.

Usage: bench/cluster.py [--groups G] [--kills K] [--ttl S] [--window S] [--size N]
"""
import argparse
import json
import math
import os
import re
import signal
import statistics
import sys
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "tools"))
os.environ.setdefault("ASGD_SOURCE_DIR", os.path.join(HERE, ".."))
os.environ.setdefault("ASGD_BIN", os.path.join(HERE, "..", "build", "bin"))

from asgd_harness import wait_until  # noqa: E402
from cluster_harness import Estate, Etcd, Node  # noqa: E402


def proposals(endpoint):
    with urllib.request.urlopen(endpoint + "/metrics", timeout=5) as r:
        text = r.read().decode()
    m = re.search(r"^etcd_server_proposals_committed_total (\S+)$", text, re.M)
    return float(m.group(1))


def gw(endpoint, path, body):
    req = urllib.request.Request(endpoint + path, data=json.dumps(body).encode(), method="POST")
    with urllib.request.urlopen(req, timeout=5) as r:
        return json.loads(r.read().decode())


def raw_lease_expiry(endpoint, ttl):
    """Seconds from the last renewal of a lease of ttl until etcd deletes its key."""
    import base64
    lease = gw(endpoint, "/v3/lease/grant", {"TTL": int(ttl)})["ID"]
    key = base64.b64encode(b"/bench/raw-lease").decode()
    gw(endpoint, "/v3/kv/put", {"key": key, "value": base64.b64encode(b"x").decode(),
                                "lease": lease})
    gw(endpoint, "/v3/lease/keepalive", {"ID": lease})
    t0 = time.monotonic()
    while True:
        r = gw(endpoint, "/v3/kv/range", {"key": key})
        if not r.get("kvs"):
            return time.monotonic() - t0
        time.sleep(0.02)


def owners(node):
    """Every group's owner from the node's cluster view (its watch cache)."""
    st, j = node.api("GET", "/api/v1/cluster", timeout=20)
    if st != 200 or not isinstance(j, dict) or "groups" not in j:
        return None
    return {g["name"]: g.get("owner") for g in j["groups"]}


def pct(values, p):
    v = sorted(values)
    return v[min(len(v) - 1, max(0, math.ceil(p / 100 * len(v)) - 1))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--groups", type=int, default=30)
    ap.add_argument("--kills", type=int, default=20)
    ap.add_argument("--ttl", type=float, default=3.0)
    ap.add_argument("--window", type=float, default=30.0)
    ap.add_argument("--size", type=int, default=1,
                    help="min_size of every group (1: one real agent each, so the controllers "
                         "have load history to write)")
    a = ap.parse_args()

    est = Estate("bench")
    etcd = Etcd(est.dir)
    ep = etcd.endpoints.split(",")[0]
    try:
        # baseline 1: the cluster with three nodes and no group
        nodes = [Node(est, f"b{i}", store="etcd", endpoints=etcd.endpoints,
                      lease_ttl=f"{int(a.ttl)}s") for i in range(1, 4)]
        for n in nodes:
            n.start()
        for n in nodes:
            wait_until(n.up, 20, what=f"{n.name} up")
        time.sleep(a.ttl)
        p0, t0 = proposals(ep), time.monotonic()
        time.sleep(a.window / 2)
        idle = (proposals(ep) - p0) / (time.monotonic() - t0)

        for i in range(a.groups):
            st, j = nodes[i % 3].api("POST", "/api/v1/groups",
                                     {"group": {"name": f"{est.tag}-b{i}", "min_size": a.size,
                                                "max_size": a.size + 1},
                                      "provider": {"type": "local"},
                                      "local": {"dir": os.path.join(est.dir, "local", str(i))}},
                                     auth=True)
            assert st == 201, (st, j)
        names = [f"{est.tag}-b{i}" for i in range(a.groups)]
        for i, n in enumerate(names):  # est.cleanup() kills their agents
            est.groups[f"b{i}"] = {"name": n}
        wait_until(lambda: (o := owners(nodes[0])) is not None and
                   all(o.get(g) for g in names), 60, what="all groups owned")
        time.sleep(a.ttl * 2)
        p0, t0 = proposals(ep), time.monotonic()
        time.sleep(a.window)
        busy = (proposals(ep) - p0) / (time.monotonic() - t0)
        per_group = max(0.0, busy - idle) / a.groups
        print(f"steady state: {busy:.2f} writes/s with {a.groups} groups, {idle:.2f} idle "
              f"(baseline, same run): {per_group:.3f} writes/s per group "
              f"(target <= 0.2: {'ok' if per_group <= 0.2 else 'MISSED'})")

        # baseline 2: raw lease expiry
        raw = statistics.median(raw_lease_expiry(ep, a.ttl) for _ in range(3))

        times = []
        for k in range(a.kills):
            own = owners(nodes[0 if k % 3 else 1])
            victim = nodes[k % 3]
            lost = [g for g, v in own.items() if v == victim.name]
            survivor = nodes[(k + 1) % 3]
            t0 = time.monotonic()
            victim.kill(signal.SIGKILL)
            wait_until(lambda: all((owners(survivor) or {}).get(g) not in (None, victim.name)
                                   for g in lost), a.ttl + 15, step=0.02, what="re-owned")
            times.append(time.monotonic() - t0)
            victim.start()
            wait_until(victim.up, 20, what="restart")
            wait_until(lambda: sum(1 for v in (owners(survivor) or {}).values()
                                   if v == victim.name) >= a.groups // 3 - 1, 60,
                       what="rebalanced")
        p50, p99 = statistics.median(times), pct(times, 99)
        print(f"failover over {len(times)} kills: p50 {p50:.2f} s, p99 {p99:.2f} s, "
              f"max {max(times):.2f} s (lease_ttl {a.ttl:.0f} s; measured from the kill, and "
              f"the lease was last renewed up to ttl/3 before it)")
        print(f"raw etcd lease expiry (baseline, same run): {raw:.2f} s; "
              f"ratio failover/raw: p50 {p50 / raw:.2f}x, p99 {p99 / raw:.2f}x")
    finally:
        est.cleanup()
        etcd.stop()


if __name__ == "__main__":
    sys.exit(main())
