#!/usr/bin/python3
"""A test process that started an etcd cluster leaves no member behind, however it ends.

Leftover clusters (some with a member SIGSTOPped by a test) held their ports and broke later
runs. cluster_harness.Etcd stops its cluster at exit and on SIGTERM, and a guard (etcd-cluster
guard, outside the test's process tree) stops it when the test dies of SIGKILL, which is what
ctest's timeout sends to a test and its children. Each case runs a child "test" that starts a
cluster with the harness, pauses member 1 (SIGSTOP, as test_etcd does), prints the members'
pids, then ends one way:
  exit  returns without calling stop()        -> reaped by atexit before the process is gone
  raise dies of an uncaught exception         -> the same
  term  is sent SIGTERM (sleeping)            -> SystemExit, then atexit, before it is gone
  kill  is sent SIGKILL                       -> the guard reaps the cluster within seconds
After the child is gone, no member may run (paused or not) and the client ports bind.
"""
import os
import select
import signal
import socket
import subprocess
import sys
import tempfile
import time

from asgd_harness import pid_alive, wait_until

CHILD = r"""
import subprocess, sys, time
from cluster_harness import ETCD_SCRIPT, Etcd
mode, work = sys.argv[1], sys.argv[2]
e = Etcd(work)
subprocess.run([ETCD_SCRIPT, "pause", e.dir, "1"], check=True, timeout=30)
pids = [open(f"{e.dir}/{n}/pid").read().strip() for n in (1, 2, 3)]
print(e.base, " ".join(pids), flush=True)
if mode == "exit":
    sys.exit(0)
if mode == "raise":
    raise RuntimeError("a test failing with the cluster up")
time.sleep(600)
"""


def state(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return None


def is_etcd(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().split(b"\0")[0].endswith(b"etcd")
    except OSError:
        return False


def members_left(pids):
    return [p for p in pids if pid_alive(p) and is_etcd(p)]


def port_free(port):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def run_case(mode, work):
    child = subprocess.Popen([sys.executable, "-c", CHILD, mode, work], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    pids = []
    try:
        ready, _, _ = select.select([child.stdout], [], [], 90)
        line = child.stdout.readline() if ready else ""
        if not line:
            child.kill()
            raise AssertionError(f"{mode}: the child did not start its cluster: "
                                 f"{child.stderr.read()[-3000:]}")
        base, *pids = map(int, line.split())
        assert len(pids) == 3 and all(is_etcd(p) for p in pids), (mode, pids)
        # the case the old cleanup missed: a paused member
        wait_until(lambda: state(pids[0]) == "T", 10, what=f"{mode}: member 1 paused")
        if mode == "term":
            child.send_signal(signal.SIGTERM)
        elif mode == "kill":
            child.kill()
        child.wait(timeout=60)
        if mode == "kill":
            # the guard reaps once the pipe's write end is gone with the child
            wait_until(lambda: not members_left(pids), 15, what="kill: members reaped by the guard")
        left = members_left(pids)
        assert not left, (f"{mode}: child exited ({child.returncode}) leaving etcd members "
                          f"{[(p, state(p)) for p in left]}")
        busy = [p for p in (base, base + 1, base + 2) if not port_free(p)]
        assert not busy, f"{mode}: client ports still taken: {busy}"
        print(f"{mode}: child exit {child.returncode}, members {pids} gone, ports "
              f"{base}..{base + 2} free")
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        for p in members_left(pids):  # never leave what this test failed on
            for sig in (signal.SIGCONT, signal.SIGKILL):
                try:
                    os.kill(p, sig)
                except ProcessLookupError:
                    pass


def main():
    if not os.access("/usr/bin/etcd", os.X_OK):
        print("skipped: /usr/bin/etcd not installed (scripts/install-deps)")
        return 77
    work = tempfile.mkdtemp(prefix="asgd-reap-")
    t0 = time.monotonic()
    for mode in ("exit", "raise", "term", "kill"):
        run_case(mode, os.path.join(work, mode))
    print(f"every case reaped its cluster ({time.monotonic() - t0:.1f} s)")
    subprocess.run(["rm", "-rf", work])
    return 0


if __name__ == "__main__":
    sys.exit(main())
