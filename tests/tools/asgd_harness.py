"""Helpers for integration tests that run the real asgd, monitorc and asgctl binaries.

Every group gets its own temp state dir, its own loopback range (127.X.Y.2...),
free ports and a unique name, so tests can run in parallel. Instances are real
detached monitorc processes: Group.cleanup() kills whatever the pid files name,
and the test fails if a process is left behind.

The temp dir (/tmp/asgd-it-*) goes once its processes are gone: Group.cleanup()
removes it, unless the test is failing (cleanup runs while an exception is on its
way out, as in a `finally:` or a `with Group(...) as g:` block) or ASGD_KEEP_TMP=1
is set; then it stays and its path is printed, since its logs are what the
developer needs. A group the test never cleaned up is cleaned up at exit, kept if
the interpreter dies of an uncaught exception.
"""
import atexit
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time

import testtmp
from testtmp import keep_tmp  # noqa: F401  (tests ask the harness)

BIN = os.environ.get("ASGD_BIN", os.path.join(os.environ.get("ASGD_BUILD_DIR", "build"), "bin"))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_until(pred, timeout, step=0.1, what="condition"):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = pred()
        if last:
            return last
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def pid_alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        return state not in ("Z", "X")
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


def edit_file(path, old, new):
    """Replaces the first old in the file at path by new (old must be there)."""
    with open(path) as f:
        text = f.read()
    assert old in text, (path, old, text)
    with open(path, "w") as f:
        f.write(text.replace(old, new, 1))


def agent_polls(path):
    """How many polls the agent logging to path answered (monitorc --log-level debug)."""
    try:
        with open(path) as f:
            return f.read().count("polled (")
    except OSError:
        return 0


def poll_rate(path, seconds):
    """Polls per second answered by the agent that logs to path, over a window."""
    a = agent_polls(path)
    time.sleep(seconds)
    return (agent_polls(path) - a) / seconds


# Groups not yet cleaned up: atexit cleans up what a test left behind, keeping the dirs of a
# run that dies of an uncaught exception (testtmp has the keep/remove rule for every harness).
_live_groups = []


def _at_exit():
    for g in list(_live_groups):
        g.cleanup(failed=testtmp.uncaught())


atexit.register(_at_exit)


