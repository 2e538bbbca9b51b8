"""Helpers for tests that run several groups on one asgd, or several asgd nodes on etcd.

A Node is one real asgd process with its own node file ([api], [monitor], [store], [cluster],
[groups] dir). Group files are written into a folder shared by the nodes of a test, each with
its own load file, loopback range and [local] dir (shared too: on one host a new owner adopts
the agents that the previous owner started, as a restarted asgd does). An Etcd is a real
3-member etcd cluster on loopback started with scripts/etcd-cluster.
"""
import atexit
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

import openapi_check
import testtmp
from asgd_harness import BIN, free_port, pid_alive, wait_until

SRC = os.environ.get("ASGD_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
ETCD_SCRIPT = os.path.join(SRC, "scripts", "etcd-cluster")


def http(method, url, body=None, token=None, timeout=5):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            text = r.read().decode()
            status = r.status
            ctype = r.headers.get("Content-Type")
    except urllib.error.HTTPError as e:
        text = e.read().decode()
        status = e.code
        ctype = e.headers.get("Content-Type")
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
        return None, None
    # every answer is checked against the OpenAPI document (raises on a mismatch)
    openapi_check.check(method, urllib.parse.urlsplit(url).path, status, text, ctype, body)
    try:
        return status, json.loads(text) if text else None
    except ValueError:
        return status, text


# The clusters this process started and has not stopped: reaped at exit (atexit), and on SIGTERM
# (turned into SystemExit so that the tests' finally blocks run first). A SIGKILL, which is what
# ctest's timeout sends to the test and its children, runs nothing here: each cluster's guard
# (etcd-cluster guard, outside our process tree) stops it when our end of its pipe closes.
_LIVE = set()


# Estates not cleaned up yet: cleaned up at exit, kept if an uncaught exception ends the run.
_LIVE_ESTATES = []


def _reap_live():
    for est in list(_LIVE_ESTATES):
        est.cleanup(failed=testtmp.uncaught())
    for e in list(_LIVE):
        e.stop()


def _on_sigterm(signum, frame):
    raise SystemExit(128 + signum)


atexit.register(_reap_live)
if threading.current_thread() is threading.main_thread() and \
        signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
    signal.signal(signal.SIGTERM, _on_sigterm)


class Etcd:
    """A 3-member cluster under workdir/etcd. It goes with this process however the process
    ends: stop() at exit or on SIGTERM, and the guard otherwise; stopping sends the members'
    process groups SIGCONT (a test may have paused one) then SIGKILL, and waits for them."""

    def __init__(self, workdir):
        self.dir = os.path.join(workdir, "etcd")
        self.base = 24000 + (os.getpid() % 200) * 20
        # the guard first: no moment when a member runs without one
        rfd, self._guard_fd = os.pipe()  # the write end is not inherited by our children
        try:
            subprocess.run([ETCD_SCRIPT, "guard", self.dir], stdin=rfd, check=True, timeout=30)
        finally:
            os.close(rfd)
        _LIVE.add(self)
        r = subprocess.run([ETCD_SCRIPT, "start", self.dir, str(self.base)], capture_output=True,
                           text=True, timeout=60)
        if r.returncode != 0:
            self.stop()
            raise AssertionError(f"etcd-cluster start failed: {r.stdout} {r.stderr}")
        self.endpoints = r.stdout.strip().splitlines()[-1]

    def kill(self, n):
        subprocess.run([ETCD_SCRIPT, "kill", self.dir, str(n)], check=True, timeout=30)

    def start_member(self, n):
        subprocess.run([ETCD_SCRIPT, "start-member", self.dir, str(n)], check=True, timeout=60)

    def stop(self):
        """Stops every member (SIGCONT, SIGKILL, waited for). Idempotent."""
        subprocess.run([ETCD_SCRIPT, "stop", self.dir], timeout=30)
        _LIVE.discard(self)
        if self._guard_fd is not None:
            os.close(self._guard_fd)  # the guard finds nothing left to stop, and exits
            self._guard_fd = None


class Estate:
    """The shared parts of a test: a temp dir, a groups folder, a token, agent port."""

    def __init__(self, prefix="est"):
        self.dir = tempfile.mkdtemp(prefix="asgd-" + prefix + "-")
        self.groups_dir = os.path.join(self.dir, "groups")
        os.makedirs(self.groups_dir)
        self.tag = f"{prefix}{os.getpid() % 10000}x{random.randrange(1 << 12):x}"
        self.agent_port = free_port()
        self.token = "tok-" + self.tag
        self.token_file = os.path.join(self.dir, "api.token")
        with open(self.token_file, "w") as f:
            f.write(self.token + "\n")
        os.chmod(self.token_file, 0o600)
        self.agent_token_file = os.path.join(self.dir, "agent.token")
        with open(self.agent_token_file, "w") as f:
            f.write("agent-" + self.tag + "\n")
        os.chmod(self.agent_token_file, 0o600)
        self.groups = {}
        self.nodes = []
        _LIVE_ESTATES.append(self)

    def add_group(self, short, min_size=1, max_size=4, load=50, policy=None, health=None):
        name = f"{self.tag}-{short}"
        load_file = os.path.join(self.dir, f"load-{short}")
        self.set_load(short, load)
        base = f"127.{random.randrange(1, 250)}.{random.randrange(1, 250)}.2"
        policy = policy or {"type": "threshold", "evaluation_period": "3s", "cooldown": "3s"}
        health = health or {"interval": "500ms", "timeout": "300ms", "healthy_threshold": 2,
                            "unhealthy_threshold": 3, "grace_period": "3s"}
        local_dir = os.path.join(self.dir, "local", short)
        lines = ["[group]", f"name = {name}", f"min_size = {min_size}", f"max_size = {max_size}",
                 "", "[policy]"] + [f"{k} = {v}" for k, v in policy.items()]
        lines += ["", "[health]"] + [f"{k} = {v}" for k, v in health.items()]
        lines += ["", "[provider]", "type = local", "", "[local]",
                  f"agent_args = --load file:{load_file}", f"address_base = {base}",
                  f"dir = {local_dir}", ""]
        with open(os.path.join(self.groups_dir, f"{short}.ini"), "w") as f:
            f.write("\n".join(lines))
        self.groups[short] = {"name": name, "local_dir": local_dir, "load_file": load_file}
        return name

    def set_load(self, short, value):
        path = os.path.join(self.dir, f"load-{short}")
        with open(path + ".tmp", "w") as f:
            f.write(f"{value}\n")
        os.replace(path + ".tmp", path)

    def agent_pids(self, short=None):
        names = [g["name"] for k, g in self.groups.items() if short in (None, k)]
        pids = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    cmd = f.read().split(b"\0")
            except OSError:
                continue
            if cmd and cmd[0].endswith(b"monitorc") and pid_alive(int(entry)) and any(
                    a.startswith(n.encode() + b"-") for n in names for a in cmd):
                pids.append(int(entry))
        return sorted(pids)

    def cleanup(self, failed=None):
        """Stops the nodes, the groups' agents and the etcd clusters under the dir, then
        removes the dir (testtmp's rule: kept and its path printed when the test is failing,
        failed=None meaning an exception is on its way out, or under ASGD_KEEP_TMP=1)."""
        if failed is None:
            failed = sys.exc_info()[0] is not None
        if failed:
            for n in self.nodes:
                print(f"---- {n.name} log ----\n" + n.log_text()[-5000:], file=sys.stderr)
        for n in self.nodes:
            n.kill()
        agents = self.agent_pids()
        for pid in agents:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        subprocess.run("rm -f /dev/shm/asgd-*" + self.tag + "*", shell=True)
        for e in list(_LIVE):
            if e.dir.startswith(self.dir + os.sep):
                e.stop()
        if self in _LIVE_ESTATES:
            _LIVE_ESTATES.remove(self)
        if not (failed or testtmp.keep_tmp()):
            # the agents (not our children) and the etcd members and guard write into the dir
            # until they are gone
            deadline = time.monotonic() + 10
            while any(pid_alive(pid) for pid in agents) and time.monotonic() < deadline:
                time.sleep(0.05)
            testtmp.stop_users(self.dir)
        testtmp.finish(self.dir, failed)


def advertise_all(nodes):
    """Agents are told every node's MonitorS (monitorc --monitor A,B,C)."""
    addrs = ",".join(f"127.0.0.1:{n.mon_port}" for n in nodes)
    for n in nodes:
        n.advertise = addrs
        n.write_config()


class Node:
    def __init__(self, estate, name, store="sqlite", endpoints=None, lease_ttl="3s", extra=""):
        self.estate = estate
        self.name = name
        self.api_port = free_port()
        self.mon_port = free_port()
        self.state = os.path.join(estate.dir, "state-" + name)
        self.url = f"http://127.0.0.1:{self.api_port}"
        lines = ["[api]", f"listen = 127.0.0.1:{self.api_port}", f"token_file = {estate.token_file}",
                 "", "[monitor]", f"listen = 127.0.0.1:{self.mon_port}",
                 f"agent_port = {estate.agent_port}", f"token_file = {estate.agent_token_file}", "",
                 "[store]", f"type = {store}", f"dir = {self.state}"]
        if store == "etcd":
            lines += [f"etcd_endpoints = {endpoints}", f"etcd_prefix = /asgd-{estate.tag}", "",
                      "[cluster]", f"node = {name}", f"lease_ttl = {lease_ttl}",
                      f"api_advertise = {self.url}"]
        lines += ["", "[groups]", f"dir = {estate.groups_dir}", ""]
        self.config = os.path.join(estate.dir, f"node-{name}.ini")
        self.lines, self.extra = lines, extra
        self.advertise = None
        self.write_config()
        self.proc = None
        self.logs = []
        estate.nodes.append(self)

    def write_config(self):
        lines = list(self.lines)
        if self.advertise:
            lines.insert(lines.index("[monitor]") + 1, f"advertise = {self.advertise}")
        with open(self.config, "w") as f:
            f.write("\n".join(lines) + self.extra)

    def start(self):
        log = open(os.path.join(self.estate.dir, f"{self.name}-{len(self.logs)}.log"), "w")
        self.logs.append(log.name)
        self.proc = subprocess.Popen([os.path.join(BIN, "asgd"), "-c", self.config], stdout=log,
                                     stderr=subprocess.STDOUT)
        return self

    def kill(self, sig=signal.SIGKILL):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            if sig in (signal.SIGKILL, signal.SIGTERM):
                try:
                    self.proc.wait(10)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()

    def log_text(self):
        out = []
        for name in self.logs:
            with open(name) as f:
                out.append(f.read())
        return "\n".join(out)

    def api(self, method, path, body=None, auth=False, timeout=5):
        return http(method, self.url + path, body, self.estate.token if auth else None, timeout)

    def up(self):
        st, _ = self.api("GET", "/healthz", timeout=1)
        return st == 200

    def groups(self):
        st, j = self.api("GET", "/api/v1/groups")
        if st != 200:
            return None
        return j["groups"] if isinstance(j, dict) else j


def healthy_in_service(node, group):
    st, inst = node.api("GET", f"/api/v1/groups/{group}/instances")
    if st != 200:
        return []
    items = inst["instances"] if isinstance(inst, dict) else inst
    return [i for i in items if i.get("lifecycle") == "in-service" and i.get("health") == "healthy"]


def reload_and_wait(node):
    """SIGHUP to node's asgd, then wait for its log to say the reload ended (done or refused);
    returns what it logged meanwhile."""
    mark = len(node.log_text())
    node.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: re.search(r"reload of .* done|reload refused", node.log_text()[mark:]), 30,
               what="the reload logged")
    return node.log_text()[mark:]
