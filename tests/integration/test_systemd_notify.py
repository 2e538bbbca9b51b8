#!/usr/bin/python3
"""asgd as a systemd service, without systemd: the test plays systemd's part.

1. NOTIFY_SOCKET (an abstract socket, '@...') and WATCHDOG_USEC=1 s: asgd sends
   READY=1 with a STATUS line naming the group and its counts, WATCHDOG=1 pings
   (every datagram from asgd's own pid: the local instances it starts must not
   speak for it), and STOPPING=1 on SIGTERM.
2. JOURNAL_STREAM naming asgd's stderr and the journal socket pointed at one the
   test owns ($ASGD_JOURNAL_SOCKET): the events arrive as native journal
   datagrams with PRIORITY, SYSLOG_IDENTIFIER, ASGD_GROUP and ASGD_INSTANCE.
3. A wedged controller (the EC2 stand-in holds RunInstances for 9 s) stops the
   watchdog pings and says so in STATUS; they resume when the call returns.
4. monitorc under NOTIFY_SOCKET (a path socket this time) sends READY=1 and STOPPING=1.
"""
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from asgd_harness import BIN, Group, free_port, wait_until  # noqa: E402
import testtmp  # noqa: E402
import test_asgd_ec2 as ec2t  # noqa: E402  (the stand-in and the ec2 group config)


class Listener:
    """A datagram socket standing in for systemd's notify (or journal) socket."""

    def __init__(self, path=None):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        if path is None:
            self.name = "@asgd-test-notify-%d-%d" % (os.getpid(), id(self))
            self.sock.bind("\0" + self.name[1:])
        else:
            self.name = path
            self.sock.bind(path)
        self.msgs = []  # (monotonic time, sender pid, bytes)
        self.lock = threading.Lock()
        self.stop = False
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        self.sock.settimeout(0.2)
        size = struct.calcsize("3i")
        while not self.stop:
            try:
                data, anc, _, _ = self.sock.recvmsg(1 << 17, socket.CMSG_SPACE(size))
            except socket.timeout:
                continue
            pid = -1
            for level, typ, cdata in anc:
                if level == socket.SOL_SOCKET and typ == socket.SCM_CREDENTIALS:
                    pid = struct.unpack("3i", cdata[:size])[0]
            with self.lock:
                self.msgs.append((time.monotonic(), pid, data))

    def texts(self):
        with self.lock:
            return [(t, pid, d.decode("utf-8", "replace")) for t, pid, d in self.msgs]

    def find(self, needle):
        return [m for m in self.texts() if needle in m[2]]

    def close(self):
        self.stop = True
        self.t.join()
        self.sock.close()


def journal_fields(data):
    """Parses the native journal protocol: KEY=value lines and the binary KEY\\nLEN value form."""
    out, i = {}, 0
    while i < len(data):
        nl = data.index(b"\n", i)
        line = data[i:nl]
        if b"=" in line:
            k, v = line.split(b"=", 1)
            out[k.decode()] = v.decode()
            i = nl + 1
        else:
            n = struct.unpack("<Q", data[nl + 1:nl + 9])[0]
            out[line.decode()] = data[nl + 9:nl + 9 + n].decode()
            i = nl + 9 + n + 1
    return out


def part_local():
    g = Group("sdn", min_size=2, max_size=3)
    notify = Listener()
    journal = Listener(os.path.join(g.dir, "journal.socket"))  # goes with the group's dir
    log = open(os.path.join(g.dir, "asgd-journal.log"), "w")
    g.logs.append(log.name)
    st = os.fstat(log.fileno())
    env = dict(os.environ, NOTIFY_SOCKET=notify.name, WATCHDOG_USEC="1000000",
               JOURNAL_STREAM="%d:%d" % (st.st_dev, st.st_ino),
               ASGD_JOURNAL_SOCKET=journal.name)
    p = subprocess.Popen([os.path.join(BIN, "asgd"), "-c", g.config], stdout=log, stderr=log,
                         env=env)
    g.procs.append(p)
    try:
        ready = wait_until(lambda: notify.find("READY=1"), 30, what="READY=1")
        t_ready, pid, text = ready[0]
        assert pid == p.pid, f"READY=1 from pid {pid}, asgd is {p.pid}"
        assert "STATUS=1 group: " + g.name in text, text
        wait_until(lambda: notify.find(f"{g.name} 2/2 in service"), 30,
                   what="STATUS with the group's counts")
        pings0 = len(notify.find("WATCHDOG=1"))
        time.sleep(2.2)
        pings = notify.find("WATCHDOG=1")
        assert len(pings) - pings0 >= 3, f"{len(pings) - pings0} pings in 2.2 s (every 0.5 s expected)"
        # the instances (monitorc children) must not have inherited NOTIFY_SOCKET
        senders = {pid for _, pid, _ in notify.texts()}
        assert senders == {p.pid}, f"notifications from {senders}, only asgd {p.pid} expected"
        for apid in g.agent_pids():
            with open(f"/proc/{apid}/environ", "rb") as f:
                envs = f.read().split(b"\0")
            assert not any(e.startswith(b"NOTIFY_SOCKET=") or e.startswith(b"WATCHDOG_")
                           for e in envs), f"instance {apid} inherited systemd's variables"

        # journal: structured fields, no text lines on stderr meanwhile
        def launched():
            for _, _, d in journal.texts():
                f = journal_fields(d.encode())
                if f.get("MESSAGE", "").startswith("launched instance"):
                    return f
            return None
        f = wait_until(launched, 10, what="a 'launched instance' journal event")
        assert f["PRIORITY"] == "6" and f["SYSLOG_IDENTIFIER"] == "asgd", f
        assert f["ASGD_GROUP"] == g.name, f
        assert f["ASGD_INSTANCE"].startswith(g.name + "-") and f["ASGD_INSTANCE"] in f["MESSAGE"], f
        with open(log.name) as lf:
            assert "launched instance" not in lf.read(), "journal events were also written as lines"

        p.send_signal(signal.SIGTERM)
        p.wait(15)
        wait_until(lambda: notify.find("STOPPING=1"), 5, what="STOPPING=1")
        assert p.returncode == 0
        print(f"ok local: READY after start, {len(notify.find('WATCHDOG=1'))} pings, journal "
              f"{len(journal.texts())} events with fields, STOPPING=1")
    finally:
        notify.close()
        journal.close()
        g.cleanup()


