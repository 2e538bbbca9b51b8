#!/usr/bin/python3
"""Two asgd nodes on etcd with HTTPS APIs ([api] tls_cert_file/tls_key_file/tls_ca_file).

The API of each node is https:// only (certificates from a throw-away CA, IP SAN 127.0.0.1);
[cluster] api_advertise defaults to https://<listen> and every node lists the others' https://
APIs; the group runs and is read healthy through either node. (Both nodes share one host, so
the node that does not run the group reads its shared-memory fleet table instead of proxying:
this test does not exercise the proxy's [api] tls_ca_file.)
"""
import os
import ssl
import sys

import tlsca
from asgd_harness import wait_until
from cluster_harness import Estate, Etcd, Node, healthy_in_service


def main():
    est = Estate("https")
    etcd = None
    try:
        ca = tlsca.CA(os.path.join(est.dir, "pki"))
        cert, key = ca.issue("node")
        # the harness's urllib calls verify against this CA
        ssl._create_default_https_context = lambda: ssl.create_default_context(cafile=ca.cert)
        etcd = Etcd(est.dir)
        g = est.add_group("web", min_size=1, max_size=2, load=50)
        nodes = [Node(est, f"n{i}", store="etcd", endpoints=etcd.endpoints, lease_ttl="3s")
                 for i in (1, 2)]
        for n in nodes:
            n.url = n.url.replace("http://", "https://")
            n.lines = [ln for ln in n.lines if not ln.startswith("api_advertise")]
            at = n.lines.index("[api]") + 1
            n.lines[at:at] = [f"tls_cert_file = {cert}", f"tls_key_file = {key}",
                              f"tls_ca_file = {ca.cert}"]
            n.write_config()
            n.start()
        for n in nodes:
            wait_until(n.up, 20, what=f"{n.name} HTTPS API up")
            assert "https://127.0.0.1" in n.log_text(), n.log_text()[-2000:]
        wait_until(lambda: all(x.get("owner_node") for x in (nodes[0].groups() or [{}])), 30,
                   what="the group owned")
        owner = nodes[0].groups()[0]["owner_node"]
        other = next(n for n in nodes if n.name != owner)
        wait_until(lambda: len(healthy_in_service(other, g)) == 1, 40,
                   what="1 healthy, read through the node that does not run the group")
        st, inst = other.api("GET", f"/api/v1/groups/{g}/instances")
        items = inst["instances"] if isinstance(inst, dict) else inst
        assert st == 200 and items, (st, inst)
        st, c = other.api("GET", "/api/v1/cluster")
        apis = sorted(n.get("api") for n in c["nodes"])
        assert all(a.startswith("https://127.0.0.1:") for a in apis), apis
        print("group owned by", owner, "read through", other.name, "over HTTPS; nodes:", apis)
        return 0
    finally:
        est.cleanup()
        if etcd:
            etcd.stop()


if __name__ == "__main__":
    sys.exit(main())