class Group:
    def __init__(self, name_prefix="t", min_size=2, max_size=5, policy=None, health=None,
                 agent_args="", extra="", load=50, mon_host="127.0.0.1", base=None):
        self.dir = tempfile.mkdtemp(prefix="asgd-it-")
        self.name = f"{name_prefix}{os.getpid()}-{random.randrange(1 << 20):x}"
        self.load_file = os.path.join(self.dir, "load")
        self.set_load(load)
        self.mon_port = free_port()
        self.api_port = free_port()
        self.agent_port = free_port()
        self.base = base or f"127.{random.randrange(1, 250)}.{random.randrange(1, 250)}.2"
        self.state = os.path.join(self.dir, "state")
        self.procs = []
        self.logs = []
        policy = policy or {"type": "threshold", "evaluation_period": "3s", "cooldown": "3s"}
        health = health or {"interval": "500ms", "timeout": "300ms", "healthy_threshold": 2,
                            "unhealthy_threshold": 3, "grace_period": "2s"}
        args = f"--load file:{self.load_file} {agent_args}".strip()
        lines = ["[group]", f"name = {self.name}", f"min_size = {min_size}",
                 f"max_size = {max_size}", "", "[policy]"]
        lines += [f"{k} = {v}" for k, v in policy.items()]
        lines += ["", "[health]"] + [f"{k} = {v}" for k, v in health.items()]
        lines += ["", "[monitor]", f"listen = {mon_host}:{self.mon_port}",
                  f"agent_port = {self.agent_port}", "", "[local]", f"agent_args = {args}",
                  f"address_base = {self.base}", "", "[store]", f"dir = {self.state}", "",
                  "[api]", f"listen = 127.0.0.1:{self.api_port}", ""]
        self.config = os.path.join(self.dir, "asgd.ini")
        with open(self.config, "w") as f:
            f.write("\n".join(lines) + extra)
        _live_groups.append(self)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        self.cleanup(failed=exc_type is not None)
        return False

    # --- processes -------------------------------------------------------------------
    def start(self, role="run"):
        log = open(os.path.join(self.dir, f"asgd-{role}-{len(self.logs)}.log"), "w")
        self.logs.append(log.name)
        args = [os.path.join(BIN, "asgd")] + ([] if role == "run" else [role]) + ["-c", self.config]
        p = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        self.procs.append(p)
        return p

    def stop(self, p, sig=signal.SIGTERM):
        if p.poll() is None:
            p.send_signal(sig)
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    def log_text(self):
        out = []
        for name in self.logs:
            with open(name) as f:
                out.append(f.read())
        return "\n".join(out)

    def use_token(self, token):
        """The API wants token (a bearer token): written to a 0600 file in the group's dir,
        named in the config's [api] section. Call before start()."""
        self.token = token
        self.token_file = os.path.join(self.dir, "api.token")
        with open(self.token_file, "w") as f:
            f.write(token + "\n")
        os.chmod(self.token_file, 0o600)
        edit_file(self.config, "[api]\n", f"[api]\ntoken_file = {self.token_file}\n")

    def set_load(self, value):
        tmp = self.load_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(f"{value}\n")
        os.replace(tmp, self.load_file)

    # --- views -----------------------------------------------------------------------
    def status(self):
        r = subprocess.run([os.path.join(BIN, "asgd"), "status", "-c", self.config, "--json"],
                           capture_output=True, text=True, timeout=20)
        if r.returncode != 0:
            return None
        return json.loads(r.stdout)

    def instances(self):
        st = self.status()
        return st["instances"] if st else []

    def healthy(self):
        return [i for i in self.instances()
                if i["health"] == "healthy" and i["lifecycle"] == "in-service"]

    def pidfiles(self):
        d = os.path.join(self.state, "local")
        out = {}
        if not os.path.isdir(d):
            return out
        for fn in os.listdir(d):
            if fn.endswith(".pid") and not fn.startswith("."):
                kv = dict(l.split("=", 1) for l in open(os.path.join(d, fn)).read().split("\n") if "=" in l)
                out[kv["id"]] = int(kv["pid"])
        return out

    def agent_pids(self):
        """Every live monitorc whose command line names this group's instances."""
        pids = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    cmd = f.read().split(b"\0")
            except OSError:
                continue
            if len(cmd) > 6 and cmd[0].endswith(b"monitorc") and \
                    any(a.startswith(self.name.encode() + b"-") for a in cmd) and pid_alive(int(entry)):
                pids.append(int(entry))
        return sorted(pids)

    def cleanup(self, failed=None):
        """Stops asgd and the group's agents, then removes the temp dir. failed: whether the
        test is failing (None: an exception is on its way out); a failing test's dir stays,
        and so does every dir under ASGD_KEEP_TMP=1. Calling it again is harmless."""
        if failed is None:
            failed = sys.exc_info()[0] is not None
        if failed:
            # a failing test: show what asgd said
            print("---- asgd logs ----\n" + self.log_text()[-6000:], file=sys.stderr)
        for p in self.procs:
            self.stop(p, signal.SIGKILL)
        agents = self.agent_pids()
        for pid in agents:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        subprocess.run(["rm", "-f", f"/dev/shm/asgd-{self.name}"])
        if self in _live_groups:
            _live_groups.remove(self)
        if not os.path.isdir(self.dir):
            return
        if not (failed or keep_tmp()):
            # the agents write their logs and pid files in the dir until they are gone (they
            # are not our children: nobody waits for them but init)
            deadline = time.monotonic() + 10
            while any(pid_alive(pid) for pid in agents) and time.monotonic() < deadline:
                time.sleep(0.05)
        testtmp.finish(self.dir, failed)
