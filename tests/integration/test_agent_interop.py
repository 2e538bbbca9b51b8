#!/usr/bin/python3
"""Interop test of monitorc against Python's grpcio (Debian python3-grpcio).

Starts the real build/bin/monitorc and talks to it like the seed did: a new
channel per call to /MonitorC/GetStatus and /MonitorC/GetMemoryUsage. A Python
MonitorS stand-in (grpcio server) receives Register at start and Deregister on
SIGTERM. Hostile input (garbage bytes on the port, unknown methods, oversized
and undecodable messages, a missing load file, a dead or slow app URL) must
leave the agent alive and answering. Also: registration when MonitorS comes
up late, the instance id from IMDSv2 (tests/tools/fake_imds.py), usage errors.

Run with /usr/bin/python3; PYTHONPATH holds build/gen/py (monitor_pb2).
Every port is ephemeral; every file lives in a private temporary directory.

With ASGD_TEST_TLS=1 in the environment when this module is imported
(test_agent_interop_tls.py does that), every test runs over mutual TLS: the
agent serves with a certificate from a throw-away CA (tests/tools/tlsca.py)
and requires client certificates; the Python clients and the MonitorS
stand-in use certificates from the same CA.
"""
import http.server
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.request
from concurrent import futures

import grpc
import monitor_pb2 as pb
from asgd_harness import free_port

TLS = None
if os.environ.get("ASGD_TEST_TLS") == "1":
    import atexit
    import shutil

    import tlsca
    _tlsdir = tempfile.mkdtemp(prefix="agent-interop-tls-")
    atexit.register(shutil.rmtree, _tlsdir, True)
    _ca = tlsca.CA(_tlsdir)
    _agent_cert, _agent_key = _ca.issue("agent")
    _client_cert, _client_key = _ca.issue("monitors")
    TLS = {"ca": _ca.cert, "agent_flags": ["--tls-cert", _agent_cert, "--tls-key", _agent_key,
                                           "--tls-ca", _ca.cert],
           "client": grpc.ssl_channel_credentials(tlsca.read(_ca.cert), tlsca.read(_client_key),
                                                  tlsca.read(_client_cert)),
           "server": grpc.ssl_server_credentials([(tlsca.read(_client_key),
                                                   tlsca.read(_client_cert))],
                                                 tlsca.read(_ca.cert), True)}


def channel(target, options=None):
    """A channel to target: plain text, or mutual TLS in TLS mode."""
    if TLS:
        return grpc.secure_channel(target, TLS["client"], options=options)
    return grpc.insecure_channel(target, options=options)

BIN = os.path.join(os.environ.get("ASGD_BIN", "build/bin"), "monitorc")
SRC = os.environ.get("ASGD_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))


def seed_call(target, method, req, resp_type, timeout=3.0):
    """One call on a brand-new channel, as the seed's MonitorS did."""
    with channel(target) as ch:
        fn = ch.unary_unary(method, request_serializer=lambda m: m.SerializeToString(),
                            response_deserializer=resp_type.FromString)
        return fn(req, timeout=timeout)


def raw_call(target, method, payload, timeout=3.0):
    """Sends raw bytes as the request and returns the raw response bytes."""
    with channel(target, options=[("grpc.max_send_message_length", 8 << 20)]) as ch:
        fn = ch.unary_unary(method, request_serializer=lambda b: b,
                            response_deserializer=lambda b: b)
        return fn(payload, timeout=timeout)


def wait_until(pred, timeout=10.0, step=0.05):
    """Polls pred (an RpcError counts as false) until true or timeout."""
    def attempt():
        try:
            return pred()
        except grpc.RpcError:
            return False
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = attempt()
        if v:
            return v
        time.sleep(step)
    return attempt()


class MonitorSStandIn:
    """A MonitorS that records Register/Deregister calls."""

    def __init__(self, port=0):
        self.lock = threading.Lock()
        self.registers = []
        self.deregisters = []
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        handlers = {
            "Register": grpc.unary_unary_rpc_method_handler(
                self._register, request_deserializer=pb.RegisterRequest.FromString,
                response_serializer=pb.RegisterReply.SerializeToString),
            "Deregister": grpc.unary_unary_rpc_method_handler(
                self._deregister, request_deserializer=pb.DeregisterRequest.FromString,
                response_serializer=pb.DeregisterReply.SerializeToString),
        }
        self.server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler("MonitorS", handlers),))
        if TLS:
            self.port = self.server.add_secure_port("127.0.0.1:%d" % port, TLS["server"])
        else:
            self.port = self.server.add_insecure_port("127.0.0.1:%d" % port)
        self.server.start()

    def _register(self, req, ctx):
        with self.lock:
            self.registers.append(req)
        return pb.RegisterReply(accepted=True, message="registered", poll_interval_ms=1000)

    def _deregister(self, req, ctx):
        with self.lock:
            self.deregisters.append(req)
        return pb.DeregisterReply(ok=True)

    def count(self, what):
        with self.lock:
            return len(getattr(self, what))

    def stop(self):
        self.server.stop(0)


