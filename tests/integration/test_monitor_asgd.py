#!/usr/bin/python3
"""MonitorS end to end: `asgd monitor` with real agents, seen through `asgd status --json`.

- a rogue Register (wrong token, no token) is refused and never shows up;
- garbage on the MonitorS port (raw bytes, undecodable messages) does not
  crash asgd;
- a real monitorc registers (accept_unknown), becomes healthy with the load
  its load file says, and after kill -9 is unhealthy within
  interval * unhealthy_threshold + timeout (the measured time is printed);
- a seed-style grpcio agent (GetStatus/GetMemoryUsage only), registered on
  its behalf, is monitored through the seed methods (its load arrives).

With ASGD_TEST_TLS=1 (test_monitor_asgd_tls.py) the same checks run over
mutual TLS: [monitor] tls_ca_file/tls_cert_file/tls_key_file on asgd,
--tls-cert/--tls-key/--tls-ca on monitorc, certificates from a throw-away CA
(tests/tools/tlsca.py); the seed agent, which has no TLS, is left out.
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import grpc
import monitor_pb2
import tlsca
from asgd_harness import free_port

BIN = os.environ.get("ASGD_BIN", "build/bin")
SRC = os.environ.get("ASGD_SOURCE_DIR", ".")
TOKEN = "integration-token-%d" % os.getpid()
INTERVAL_MS, TIMEOUT_MS, RISE, FALL = 200, 150, 2, 3
TLS = os.environ.get("ASGD_TEST_TLS") == "1"
CREDS = None  # TLS: the test's client credentials (set by Run)


def channel(target):
    if CREDS:
        return grpc.secure_channel(target, CREDS)
    return grpc.insecure_channel(target)


def register(port, instance_id, address, token):
    with channel("127.0.0.1:%d" % port) as ch:
        call = ch.unary_unary("/MonitorS/Register",
                              request_serializer=monitor_pb2.RegisterRequest.SerializeToString,
                              response_deserializer=monitor_pb2.RegisterReply.FromString)
        return call(monitor_pb2.RegisterRequest(instance_id=instance_id, address=address,
                                                token=token, agent_version="test"), timeout=5)


def raw_call(port, method, payload):
    with channel("127.0.0.1:%d" % port) as ch:
        call = ch.unary_unary(method, request_serializer=lambda b: b,
                              response_deserializer=lambda b: b)
        try:
            call(payload, timeout=5)
            return grpc.StatusCode.OK
        except grpc.RpcError as e:
            return e.code()


class Run:
    def __init__(self):
        self.tmp = tempfile.mkdtemp(prefix="asgd-montest-")
        self.group = "montest-%d" % os.getpid()
        self.mport = free_port()
        self.procs = []
        token_file = os.path.join(self.tmp, "token")
        with open(token_file, "w") as f:
            f.write(TOKEN + "\n")
        self.token_file = token_file
        self.cfg = os.path.join(self.tmp, "asgd.ini")
        self.tls_conf, self.agent_tls = "", []
        if TLS:
            global CREDS
            ca = tlsca.CA(os.path.join(self.tmp, "pki"))
            node_cert, node_key = ca.issue("asgd")
            agent_cert, agent_key = ca.issue("agent")
            test_cert, test_key = ca.issue("test")
            self.tls_conf = "tls_ca_file = %s\ntls_cert_file = %s\ntls_key_file = %s\n" % (
                ca.cert, node_cert, node_key)
            self.agent_tls = ["--tls-cert", agent_cert, "--tls-key", agent_key, "--tls-ca",
                              ca.cert]
            CREDS = grpc.ssl_channel_credentials(ca.read(), tlsca.read(test_key),
                                                 tlsca.read(test_cert))
        with open(self.cfg, "w") as f:
            f.write("""[group]
name = %s
min_size = 0
max_size = 4

[health]
interval = %dms
timeout = %dms
healthy_threshold = %d
unhealthy_threshold = %d

[monitor]
listen = 127.0.0.1:%d
token_file = %s
accept_unknown = true
%s
[provider]
type = local