def part_wedged():
    srv, st, url = ec2t.standin()
    g = ec2t.ec2_group("sdw", url, 1, 2)
    with open(g.config) as f:
        text = f.read()
    with open(g.config, "w") as f:  # one attempt, and a timeout longer than the hang
        f.write(text.replace("max_attempts = 6", "max_attempts = 1")
                .replace("call_timeout = 3s", "call_timeout = 20s"))
    notify = Listener()
    os.environ.update(NOTIFY_SOCKET=notify.name, WATCHDOG_USEC="1000000")
    try:
        p = ec2t.start_with_env(g, ec2t.SK)
    finally:
        del os.environ["NOTIFY_SOCKET"], os.environ["WATCHDOG_USEC"]
    try:
        wait_until(lambda: notify.find("READY=1"), 30, what="READY=1")
        wait_until(lambda: notify.find(f"{g.name} 1/1 in service"), 30, what="1/1 in service")
        time.sleep(1.5)
        # wedge: every EC2 reply now takes 9 s; raising desired wakes the controller into a
        # RunInstances call at once
        req = urllib.request.Request(url + "/_admin/faults", data=b'{"slow_ms": 9000}',
                                     method="POST")
        urllib.request.urlopen(req, timeout=5).read()
        token = open(os.path.join(g.state, "api.token")).read().strip()
        req = urllib.request.Request(f"http://127.0.0.1:{g.api_port}/api/v1/group",
                                     data=b'{"desired_capacity": 2}', method="PATCH",
                                     headers={"Authorization": "Bearer " + token})
        t0 = time.monotonic()
        urllib.request.urlopen(req, timeout=5).read()
        stuck = wait_until(lambda: notify.find("STATUS=controller stuck"), 15,
                           what="STATUS=controller stuck")
        t_stuck = stuck[0][0]
        urllib.request.urlopen(urllib.request.Request(
            url + "/_admin/faults", data=b'{"slow_ms": 0}', method="POST"), timeout=5).read()
        # the stuck call returns 9 s after it began; pings resume on the next check
        resumed = wait_until(lambda: [m for m in notify.find("WATCHDOG=1") if m[0] > t_stuck],
                             20, what="pings after the controller recovered")
        gap = [m[0] for m in notify.find("WATCHDOG=1") if t0 - 1 < m[0] <= resumed[0][0]]
        longest = max(b - a for a, b in zip(gap, gap[1:]))
        assert longest >= 3, f"the pings never stopped while the controller hung (gap {longest:.1f} s)"
        assert "no more pings to systemd" in g.log_text()
        print(f"ok wedged: no WATCHDOG=1 for {longest:.1f} s while RunInstances hung, then resumed")
        g.stop(p)
    finally:
        notify.close()
        g.cleanup()
        srv.shutdown()


def part_monitorc():
    d = testtmp.mkdtemp("asgd-mc-")
    notify = Listener(os.path.join(d, "notify"))
    port = free_port()
    env = dict(os.environ, NOTIFY_SOCKET=notify.name)
    p = subprocess.Popen([os.path.join(BIN, "monitorc"), "--listen", f"127.0.0.1:{port}",
                          "--instance-id", "sd-test", "--load", "simulate"],
                         env=env, stderr=subprocess.DEVNULL)
    try:
        r = wait_until(lambda: notify.find("READY=1"), 10, what="monitorc READY=1")
        assert "sd-test" in r[0][2] and r[0][1] == p.pid, r
        p.send_signal(signal.SIGTERM)
        p.wait(10)
        wait_until(lambda: notify.find("STOPPING=1"), 5, what="monitorc STOPPING=1")
        print("ok monitorc: READY=1, STOPPING=1")
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        notify.close()
        testtmp.finish(d)


def main():
    part_local()
    part_monitorc()
    part_wedged()
    return 0


if __name__ == "__main__":
    sys.exit(main())
