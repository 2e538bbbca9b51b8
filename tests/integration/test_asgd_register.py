"""A rogue Register (no token, wrong token, unknown id) against a running asgd is refused and
changes nothing; the real agents registered with the generated token."""
import sys

import grpc
import monitor_pb2

from asgd_harness import Group, wait_until


def call(port, method, req, resp_type):
    with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        fn = ch.unary_unary(f"/MonitorS/{method}", request_serializer=lambda m: m.SerializeToString(),
                            response_deserializer=resp_type.FromString)
        return fn(req, timeout=5)


def main():
    g = Group("reg", min_size=2, max_size=3, load=30)
    try:
        g.start()
        wait_until(lambda: len(g.healthy()) == 2, 20, what="2 healthy")
        before = sorted((i["id"], i["address"]) for i in g.instances())
        victim = before[0][0]
        token = open(f"{g.state}/agent.token").read().strip()

        for tok in ("", "wrong-token", token[:-1] + ("0" if token[-1] != "0" else "1")):
            r = call(g.mon_port, "Register",
                     monitor_pb2.RegisterRequest(instance_id="i-rogue", address="127.0.0.1:1",
                                                 token=tok, agent_version="evil"),
                     monitor_pb2.RegisterReply)
            assert not r.accepted, r
            print(f"rogue register (token {tok[:4]!r}...) refused: {r.message}")
            r = call(g.mon_port, "Deregister",
                     monitor_pb2.DeregisterRequest(instance_id=victim, token=tok, reason="evil"),
                     monitor_pb2.DeregisterReply)
            assert not r.ok, r
        # right token but unknown id: refused too (accept_unknown is off)
        r = call(g.mon_port, "Register",
                 monitor_pb2.RegisterRequest(instance_id="i-unknown", address="127.0.0.1:1",
                                             token=token, agent_version="x"),
                 monitor_pb2.RegisterReply)
        assert not r.accepted, r
        print(f"unknown id refused: {r.message}")
        after = sorted((i["id"], i["address"]) for i in g.instances())
        assert after == before, (before, after)
        assert len(g.healthy()) == 2
        print("ok")
    finally:
        g.cleanup()


if __name__ == "__main__":
    sys.exit(main())
