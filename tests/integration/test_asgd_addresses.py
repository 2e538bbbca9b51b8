"""Local addresses (issue 11 item 2) with a real asgd and real monitorc agents.

1. Another process listens on the group's first address:agent_port. The group still grows to
   min_size on the next addresses, promptly, and the taken address is logged once.
2. Every agent is made to listen on a squatted address (agent_args --listen): each launch
   fails with the agent's own reason ("cannot listen ...") as the launch activity's detail,
   monitorc exits with code 3, and asgd backs off instead of looping launches.
"""
import os
import socket
import sqlite3
import subprocess
import sys
import time

from asgd_harness import BIN, Group, free_port, pid_alive, wait_until


def squat(host, port):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((host, port))
    s.listen(8)
    return s


def launch_rows(g):
    if not os.path.exists(os.path.join(g.state, "asgd.db")):
        return []
    db = sqlite3.connect(os.path.join(g.state, "asgd.db"))
    try:
        return db.execute("SELECT status, detail FROM activities WHERE kind='launch' "
                          "ORDER BY id").fetchall()
    except sqlite3.OperationalError:
        return []  # asgd is still creating its schema
    finally:
        db.close()


def part1():
    g = Group("ad", min_size=2, max_size=4, load=40)
    sq = squat(g.base, g.agent_port)
    try:
        p = g.start()
        t0 = time.monotonic()
        wait_until(lambda: len(g.healthy()) == 2, 20, what="2 healthy next to a squatter")
        dt = time.monotonic() - t0
        addrs = sorted(i["address"] for i in g.instances())
        assert f"{g.base}:{g.agent_port}" not in addrs, addrs
        time.sleep(2)  # let any further launch happen: the warning must stay single
        log = g.log_text()
        n = log.count(f"{g.base}:{g.agent_port} is already taken")
        assert n == 1, f"taken address logged {n} times"
        rows = launch_rows(g)
        assert all(st == "ok" for st, _ in rows), rows
        print(f"squatter on {g.base}:{g.agent_port}: 2 healthy in {dt:.1f}s on {addrs}, "
              f"{len(rows)} launch activities all ok, logged once")
        g.stop(p)
    finally:
        sq.close()
        g.cleanup()


def part2():
    port = free_port()
    sq = squat("127.0.0.1", port)
    g = Group("af", min_size=1, max_size=2, load=40, agent_args=f"--listen 127.0.0.1:{port}")
    try:
        # the agent itself: a clear message and exit code 3
        r = subprocess.run([os.path.join(BIN, "monitorc"), "--listen", f"127.0.0.1:{port}",
                            "--instance-id", "x", "--load", "simulate"],
                           capture_output=True, text=True, timeout=20)
        assert r.returncode == 3, (r.returncode, r.stderr[-500:])
        assert f"127.0.0.1:{port}" in r.stderr and "exit code 3" in r.stderr, r.stderr[-500:]

        p = g.start()
        wait_until(lambda: any("cannot listen" in d for _, d in launch_rows(g)), 20,
                   what="a failed launch with the agent's reason")
        time.sleep(10)
        rows = launch_rows(g)
        failed = [d for st, d in rows if st != "ok"]
        assert failed and all("cannot listen" in d for d in failed), rows
        assert len(rows) <= 8, f"{len(rows)} launches in ~10 s: launches loop"
        # a retry's agent may be alive for a moment before it fails to listen: none stays
        left = g.agent_pids()
        wait_until(lambda: not any(pid_alive(x) for x in left), 5,
                   what=f"agents {left} that cannot listen gone")
        print(f"agents that cannot listen: {len(rows)} launch attempts in ~10 s, detail: "
              f"{failed[0]!r}")
        g.stop(p)
    finally:
        sq.close()
        g.cleanup()


def main():
    part1()
    part2()
    print("ok")


if __name__ == "__main__":
    sys.exit(main())
