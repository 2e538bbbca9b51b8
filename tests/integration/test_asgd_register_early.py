"""Agents that register before their launch is recorded are held, not refused.

The local provider answers a launch call only once every agent it started reported ready, so
the agents of a multi-instance call register with MonitorS while the call is still in flight,
before the controller has their ids. MonitorS must not refuse them ("registration refused ...
unknown instance", a warning in asgd's log and a failed registration with backoff in the
agent's): while the group's fleet table says a launch is in flight it holds them (not accepted,
"retry in N ms") and they are registered as soon as the launch is recorded. Checked on the
first launch (min_size instances in one call) and on a scale-out (a second call into a running
group), then with MonitorS and the controller as two processes (`asgd monitor` + `asgd
controller`), where the launch window travels through the shared fleet table. A Register from
an id asgd did not launch is still refused outside a launch.
"""
import os
import re
import socket
import subprocess
from datetime import datetime

import grpc
import monitor_pb2

from asgd_harness import Group, wait_until

FIRST, THEN = 4, 6


def stamp(line):
    return datetime.strptime(line[:23], "%Y-%m-%dT%H:%M:%S.%f")


def listening(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def launches_and_registrations(text):
    launched, registered = {}, {}
    for line in text.splitlines():
        m = re.search(r'launched instance "([^"]+)"', line)
        if m:
            launched[m.group(1)] = stamp(line)
        m = re.search(r'instance "([^"]+)" at \S+ registered \(agent', line)
        if m and m.group(1) not in registered:
            registered[m.group(1)] = stamp(line)
    return launched, registered


def check(g, want):
    """Every launched instance registered, no refusal in asgd's log, no failed registration in
    any agent's log. Returns the seconds from each launch to its registration."""
    text = g.log_text()
    refused = [l for l in text.splitlines() if "registration refused" in l]
    assert not refused, "refused registrations of our own instances:\n" + "\n".join(refused)
    launched, registered = launches_and_registrations(text)
    assert len(launched) == want, launched
    missing = sorted(set(launched) - set(registered))
    assert not missing, f"launched but not registered: {missing}"
    for iid in launched:
        with open(os.path.join(g.state, "local", f"{iid}.log")) as f:
            agent = f.read()
        assert "registration with MonitorS" not in agent, f"agent {iid} failed to register:\n{agent}"
        assert "registered with MonitorS" in agent, agent
    return {iid: (registered[iid] - launched[iid]).total_seconds() for iid in launched}


def main():
    g = Group("early", min_size=FIRST, max_size=THEN, load=30)
    g.use_token(f"early-token-{os.getpid()}")
    try:
        g.start()
        wait_until(lambda: len(g.healthy()) == FIRST, 30, what=f"{FIRST} healthy")
        delays = check(g, FIRST)
        print("first launch: launch -> registered (s):", sorted(round(d, 3) for d in delays.values()))

        # a scale-out: a second launch call while the group runs
        r = subprocess.run([os.path.join(os.environ.get("ASGD_BIN", "build/bin"), "asgctl"),
                            "--url", f"http://127.0.0.1:{g.api_port}", "--token-file", g.token_file,
                            "set", "desired",
                            str(THEN)], capture_output=True, text=True, timeout=20)
        assert r.returncode == 0, (r.stdout, r.stderr)
        wait_until(lambda: len(g.healthy()) == THEN, 30, what=f"{THEN} healthy")
        delays = check(g, THEN)
        print("after the scale-out: launch -> registered (s):",
              sorted(round(d, 3) for d in delays.values()))

        # outside a launch, an id asgd did not launch is still refused
        token = open(f"{g.state}/agent.token").read().strip()
        with grpc.insecure_channel(f"127.0.0.1:{g.mon_port}") as ch:
            fn = ch.unary_unary("/MonitorS/Register",
                                request_serializer=lambda m: m.SerializeToString(),
                                response_deserializer=monitor_pb2.RegisterReply.FromString)
            rep = fn(monitor_pb2.RegisterRequest(instance_id="i-not-ours", address="127.0.0.1:1",
                                                 token=token, agent_version="x"), timeout=5)
        assert not rep.accepted and rep.retry_after_ms == 0, rep
        assert rep.message == "unknown instance", rep
    finally:
        g.cleanup()

    g = Group("early2p", min_size=FIRST, max_size=FIRST, load=30)
    try:
        mon = g.start("monitor")
        # MonitorS listening before the first launch: an agent that finds nobody there is
        # another matter (it backs off, and says so in its log)
        wait_until(lambda: listening(g.mon_port), 20, what="MonitorS listening")
        ctl = g.start("controller")
        wait_until(lambda: len(g.healthy()) == FIRST, 30, what=f"{FIRST} healthy (two processes)")
        delays = check(g, FIRST)
        print("two processes: launch -> registered (s):",
              sorted(round(d, 3) for d in delays.values()))
        g.stop(ctl)
        g.stop(mon)
    finally:
        g.cleanup()
    print("ok")


if __name__ == "__main__":
    main()
