#!/usr/bin/python3
"""bench_swarm (many MonitorC agents in one process) against Python's grpcio.

The swarm speaks the gRPC wire itself (nghttp2 + 5-byte framing + protobuf-c),
so it is checked here against an independent client (Debian's python3-grpcio):
every agent answers on its own loopback address with its own instance id; the
commands kill (UNAVAILABLE), hang (DEADLINE_EXCEEDED), slow, load, unhealthy
and ok (back to normal, re-listening) act on the chosen agents only; and with
fewer file descriptors than two per agent the agents are shared out over worker
processes that all obey the commands. With --tls every agent serves mutual TLS
(the benchmarks' TLS mode): it answers a client with a certificate of its CA,
and refuses one without a certificate, one of another CA and plain text.

Run with /usr/bin/python3; PYTHONPATH holds build/gen/py (monitor_pb2).
"""
import os
import time
import random
import resource
import subprocess
import sys
import tempfile
import unittest

BUILD = os.environ.get("ASGD_BUILD_DIR", "build")
sys.path.insert(0, os.path.join(BUILD, "gen", "py"))

import grpc  # noqa: E402
import monitor_pb2 as pb  # noqa: E402
from asgd_harness import free_port  # noqa: E402

BIN = os.path.join(BUILD, "bench", "bench_swarm")


def make_certs(d):
    """CAs "ca" and "rogue"; srv (DNS localhost), cli and rogue_cli: P-256, as test_certs.c."""
    ec = "-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes"
    with open(os.path.join(d, "ext"), "w") as f:
        f.write("subjectAltName=DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n")
    cmds = ["openssl req -x509 %s -days 2 -addext basicConstraints=critical,CA:TRUE "
            "-keyout %s.key -out %s.pem -subj /CN=%s" % (ec, ca, ca, ca) for ca in ("ca", "rogue")]
    for name, ca in (("srv", "ca"), ("cli", "ca"), ("rogue_cli", "rogue")):
        cmds.append("openssl req %s -keyout %s.key -out %s.csr -subj /CN=%s && openssl x509 -req "
                    "-in %s.csr -CA %s.pem -CAkey %s.key -CAcreateserial -days 2 -extfile ext "
                    "-out %s.pem" % (ec, name, name, name, name, ca, ca, name))
    for c in cmds:
        subprocess.run(c, shell=True, cwd=d, check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)


class Swarm:
    def __init__(self, n, base, nofile=None, tls_dir=None):
        self.dir = tempfile.TemporaryDirectory()
        listfile = os.path.join(self.dir.name, "agents")
        self.port = free_port()
        pre = None
        if nofile:
            def pre():
                resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))
        tls = ["--tls", tls_dir] if tls_dir else []
        self.p = subprocess.Popen([BIN, "-n", str(n), "-b", base, "-p", str(self.port),
                                   "-l", listfile] + tls, stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, text=True, preexec_fn=pre)
        line = self.p.stdout.readline().strip()
        if line != "ready %d" % n:
            self.p.kill()
            raise RuntimeError("bench_swarm did not start: %r" % line)
        with open(listfile) as f:
            self.agents = [tuple(l.split()) for l in f]
        self.channels = {}

    def cmd(self, c):
        self.p.stdin.write(c + "\n")
        self.p.stdin.flush()
        return self.p.stdout.readline().strip()

    def call(self, i, method, req, resp, timeout=2.0):
        addr = self.agents[i][1]
        ch = self.channels.get(addr)
        if ch is None:
            ch = self.channels[addr] = grpc.insecure_channel(addr)
        f = ch.unary_unary("/MonitorC/" + method, request_serializer=req.SerializeToString,
                           response_deserializer=resp.FromString)
        return f(req, timeout=timeout)

    def metrics(self, i, timeout=2.0):
        return self.call(i, "GetMetrics", pb.MetricsRequest(), pb.Metrics, timeout)

    def code(self, i, timeout=2.0):
        try:
            self.metrics(i, timeout)
            return grpc.StatusCode.OK
        except grpc.RpcError as e:
            return e.code()

    def close(self):
        for ch in self.channels.values():
            ch.close()
        if self.p.poll() is None:
            self.p.stdin.write("quit\n")
            self.p.stdin.flush()
            try:
                self.p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        self.p.stdin.close()
        self.p.stdout.close()
        self.dir.cleanup()