class App:
    """The instance's web application: answers 200, 503, or too slowly."""

    def __init__(self):
        self.mode = "ok"
        app = self

        class H(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                if app.mode == "slow":
                    time.sleep(1.5)
                code = 200 if app.mode in ("ok", "slow") else 503
                self.send_response(code)
                self.send_header("Content-Length", "2")
                self.end_headers()
                try:
                    self.wfile.write(b"ok")
                except OSError:
                    pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


class Agent:
    def __init__(self, tmp, args, env=None, name="agent"):
        self.port = free_port()
        self.target = "127.0.0.1:%d" % self.port
        self.log_path = os.path.join(tmp, name + ".log")
        self.log = open(self.log_path, "w")
        e = dict(os.environ)
        e.setdefault("AWS_EC2_METADATA_DISABLED", "true")
        if env:
            e.update(env)
        if TLS:
            args = args + TLS["agent_flags"]
        self.proc = subprocess.Popen([BIN, "--listen", self.target] + args, stdout=self.log,
                                     stderr=subprocess.STDOUT, env=e)

    def wait_ready(self, timeout=10.0):
        def ok():
            try:
                seed_call(self.target, "/MonitorC/Ping", pb.PingRequest(seq=1), pb.Pong, 1.0)
                return True
            except grpc.RpcError:
                return False
        assert wait_until(ok, timeout), "agent did not start:\n" + self.logs()

    def alive(self):
        return self.proc.poll() is None

    def stop(self, sig=signal.SIGTERM, timeout=15):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=timeout)
        finally:
            self.log.close()

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if not self.log.closed:
            self.log.close()

    def logs(self):
        if not self.log.closed:
            self.log.flush()
        with open(self.log_path) as f:
            return f.read()


