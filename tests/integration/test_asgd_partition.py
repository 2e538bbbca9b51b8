"""A partition is not a fleet death (issue 11, item 3).

The agents run in a network namespace created here, reached from asgd (outside) over a veth
pair; [local] agent is a wrapper that starts monitorc inside the namespace, address_base is on
the namespace's side and MonitorS listens on the host's side of the link. Cutting the link
(host side down) makes every agent unreachable at once: asgd must terminate nothing, report a
panic (log, activity kind "panic" with the numbers, /readyz 503 naming the group and the share)
and, once the link is back, see the same instances healthy again with the panic cleared and
nothing replaced. Needs root for `ip netns`; exits 77 (skipped) with the reason otherwise.
"""
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request

import openapi_check
from asgd_harness import BIN, Group, wait_until

SIZE = 4


def sh(*args, check=True):
    return subprocess.run(list(args), capture_output=True, text=True, check=check, timeout=20)


def http_get(port, path):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            st, text, ctype = r.status, r.read().decode(), r.headers.get("Content-Type")
    except urllib.error.HTTPError as e:
        st, text, ctype = e.code, e.read().decode(), e.headers.get("Content-Type")
    except OSError as e:
        return None, str(e)
    # every answer is checked against the OpenAPI document (raises on a mismatch)
    openapi_check.check("GET", path, st, text, ctype)
    return st, text


class Netns:
    """A namespace NS with veth HOST<->PEER, 10.213.N.1 on the host side, .2.. on PEER."""

    def __init__(self):
        n = os.getpid() % 250 + 1
        self.ns = f"asgdp{os.getpid()}"
        self.host_if, self.peer_if = f"vp{os.getpid()}h", f"vp{os.getpid()}n"
        self.net = f"10.213.{n}"
        self.host_ip = f"{self.net}.1"
        self.created = False

    def create(self):
        sh("ip", "netns", "add", self.ns)
        self.created = True
        sh("ip", "link", "add", self.host_if, "type", "veth", "peer", "name", self.peer_if)
        sh("ip", "link", "set", self.peer_if, "netns", self.ns)
        sh("ip", "addr", "add", f"{self.host_ip}/24", "dev", self.host_if)
        sh("ip", "link", "set", self.host_if, "up")
        x = ["ip", "netns", "exec", self.ns]
        sh(*x, "ip", "link", "set", "lo", "up")
        for i in range(2, 2 + SIZE + 6):
            sh(*x, "ip", "addr", "add", f"{self.net}.{i}/24", "dev", self.peer_if)
        sh(*x, "ip", "link", "set", self.peer_if, "up")

    def link(self, up):
        sh("ip", "link", "set", self.host_if, "up" if up else "down")

    def destroy(self):
        sh("ip", "link", "del", self.host_if, check=False)
        if self.created:
            sh("ip", "netns", "del", self.ns, check=False)


def activities(g):
    st, body = http_get(g.api_port, "/api/v1/activities?limit=200")
    assert st == 200, (st, body)
    doc = json.loads(body)
    return doc["activities"] if isinstance(doc, dict) else doc