class SwarmTest(unittest.TestCase):
    def setUp(self):
        self.s = Swarm(300, "127.77.0.1")

    def tearDown(self):
        self.s.close()

    def test_every_method_answers_as_its_own_agent(self):
        self.assertEqual(len(self.s.agents), 300)
        self.assertEqual(len({a for _, a in self.s.agents}), 300)
        for i in [0, 1, 254, 255, 299] + random.sample(range(300), 10):
            iid = self.s.agents[i][0]
            m = self.s.metrics(i)
            self.assertEqual(m.instance_id, iid)
            self.assertTrue(m.app_healthy)
            self.assertFalse(m.draining)
            self.assertEqual(self.s.call(i, "GetStatus", pb.Request(code=1),
                                         pb.StatusResponse).status, "OK")
            self.assertEqual(self.s.call(i, "GetMemoryUsage", pb.Request(code=1),
                                         pb.MemoryUsageResponse).usage, int(m.cpu_load))
            pong = self.s.call(i, "Ping", pb.PingRequest(seq=1000 + i), pb.Pong)
            self.assertEqual((pong.seq, pong.instance_id), (1000 + i, iid))
        with self.assertRaises(grpc.RpcError) as e:
            self.s.call(3, "Register", pb.RegisterRequest(), pb.RegisterReply)
        self.assertEqual(e.exception.code(), grpc.StatusCode.UNIMPLEMENTED)

    def test_commands_act_on_the_chosen_agents_only(self):
        for i in range(12):
            self.assertEqual(self.s.code(i), grpc.StatusCode.OK)
        self.assertEqual(self.s.cmd("kill 5-9"), "ok kill 5-9")
        self.assertEqual(self.s.cmd("hang 10"), "ok hang 10")
        self.assertEqual(self.s.cmd("load 20 77"), "ok load 20 77")
        self.assertEqual(self.s.cmd("unhealthy 21"), "ok unhealthy 21")
        self.assertEqual(self.s.cmd("slow 11 400"), "ok slow 11 400")
        for i in range(5, 10):
            self.assertEqual(self.s.code(i), grpc.StatusCode.UNAVAILABLE)
        self.assertEqual(self.s.code(10, timeout=0.5), grpc.StatusCode.DEADLINE_EXCEEDED)
        self.assertEqual(self.s.code(11, timeout=0.1), grpc.StatusCode.DEADLINE_EXCEEDED)
        self.assertEqual(self.s.code(11, timeout=5), grpc.StatusCode.OK)
        self.assertEqual(self.s.metrics(20).cpu_load, 77)
        self.assertEqual(self.s.call(20, "GetMemoryUsage", pb.Request(code=1),
                                     pb.MemoryUsageResponse).usage, 77)
        self.assertFalse(self.s.metrics(21).app_healthy)
        self.assertEqual(self.s.call(21, "GetStatus", pb.Request(code=1),
                                     pb.StatusResponse).status, "NOT OK")
        for i in (4, 12, 299):
            self.assertEqual(self.s.code(i), grpc.StatusCode.OK)
        self.assertEqual(self.s.cmd("ok 5-21"), "ok ok 5-21")
        # a killed agent listens again; grpcio reconnects (after its own backoff)
        for i in range(5, 12):
            fresh = grpc.insecure_channel(self.s.agents[i][1])
            f = fresh.unary_unary("/MonitorC/GetMetrics",
                                  request_serializer=pb.MetricsRequest.SerializeToString,
                                  response_deserializer=pb.Metrics.FromString)
            self.assertEqual(f(pb.MetricsRequest(), timeout=5).instance_id, self.s.agents[i][0])
            fresh.close()
        self.assertTrue(self.s.metrics(21).app_healthy)

    def test_bad_commands_are_refused(self):
        self.assertTrue(self.s.cmd("kill 300").startswith("error bad range"))
        self.assertTrue(self.s.cmd("kill 9-3").startswith("error bad range"))
        self.assertTrue(self.s.cmd("slow 3").startswith("error"))
        self.assertTrue(self.s.cmd("explode 3").startswith("error unknown command"))
        self.assertEqual(self.s.code(3), grpc.StatusCode.OK)


