#!/usr/bin/python3
"""TLS refusals and certificate reloads, with certificates made by openssl in the test.

- monitorc with --tls-cert/--tls-key/--tls-ca (mutual TLS): a client with a
  certificate of the right CA is served; one without a certificate, with a
  certificate of another CA, trusting another CA, or in plain text is refused;
  an expired certificate is loaded with a warning and refused by clients;
  SIGHUP re-reads the files (the next handshake shows the new certificate) and
  a bad file is refused with the previous certificate kept.
- asgd monitor with [monitor] tls_*: an agent of the right CA registers and is
  healthy; an agent of another CA and an agent with an expired certificate
  cannot register (their logs say why) and, registered on their behalf, are
  polled unhealthy with the TLS failure in asgd's log line.
- asgd run with [api] tls_cert_file/tls_key_file: asgctl --cacert over
  https:// reads and writes; without the CA, with another CA, or over http://
  it fails as unreachable; SIGHUP serves a new certificate, a bad one is
  refused and the old one kept.
"""
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import unittest

import grpc
import monitor_pb2 as pb
import tlsca
from asgd_harness import free_port

BIN = os.environ.get("ASGD_BIN", "build/bin")
TOKEN = "tls-token-%d" % os.getpid()


def wait_until(pred, timeout=15.0, step=0.05):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            v = pred()
        except grpc.RpcError:
            v = False
        if v:
            return v
        time.sleep(step)
    return False


def ping(target, creds, timeout=3.0):
    """Ping over creds (None: plain text); returns the Pong or raises grpc.RpcError."""
    ch = grpc.secure_channel(target, creds) if creds else grpc.insecure_channel(target)
    with ch:
        fn = ch.unary_unary("/MonitorC/Ping", request_serializer=pb.PingRequest.SerializeToString,
                            response_deserializer=pb.Pong.FromString)
        return fn(pb.PingRequest(seq=7), timeout=timeout)


def refused(target, creds):
    try:
        ping(target, creds, 2.0)
        return False
    except grpc.RpcError as e:
        return e.code() == grpc.StatusCode.UNAVAILABLE


def peer_der(port, ca, cert=None, key=None, alpn=None):
    """The DER certificate the server at 127.0.0.1:port presents in a new handshake."""
    ctx = ssl.create_default_context(cafile=ca)
    if cert:
        ctx.load_cert_chain(cert, key)
    if alpn:
        ctx.set_alpn_protocols(alpn)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        with ctx.wrap_socket(s, server_hostname="127.0.0.1") as t:
            return t.getpeercert(binary_form=True)


def der_of(pem_path):
    with open(pem_path) as f:
        return ssl.PEM_cert_to_DER_cert(f.read())


class Proc:
    def __init__(self, tmp, name, argv):
        self.log_path = os.path.join(tmp, name + ".log")
        self.log = open(self.log_path, "w")
        env = dict(os.environ, AWS_EC2_METADATA_DISABLED="true")
        self.p = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT, env=env)

    def logs(self):
        self.log.flush()
        with open(self.log_path) as f:
            return f.read()

    def stop(self):
        if self.p.poll() is None:
            self.p.terminate()
            try:
                self.p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        self.log.close()