def main():
    if os.geteuid() != 0:
        print("SKIP: ip netns needs root")
        return 77
    ns = Netns()
    try:
        ns.create()
    except (subprocess.CalledProcessError, FileNotFoundError) as e:
        ns.destroy()
        print(f"SKIP: cannot create a network namespace here: {getattr(e, 'stderr', e)}")
        return 77

    wrapper_dir = None
    g = None
    try:
        monitorc = os.path.join(BIN, "monitorc")
        g = Group("part", min_size=SIZE, max_size=SIZE + 2, load=40, mon_host=ns.host_ip,
                  base=f"{ns.net}.2",
                  health={"interval": "500ms", "timeout": "300ms", "healthy_threshold": 2,
                          "unhealthy_threshold": 3, "grace_period": "12s",
                          "panic_threshold": 50, "max_replacements_per_minute": 20,
                          "deregister_grace": "30s"})
        wrapper_dir = g.dir
        wrapper = os.path.join(g.dir, "agent-in-ns")
        with open(wrapper, "w") as f:
            f.write(f"#!/bin/sh\nexec ip netns exec {ns.ns} {monitorc} \"$@\"\n")
        os.chmod(wrapper, 0o755)
        with open(g.config) as f:
            text = f.read()
        with open(g.config, "w") as f:
            f.write(text.replace("[local]\n", f"[local]\nagent = {wrapper}\n", 1))

        t0 = time.monotonic()
        g.start()
        wait_until(lambda: len(g.healthy()) == SIZE, 40, what=f"{SIZE} healthy agents in the netns")
        print(f"{SIZE} healthy instances in namespace {ns.ns} after {time.monotonic() - t0:.1f}s")
        wait_until(lambda: http_get(g.api_port, "/readyz")[0] == 200, 15, what="readyz 200")
        before = sorted(i["id"] for i in g.instances())
        assert all(i["address"].startswith(ns.net + ".") for i in g.instances()), g.instances()
        pids = g.agent_pids()
        assert len(pids) == SIZE, pids

        # past the grace period (12 s from launch), a failing instance would be replaced at once
        time.sleep(max(0.0, t0 + 13 - time.monotonic()))

        # --- cut -----------------------------------------------------------------------
        ns.link(False)
        t_cut = time.monotonic()
        st_body = wait_until(lambda: (lambda r: r if r[0] == 503 else None)(
            http_get(g.api_port, "/readyz")), 20, what="readyz 503 (panic)")
        print(f"link cut: panic reported after {time.monotonic() - t_cut:.1f}s: {st_body[1]}")
        assert g.name in st_body[1] and "panic" in st_body[1] and "100%" in st_body[1], st_body
        # hold the cut well past grace + unhealthy threshold: nothing may be replaced
        time.sleep(8)
        assert sorted(i["id"] for i in g.instances()) == before, g.instances()
        assert g.agent_pids() == pids, (g.agent_pids(), pids)
        acts = activities(g)
        panics = [a for a in acts if a.get("kind") == "panic"]
        assert len(panics) == 1, panics
        print(f"panic activity: {panics[0]}")
        st, body = http_get(g.api_port, f"/api/v1/groups/{g.name}")
        assert st == 200, (st, body)
        gj = json.loads(body)
        assert gj["panic"] == {"failing": SIZE, "total": SIZE, "threshold": 50}, gj
        kinds = [a.get("kind") for a in acts]
        assert kinds.count("replace") == 0, acts
        assert kinds.count("launch") == 1, acts  # the first one, at start
        assert g.log_text().count("PANIC") == 1, g.log_text()[-3000:]
        unhealthy = [i for i in g.instances() if i["health"] == "unhealthy"]
        print(f"after {time.monotonic() - t_cut:.1f}s cut: {len(unhealthy)} of {SIZE} unhealthy, "
              f"0 terminated, 0 launched")

        # --- restore -------------------------------------------------------------------
        ns.link(True)
        t_up = time.monotonic()
        wait_until(lambda: len(g.healthy()) == SIZE, 30, what="healthy again after the restore")
        wait_until(lambda: http_get(g.api_port, "/readyz")[0] == 200, 15,
                   what="readyz 200 after the restore")
        print(f"link restored: {SIZE} healthy and ready again after "
              f"{time.monotonic() - t_up:.1f}s")
        assert sorted(i["id"] for i in g.instances()) == before, g.instances()
        assert g.agent_pids() == pids
        acts = activities(g)
        kinds = [a.get("kind") for a in acts]
        assert kinds.count("panic") == 2, acts
        assert kinds.count("replace") == 0 and kinds.count("launch") == 1, acts
        assert "panic over" in g.log_text()
        assert json.loads(http_get(g.api_port, f"/api/v1/groups/{g.name}")[1])["panic"] is None
        print("ok")
        return 0
    finally:
        if g is not None:
            g.cleanup()
        ns.destroy()
        if wrapper_dir:
            subprocess.run(["rm", "-rf", wrapper_dir])


if __name__ == "__main__":
    sys.exit(main())