class WorkersTest(unittest.TestCase):
    def test_agents_shared_out_over_workers_obey_commands(self):
        # 400 agents need ~864 descriptors: with 300 the swarm starts several workers
        s = Swarm(400, "127.78.0.1", nofile=300)
        try:
            for i in (0, 1, 2, 3, 4, 5, 398, 399):
                self.assertEqual(s.metrics(i).instance_id, s.agents[i][0])
            self.assertEqual(s.cmd("kill 0-5"), "ok kill 0-5")
            # the parent answers once it passed the command on; each worker applies it when
            # it reads it, so a busy machine may see a call or two still answered
            for i in range(6):
                deadline = time.monotonic() + 10
                while s.code(i) != grpc.StatusCode.UNAVAILABLE and time.monotonic() < deadline:
                    time.sleep(0.1)
                self.assertEqual(s.code(i), grpc.StatusCode.UNAVAILABLE)
            self.assertEqual(s.code(6), grpc.StatusCode.OK)
        finally:
            s.close()


class TlsTest(unittest.TestCase):
    def setUp(self):
        self.certs = tempfile.TemporaryDirectory()
        make_certs(self.certs.name)
        self.s = Swarm(20, "127.79.0.1", tls_dir=self.certs.name)

    def tearDown(self):
        self.s.close()
        self.certs.cleanup()

    def read(self, name):
        with open(os.path.join(self.certs.name, name), "rb") as f:
            return f.read()

    def metrics(self, i, ca, who=None):
        """GetMetrics of agent i over TLS trusting ca, with who's certificate (None: none)."""
        creds = grpc.ssl_channel_credentials(
            root_certificates=self.read(ca + ".pem"),
            private_key=self.read(who + ".key") if who else None,
            certificate_chain=self.read(who + ".pem") if who else None)
        # one certificate for every address: its name is checked, as [monitor] tls_server_name
        ch = grpc.secure_channel(self.s.agents[i][1], creds,
                                 options=[("grpc.ssl_target_name_override", "localhost")])
        try:
            f = ch.unary_unary("/MonitorC/GetMetrics",
                               request_serializer=pb.MetricsRequest.SerializeToString,
                               response_deserializer=pb.Metrics.FromString)
            return f(pb.MetricsRequest(), timeout=5)
        finally:
            ch.close()

    def test_mutual_tls_answers_its_ca_only(self):
        for i in (0, 7, 19):
            self.assertEqual(self.metrics(i, "ca", "cli").instance_id, self.s.agents[i][0])
        for ca, who in (("ca", None), ("ca", "rogue_cli"), ("rogue", "cli")):
            with self.assertRaises(grpc.RpcError, msg="%s/%s" % (ca, who)) as e:
                self.metrics(3, ca, who)
            self.assertEqual(e.exception.code(), grpc.StatusCode.UNAVAILABLE)
        self.assertEqual(self.s.code(3), grpc.StatusCode.UNAVAILABLE)  # plain text
        self.assertEqual(self.metrics(3, "ca", "cli").instance_id, self.s.agents[3][0])


if __name__ == "__main__":
    unittest.main()