class TLS(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="asgd-tls-")
        cls.ca = tlsca.CA(os.path.join(cls.tmp, "pki"), "good")
        cls.rogue = tlsca.CA(os.path.join(cls.tmp, "pki"), "rogue")
        cls.node = cls.ca.issue("asgd")
        cls.agent = cls.ca.issue("agent")
        cls.agent2 = cls.ca.issue("agent2")
        cls.expired = cls.ca.issue("expired", expired=True)
        cls.client = cls.ca.issue("client")
        cls.rogue_agent = cls.rogue.issue("agent")
        cls.rogue_client = cls.rogue.issue("client")
        good = tlsca.read(cls.ca.cert)
        cls.creds = grpc.ssl_channel_credentials(good, tlsca.read(cls.client[1]),
                                                 tlsca.read(cls.client[0]))
        cls.creds_nocert = grpc.ssl_channel_credentials(good)
        cls.creds_rogue_cert = grpc.ssl_channel_credentials(
            good, tlsca.read(cls.rogue_client[1]), tlsca.read(cls.rogue_client[0]))
        cls.creds_rogue_ca = grpc.ssl_channel_credentials(
            tlsca.read(cls.rogue.cert), tlsca.read(cls.client[1]), tlsca.read(cls.client[0]))

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def setUp(self):
        self.procs = []

    def tearDown(self):
        for p in reversed(self.procs):
            p.stop()

    def spawn(self, name, argv):
        p = Proc(self.tmp, name, argv)
        self.procs.append(p)
        return p

    def copy_pair(self, pair, name):
        """Copies (cert, key) to files the test may overwrite later."""
        cert, key = os.path.join(self.tmp, name + ".pem"), os.path.join(self.tmp, name + ".key")
        shutil.copyfile(pair[0], cert)
        shutil.copyfile(pair[1], key)
        os.chmod(key, 0o600)
        return cert, key

    def agent_proc(self, name, pair, ca, extra=()):
        port = free_port()
        p = self.spawn(name, [os.path.join(BIN, "monitorc"), "--listen", "127.0.0.1:%d" % port,
                              "--instance-id", "i-" + name, "--load", "simulate",
                              "--tls-cert", pair[0], "--tls-key", pair[1], "--tls-ca", ca] +
                       list(extra))
        p.port = port
        p.target = "127.0.0.1:%d" % port
        return p

    # ---- monitorc ---------------------------------------------------------------------------

    def test_agent_mutual_tls_refusals_and_reload(self):
        pair = self.copy_pair(self.agent, "agent-live")
        a = self.agent_proc("a1", pair, self.ca.cert)
        self.assertTrue(wait_until(lambda: ping(a.target, self.creds).seq == 7), a.logs())
        self.assertIn("TLS, client certificates required", a.logs())
        self.assertTrue(refused(a.target, self.creds_nocert), "served a client without cert")
        self.assertTrue(refused(a.target, self.creds_rogue_cert), "served another CA's client")
        self.assertTrue(refused(a.target, self.creds_rogue_ca), "trusted by the wrong CA")
        self.assertTrue(refused(a.target, None), "served plain text")
        # what the agent presents, seen by a TLS client with ALPN h2 (as the nghttp2 poller)
        self.assertEqual(peer_der(a.port, self.ca.cert, *self.client, alpn=["h2"]),
                         der_of(self.agent[0]))

        # SIGHUP: the next handshake presents the new certificate
        shutil.copyfile(self.agent2[0], pair[0])
        shutil.copyfile(self.agent2[1], pair[1])
        a.p.send_signal(signal.SIGHUP)
        self.assertTrue(wait_until(lambda: "TLS certificate files reloaded" in a.logs(), 5))
        self.assertTrue(wait_until(lambda: peer_der(a.port, self.ca.cert, *self.client,
                                                    alpn=["h2"]) == der_of(self.agent2[0]), 5))
        self.assertEqual(ping(a.target, self.creds).seq, 7)

        # a bad key: refused with the reason, the previous certificate stays
        with open(pair[1], "w") as f:
            f.write("not a key\n")
        a.p.send_signal(signal.SIGHUP)
        self.assertTrue(wait_until(lambda: "TLS files not reloaded" in a.logs(), 5), a.logs())
        self.assertIn(pair[1], a.logs())
        self.assertEqual(ping(a.target, self.creds).seq, 7)
        self.assertEqual(peer_der(a.port, self.ca.cert, *self.client), der_of(self.agent2[0]))
        self.assertIsNone(a.p.poll())

    def test_agent_expired_certificate(self):
        a = self.agent_proc("exp", self.expired, self.ca.cert)
        self.assertTrue(wait_until(lambda: "serving MonitorC" in a.logs(), 10), a.logs())
        self.assertIn("expired on", a.logs())
        self.assertTrue(refused(a.target, self.creds), "a client accepted an expired certificate")
        with self.assertRaises(ssl.SSLCertVerificationError) as cm:
            peer_der(a.port, self.ca.cert, *self.client)
        self.assertIn("expired", str(cm.exception))

    def test_agent_usage_errors(self):
        def run(*args):
            return subprocess.run([os.path.join(BIN, "monitorc")] + list(args),
                                  capture_output=True, text=True, timeout=20,
                                  env=dict(os.environ, AWS_EC2_METADATA_DISABLED="true"))
        cases = [
            (["--tls-ca", self.ca.cert], "need --tls-cert"),
            (["--tls-cert", self.agent[0]], "needs --tls-key"),
            (["--tls-cert", self.agent[0], "--tls-key", self.client[1]], "does not match"),
            (["--tls-cert", self.agent[0], "--tls-key", "/nonexistent/key"], "/nonexistent/key"),
            (["--tls-cert", self.agent[0], "--tls-key", self.agent[1], "--tls-ca", self.agent[1]],
             "holds no PEM certificate"),
        ]
        for args, want in cases:
            r = run("--listen", "127.0.0.1:0", "--instance-id", "x", *args)
            self.assertEqual(r.returncode, 2, "%s: %s" % (args, r.stderr))
            self.assertIn(want, r.stderr, args)

    # ---- asgd monitor -----------------------------------------------------------------------

    def write_token(self):
        path = os.path.join(self.tmp, "token")
        with open(path, "w") as f:
            f.write(TOKEN + "\n")
        os.chmod(path, 0o600)
        return path

    def test_monitor_refuses_wrong_ca_and_expired(self):
        group = "tlsmon-%d" % os.getpid()
        mport = free_port()
        token = self.write_token()
        cfg = os.path.join(self.tmp, "mon.ini")
        with open(cfg, "w") as f:
            f.write("""[group]
name = %s
min_size = 0
max_size = 4
[health]
interval = 200ms
timeout = 150ms
healthy_threshold = 2
unhealthy_threshold = 2
[monitor]
listen = 127.0.0.1:%d
token_file = %s
accept_unknown = true
tls_ca_file = %s
tls_cert_file = %s
tls_key_file = %s
[provider]
type = local
[store]
dir = %s/mon-state
""" % (group, mport, token, self.ca.cert, self.node[0], self.node[1], self.tmp))
        self.addCleanup(lambda: os.path.exists("/dev/shm/asgd-" + group) and
                        os.unlink("/dev/shm/asgd-" + group))
        # debug: a pending instance that never was healthy goes unhealthy at debug level
        asgd = self.spawn("asgd-mon", [os.path.join(BIN, "asgd"), "monitor", "-c", cfg,
                                       "--log-level", "debug"])

        def instance(iid):
            out = subprocess.run([os.path.join(BIN, "asgd"), "status", "-c", cfg, "--json"],
                                 capture_output=True, text=True, timeout=10)
            if out.returncode != 0:
                return {}
            for it in json.loads(out.stdout)["instances"]:
                if it["id"] == iid:
                    return it
            return {}

        def register(iid, address):
            with grpc.secure_channel("127.0.0.1:%d" % mport, self.creds) as ch:
                fn = ch.unary_unary("/MonitorS/Register",
                                    request_serializer=pb.RegisterRequest.SerializeToString,
                                    response_deserializer=pb.RegisterReply.FromString)
                return fn(pb.RegisterRequest(instance_id=iid, address=address, token=TOKEN,
                                             agent_version="test"), timeout=5)

        self.assertTrue(wait_until(lambda: "agent certificates required" in asgd.logs(), 15),
                        asgd.logs())
        mon = ["--monitor", "127.0.0.1:%d" % mport, "--token-file", token]
        good = self.agent_proc("good", self.agent, self.ca.cert, mon)
        self.assertTrue(wait_until(lambda: instance("i-good").get("health") == "healthy", 20),
                        asgd.logs() + good.logs())
        # plain text and a client without a certificate are refused by MonitorS
        for creds in (None, self.creds_nocert):
            ch = (grpc.secure_channel("127.0.0.1:%d" % mport, creds) if creds
                  else grpc.insecure_channel("127.0.0.1:%d" % mport))
            with ch:
                fn = ch.unary_unary("/MonitorS/Register",
                                    request_serializer=pb.RegisterRequest.SerializeToString,
                                    response_deserializer=pb.RegisterReply.FromString)
                with self.assertRaises(grpc.RpcError) as cm:
                    fn(pb.RegisterRequest(instance_id="i-x", address="127.0.0.1:1", token=TOKEN),
                       timeout=3)
                self.assertEqual(cm.exception.code(), grpc.StatusCode.UNAVAILABLE)

        # an agent of another CA: cannot register, and is polled unhealthy
        rogue = self.agent_proc("rogue", self.rogue_agent, self.rogue.cert, mon)
        # an agent whose certificate expired: cannot register, and is polled unhealthy
        expired = self.agent_proc("expired", self.expired, self.ca.cert, mon)
        for p in (rogue, expired):
            self.assertTrue(wait_until(lambda: "registration with MonitorS" in p.logs(), 15),
                            p.logs())
            self.assertEqual(instance("i-" + ("rogue" if p is rogue else "expired")), {})
            rep = register("i-" + ("rogue" if p is rogue else "expired"), p.target)
            self.assertTrue(rep.accepted, rep.message)
        for iid in ("i-rogue", "i-expired"):
            self.assertTrue(wait_until(lambda: instance(iid).get("health") == "unhealthy", 20),
                            "%s: %s" % (iid, instance(iid)))
        self.assertEqual(instance("i-good").get("health"), "healthy")
        log = asgd.logs()
        for iid in ("i-rogue", "i-expired"):
            line = [ln for ln in log.splitlines() if iid in ln and "unhealthy" in ln]
            self.assertTrue(line, log)
            self.assertIn("TLS handshake failed: certificate verify failed", line[-1])
        # the rogue agent cannot verify MonitorS: its log says so. The expired one is refused
        # by MonitorS after its own side of the handshake (TLS 1.3): it sees a closed socket,
        # and said at start that its certificate expired.
        self.assertIn("TLS handshake failed: certificate verify failed", rogue.logs())
        self.assertIn("expired on", expired.logs())
        print("refusal lines:\n  " + "\n  ".join(
            ln for ln in log.splitlines() if "unhealthy" in ln))
        self.assertIsNone(asgd.p.poll())

    # ---- HTTPS API --------------------------------------------------------------------------

    def test_https_api_with_asgctl_and_reload(self):
        group = "tlsapi-%d" % os.getpid()
        aport, mport = free_port(), free_port()
        token = self.write_token()
        api = self.copy_pair(self.node, "api-live")
        cfg = os.path.join(self.tmp, "api.ini")
        with open(cfg, "w") as f:
            f.write("""[group]
name = %s
min_size = 0
max_size = 2
[monitor]
listen = 127.0.0.1:%d
[provider]
type = local
[store]
dir = %s/api-state
[api]
listen = 127.0.0.1:%d
token_file = %s
tls_cert_file = %s
tls_key_file = %s
""" % (group, mport, self.tmp, aport, token, api[0], api[1]))
        self.addCleanup(lambda: os.path.exists("/dev/shm/asgd-" + group) and
                        os.unlink("/dev/shm/asgd-" + group))
        r = subprocess.run([os.path.join(BIN, "asgd"), "check-config", "-c", cfg],
                           capture_output=True, text=True, timeout=20)
        self.assertEqual(r.returncode, 0, r.stderr)
        # check-config loads the TLS files too: a key of another certificate is refused
        bad = cfg + ".bad"
        with open(cfg) as f, open(bad, "w") as g:
            g.write(f.read().replace(api[1], self.client[1]))
        r = subprocess.run([os.path.join(BIN, "asgd"), "check-config", "-c", bad],
                           capture_output=True, text=True, timeout=20)
        self.assertEqual(r.returncode, 1)
        self.assertIn("does not match certificate", r.stderr)
        asgd = self.spawn("asgd-api", [os.path.join(BIN, "asgd"), "-c", cfg])
        url = "https://127.0.0.1:%d" % aport

        def ctl(*args):
            return subprocess.run([os.path.join(BIN, "asgctl"), "--url", url, "-g", group] +
                                  list(args), capture_output=True, text=True, timeout=20)

        self.assertTrue(wait_until(lambda: ctl("--cacert", self.ca.cert, "status").returncode
                                   == 0, 20), asgd.logs())
        self.assertIn("https://", asgd.logs())
        r = ctl("--cacert", self.ca.cert, "--json", "status")
        self.assertEqual(r.returncode, 0, r.stderr)
        r = ctl("--cacert", self.ca.cert, "--token-file", token, "set", "max", "3")
        self.assertEqual(r.returncode, 0, r.stderr)
        r = ctl("--cacert", self.ca.cert, "--json", "status")
        self.assertIn('"max_size": 3', r.stdout.replace(" ", "").replace('":', '": '))
        for args in ([], ["--cacert", self.rogue.cert]):
            r = ctl(*(args + ["status"]))
            self.assertEqual(r.returncode, 3, r.stderr)
            self.assertRegex(r.stderr, "(?i)certificate", r.stderr)
        r = subprocess.run([os.path.join(BIN, "asgctl"), "--url", "http://127.0.0.1:%d" % aport,
                            "-g", group, "status"], capture_output=True, text=True, timeout=20)
        self.assertNotEqual(r.returncode, 0)
        self.assertEqual(peer_der(aport, self.ca.cert), der_of(self.node[0]))

        # SIGHUP: a new certificate for the next connections, asgd keeps running
        shutil.copyfile(self.agent2[0], api[0])
        shutil.copyfile(self.agent2[1], api[1])
        asgd.p.send_signal(signal.SIGHUP)
        self.assertTrue(wait_until(lambda: peer_der(aport, self.ca.cert) ==
                                   der_of(self.agent2[0]), 5), asgd.logs())
        self.assertEqual(ctl("--cacert", self.ca.cert, "status").returncode, 0)
        # a certificate that does not match the key: refused, the previous one stays
        shutil.copyfile(self.client[0], api[0])
        asgd.p.send_signal(signal.SIGHUP)
        self.assertTrue(wait_until(lambda: "[api] TLS files not reloaded" in asgd.logs(), 5),
                        asgd.logs())
        self.assertEqual(peer_der(aport, self.ca.cert), der_of(self.agent2[0]))
        self.assertIsNone(asgd.p.poll())


if __name__ == "__main__":
    unittest.main(verbosity=2)