class AgentInterop(unittest.TestCase):
    def setUp(self):
        self.tmpobj = tempfile.TemporaryDirectory(prefix="agent-interop-%d-" % os.getpid())
        self.tmp = self.tmpobj.name
        self.cleanup = []

    def tearDown(self):
        for fn in reversed(self.cleanup):
            try:
                fn()
            except Exception:
                pass
        self.tmpobj.cleanup()

    def write(self, name, text):
        path = os.path.join(self.tmp, name)
        with open(path + ".tmp", "w") as f:
            f.write(text)
        os.rename(path + ".tmp", path)
        return path

    def usage(self, target):
        return seed_call(target, "/MonitorC/GetMemoryUsage", pb.Request(code=1),
                         pb.MemoryUsageResponse).usage

    def status(self, target):
        return seed_call(target, "/MonitorC/GetStatus", pb.Request(code=1),
                         pb.StatusResponse).status

    def test_seed_client_registration_and_sigterm(self):
        mon = MonitorSStandIn()
        self.cleanup.append(mon.stop)
        load = self.write("load", "42\n")
        token = self.write("token", "tok-123\n")
        adv = "127.0.0.77:6000"
        agent = Agent(self.tmp, ["--instance-id", "i-interop1", "--advertise", adv, "--monitor",
                                 "127.0.0.1:%d" % mon.port, "--token-file", token,
                                 "--load", "file:" + load])
        self.cleanup.append(agent.kill)
        agent.wait_ready()

        # Register at start, with what MonitorS needs
        self.assertTrue(wait_until(lambda: mon.count("registers") >= 1), agent.logs())
        r = mon.registers[0]
        self.assertEqual(r.instance_id, "i-interop1")
        self.assertEqual(r.address, adv)
        self.assertEqual(r.token, "tok-123")
        self.assertTrue(r.agent_version)
        self.assertNotIn("tok-123", agent.logs())  # never log the secret

        # the seed's two calls, a new channel each time
        self.assertEqual(self.status(agent.target), "OK")
        self.assertEqual(self.usage(agent.target), 42)
        self.write("load", "73.4")
        self.assertTrue(wait_until(lambda: self.usage(agent.target) == 73, 5))

        # this project's additions
        pong = seed_call(agent.target, "/MonitorC/Ping", pb.PingRequest(seq=99), pb.Pong)
        self.assertEqual(pong.seq, 99)
        self.assertEqual(pong.instance_id, "i-interop1")
        self.assertGreater(pong.uptime_ms, 0)
        m = seed_call(agent.target, "/MonitorC/GetMetrics", pb.MetricsRequest(), pb.Metrics)
        self.assertEqual(m.instance_id, "i-interop1")
        self.assertAlmostEqual(m.cpu_load, 73.4, places=3)
        self.assertTrue(0 <= m.mem_used_pct <= 100)
        self.assertGreaterEqual(m.load1, 0)
        self.assertTrue(m.app_healthy)
        self.assertFalse(m.draining)
        self.assertGreater(m.sampled_at_ms, 1_600_000_000_000)

        # SIGTERM: Deregister, exit 0
        self.assertEqual(mon.count("deregisters"), 0)
        rc = agent.stop(signal.SIGTERM)
        self.assertEqual(rc, 0, agent.logs())
        self.assertEqual(mon.count("deregisters"), 1)
        d = mon.deregisters[0]
        self.assertEqual(d.instance_id, "i-interop1")
        self.assertEqual(d.token, "tok-123")

    def test_hostile_input_leaves_it_alive(self):
        load = self.write("load", "10")
        agent = Agent(self.tmp, ["--instance-id", "i-hostile", "--load", "file:" + load])
        self.cleanup.append(agent.kill)
        agent.wait_ready()

        # garbage bytes on the port, then an HTTP/1.1 request, then a half-open preface
        for junk in (os.urandom(4096), b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
                     b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\xff" * 100, b"\x00" * 65536):
            s = socket.create_connection(("127.0.0.1", agent.port), timeout=2)
            try:
                s.sendall(junk)
                s.settimeout(0.5)
                try:
                    s.recv(1024)
                except (socket.timeout, OSError):
                    pass
            finally:
                s.close()
        self.assertTrue(agent.alive())

        # unknown method and unknown service
        for method in ("/MonitorC/Nope", "/Other/GetStatus", "/MonitorS/Register"):
            with self.assertRaises(grpc.RpcError) as cm:
                raw_call(agent.target, method, b"")
            self.assertEqual(cm.exception.code(), grpc.StatusCode.UNIMPLEMENTED)

        # oversized request
        with self.assertRaises(grpc.RpcError) as cm:
            raw_call(agent.target, "/MonitorC/GetStatus", b"\x08" * (1 << 20))
        self.assertEqual(cm.exception.code(), grpc.StatusCode.RESOURCE_EXHAUSTED)

        # undecodable protobuf
        with self.assertRaises(grpc.RpcError) as cm:
            raw_call(agent.target, "/MonitorC/GetStatus", b"\xff\xff\xff\xff")
        self.assertEqual(cm.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)

        # missing load file: the metric says so, liveness stays
        os.unlink(load)
        def unavailable():
            try:
                self.usage(agent.target)
                return False
            except grpc.RpcError as e:
                return e.code() == grpc.StatusCode.UNAVAILABLE and "load" in e.details()
        self.assertTrue(wait_until(unavailable, 5))
        self.assertEqual(self.status(agent.target), "OK")
        m = seed_call(agent.target, "/MonitorC/GetMetrics", pb.MetricsRequest(), pb.Metrics)
        self.assertLess(m.cpu_load, 0)
        self.write("load", "55")
        self.assertTrue(wait_until(lambda: self.usage(agent.target) == 55, 5))

        # many seed-style calls in parallel
        with futures.ThreadPoolExecutor(8) as ex:
            got = list(ex.map(lambda _: self.usage(agent.target), range(64)))
        self.assertEqual(got, [55] * 64)
        self.assertTrue(agent.alive())
        self.assertEqual(agent.stop(signal.SIGINT), 0)

    def test_app_health_and_late_monitor(self):
        app = App()
        self.cleanup.append(app.stop)
        mport = free_port()
        agent = Agent(self.tmp, ["--instance-id", "i-app", "--advertise", "127.0.0.1:1",
                                 "--monitor", "127.0.0.1:%d" % mport,
                                 "--app-url", "http://127.0.0.1:%d/health" % app.port,
                                 "--app-timeout", "300ms", "--load", "simulate:seed=4"])
        self.cleanup.append(agent.kill)
        agent.wait_ready()
        # MonitorS is down: the agent serves anyway and keeps trying
        self.assertTrue(wait_until(lambda: self.status(agent.target) == "OK", 5))
        u = self.usage(agent.target)
        self.assertTrue(10 <= u <= 90)
        mon = MonitorSStandIn(mport)
        self.cleanup.append(mon.stop)
        self.assertTrue(wait_until(lambda: mon.count("registers") >= 1, 20), agent.logs())

        app.mode = "fail"
        self.assertTrue(wait_until(lambda: self.status(agent.target) == "NOT OK", 6))
        m = seed_call(agent.target, "/MonitorC/GetMetrics", pb.MetricsRequest(), pb.Metrics)
        self.assertFalse(m.app_healthy)
        app.mode = "ok"
        self.assertTrue(wait_until(lambda: self.status(agent.target) == "OK", 6))
        app.mode = "slow"  # answers 200, but after the timeout
        self.assertTrue(wait_until(lambda: self.status(agent.target) == "NOT OK", 8))
        app.stop()  # dead app
        self.cleanup.remove(app.stop)
        self.assertEqual(self.status(agent.target), "NOT OK")
        self.assertTrue(agent.alive())
        self.assertEqual(agent.stop(), 0, agent.logs())
        self.assertEqual(mon.count("deregisters"), 1)

    def test_instance_id_from_imds(self):
        imds = subprocess.Popen(["/usr/bin/python3", os.path.join(SRC, "tests/tools/fake_imds.py")],
                                stdout=subprocess.PIPE, text=True)
        self.cleanup.append(lambda: (imds.kill(), imds.wait(), imds.stdout.close()))
        line = imds.stdout.readline().split()
        self.assertEqual(line[0], "port")
        ep = "http://127.0.0.1:%s" % line[1]
        # what the fake says, fetched the IMDSv2 way
        tok = urllib.request.urlopen(urllib.request.Request(
            ep + "/latest/api/token", method="PUT",
            headers={"X-aws-ec2-metadata-token-ttl-seconds": "60"}), timeout=5).read().decode()
        want = urllib.request.urlopen(urllib.request.Request(
            ep + "/latest/meta-data/instance-id",
            headers={"X-aws-ec2-metadata-token": tok}), timeout=5).read().decode()
        agent = Agent(self.tmp, ["--load", "simulate"], name="imds",
                      env={"AWS_EC2_METADATA_SERVICE_ENDPOINT": ep,
                           "AWS_EC2_METADATA_DISABLED": "false"})
        self.cleanup.append(agent.kill)
        agent.wait_ready()
        pong = seed_call(agent.target, "/MonitorC/Ping", pb.PingRequest(seq=1), pb.Pong)
        self.assertEqual(pong.instance_id, want)
        self.assertEqual(agent.stop(), 0)

        # disabled: the host name, without waiting for the metadata service
        agent = Agent(self.tmp, ["--load", "simulate"], name="noimds",
                      env={"AWS_EC2_METADATA_SERVICE_ENDPOINT": ep,
                           "AWS_EC2_METADATA_DISABLED": "true"})
        self.cleanup.append(agent.kill)
        agent.wait_ready()
        pong = seed_call(agent.target, "/MonitorC/Ping", pb.PingRequest(seq=1), pb.Pong)
        self.assertEqual(pong.instance_id, socket.gethostname())
        self.assertEqual(agent.stop(), 0)

    def test_sigterm_with_monitor_never_reachable(self):
        agent = Agent(self.tmp, ["--instance-id", "i-lonely", "--monitor",
                                 "127.0.0.1:%d" % free_port(), "--load", "simulate"])
        self.cleanup.append(agent.kill)
        agent.wait_ready()
        time.sleep(1.0)  # a few failed registrations, in backoff now
        self.assertEqual(self.status(agent.target), "OK")
        self.assertEqual(agent.stop(), 0, agent.logs())  # stop() gives up after 15 s
        self.assertIn("registration with MonitorS", agent.logs())
        self.assertNotIn("deregistered", agent.logs())

    def test_usage_errors_and_taken_port(self):
        def run(*args):
            return subprocess.run([BIN] + list(args), capture_output=True, text=True, timeout=20,
                                  env=dict(os.environ, AWS_EC2_METADATA_DISABLED="true"))
        r = run("--version")
        self.assertEqual(r.returncode, 0)
        self.assertTrue(r.stdout.startswith("monitorc "))
        r = run("--help")
        self.assertEqual(r.returncode, 0)
        self.assertIn("--listen", r.stdout)
        for bad in (["--bogus"], ["--listen"], ["--listen", "nope"], ["--listen", "1.2.3.4:99999"],
                    ["--monitor", "x"], ["--load", "cpu"], ["--load", "simulate:min=9,max=2"],
                    ["--log-level", "loud"], ["--instance-id", "bad id"], ["--app-url", "ftp://x"],
                    ["--token-file", os.path.join(self.tmp, "missing")], ["extra"],
                    ["--app-timeout", "forever"]):
            r = run(*bad)
            self.assertEqual(r.returncode, 2, "%s: %s" % (bad, r.stderr))
            self.assertIn("monitorc: ", r.stderr)
        empty = self.write("empty-token", "\n")
        r = run("--token-file", empty)
        self.assertEqual(r.returncode, 2)
        self.assertIn("empty", r.stderr)
        # a port someone else holds: exit 3 (cannot listen), with the reason
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        try:
            r = run("--listen", "127.0.0.1:%d" % s.getsockname()[1], "--instance-id", "x",
                    "--load", "simulate")
        finally:
            s.close()
        self.assertEqual(r.returncode, 3, r.stderr)
        self.assertIn("cannot listen", r.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