[store]
dir = %s/state
""" % (self.group, INTERVAL_MS, TIMEOUT_MS, RISE, FALL, self.mport, token_file, self.tls_conf,
       self.tmp))
        self.log = open(os.path.join(self.tmp, "asgd.log"), "w")

    def spawn(self, argv, **kw):
        p = subprocess.Popen(argv, stdout=kw.pop("stdout", subprocess.DEVNULL), stderr=self.log,
                             **kw)
        self.procs.append(p)
        return p

    def status(self):
        out = subprocess.run([os.path.join(BIN, "asgd"), "status", "-c", self.cfg, "--json"],
                             capture_output=True, text=True, timeout=10)
        if out.returncode != 0:
            return None
        return json.loads(out.stdout)

    def instance(self, iid):
        st = self.status()
        if not st:
            return None
        for it in st["instances"]:
            if it["id"] == iid:
                return it
        return None

    def wait(self, what, pred, limit=20.0):
        t0 = time.monotonic()
        while time.monotonic() - t0 < limit:
            v = pred()
            if v:
                return time.monotonic() - t0
            time.sleep(0.02)
        raise AssertionError("timed out waiting for " + what)

    def dump(self):
        self.log.flush()
        with open(os.path.join(self.tmp, "asgd.log")) as f:
            sys.stderr.write(f.read()[-6000:])

    def close(self):
        for p in reversed(self.procs):
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        self.log.close()
        try:
            os.unlink("/dev/shm/asgd-" + self.group)
        except FileNotFoundError:
            pass
        shutil.rmtree(self.tmp, ignore_errors=True)


def main():
    r = Run()
    try:
        asgd = r.spawn([os.path.join(BIN, "asgd"), "monitor", "-c", r.cfg])
        with channel("127.0.0.1:%d" % r.mport) as ch:
            grpc.channel_ready_future(ch).result(timeout=15)
        r.wait("the monitor's heartbeat", lambda: (r.status() or {}).get("monitor_alive"))

        # rogue registrations: refused, never in the table
        for tok in ("wrong", "", TOKEN[:-1], TOKEN + "x"):
            rep = register(r.mport, "i-rogue", "127.0.0.1:1", tok)
            assert not rep.accepted, "a Register with token %r was accepted" % tok
            assert rep.message == "bad token", rep.message
        assert r.instance("i-rogue") is None

        # hostile bytes
        assert raw_call(r.mport, "/MonitorS/Register", b"\xff\xff\xff\xff\x0f") == \
            grpc.StatusCode.INVALID_ARGUMENT
        assert raw_call(r.mport, "/MonitorS/Deregister", b"\x0a\xff") == \
            grpc.StatusCode.INVALID_ARGUMENT
        assert raw_call(r.mport, "/MonitorS/Nope", b"") == grpc.StatusCode.UNIMPLEMENTED
        for junk in (b"GET / HTTP/1.1\r\n\r\n", os.urandom(4096),
                     b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + os.urandom(512)):
            s = socket.create_connection(("127.0.0.1", r.mport))
            s.sendall(junk)
            s.close()
        assert asgd.poll() is None, "asgd died on hostile input"

        # a real monitorc
        load_file = os.path.join(r.tmp, "load")
        with open(load_file, "w") as f:
            f.write("55\n")
        aport = free_port()
        agent_argv = [os.path.join(BIN, "monitorc"), "--listen", "127.0.0.1:%d" % aport,
                      "--instance-id", "i-real", "--monitor", "127.0.0.1:%d" % r.mport,
                      "--token-file", r.token_file, "--load", "file:" + load_file] + r.agent_tls
        agent = r.spawn(agent_argv)
        took = r.wait("monitorc healthy", lambda: (r.instance("i-real") or {}).get("health") ==
                      "healthy")
        it = r.instance("i-real")
        assert it["address"] == "127.0.0.1:%d" % aport, it
        assert it["lifecycle"] == "pending", it
        r.wait("load 55", lambda: (r.instance("i-real") or {}).get("load") == 55.0)
        print("monitorc registered and healthy %.0f ms after spawn" % (took * 1000))

        # a seed agent, registered on its behalf (it has no TLS: not in TLS mode)
        seed = None if TLS else r.spawn(["/usr/bin/python3", os.path.join(SRC, "tests/tools/seed_agent.py"),
                        "--load", "37"], stdout=subprocess.PIPE, stdin=subprocess.PIPE)
        if seed:
            sport = int(seed.stdout.readline())
            rep = register(r.mport, "i-seed", "127.0.0.1:%d" % sport, TOKEN)
            assert rep.accepted and rep.poll_interval_ms == INTERVAL_MS, rep
            r.wait("seed agent healthy with load 37",
                   lambda: (r.instance("i-seed") or {}).get("health") == "healthy" and
                   r.instance("i-seed").get("load") == 37.0)

        # kill -9 of the agent: unhealthy within interval * fall + timeout (+ status polling)
        t0 = time.monotonic()
        agent.send_signal(signal.SIGKILL)
        agent.wait()
        r.wait("monitorc unhealthy", lambda: (r.instance("i-real") or {}).get("health") ==
               "unhealthy")
        took = time.monotonic() - t0
        print("kill -9 detected after %.0f ms (interval %d ms x %d + timeout %d ms = %d ms)" %
              (took * 1000, INTERVAL_MS, FALL, TIMEOUT_MS, INTERVAL_MS * FALL + TIMEOUT_MS))
        # the seed agent was not disturbed
        assert seed is None or r.instance("i-seed")["health"] == "healthy"

        # restarted on the same address: healthy again
        agent = r.spawn(agent_argv)
        took = r.wait("monitorc healthy again",
                      lambda: (r.instance("i-real") or {}).get("health") == "healthy")
        print("restarted agent healthy again after %.0f ms" % (took * 1000))
        assert asgd.poll() is None
        if TLS:
            r.log.flush()
            with open(os.path.join(r.tmp, "asgd.log")) as f:
                assert "(TLS, agent certificates required)" in f.read()
        print("ok")
        return 0
    except BaseException:
        r.dump()
        raise
    finally:
        r.close()


if __name__ == "__main__":
    sys.exit(main())
