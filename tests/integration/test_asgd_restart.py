"""kill -9 of asgd and a restart: the same instances are adopted, none is launched twice, no
process is leaked. Then the same with the two-process mode (asgd monitor + asgd controller on
one shared-memory fleet table), killing either process."""
import signal
import sys
import time

from asgd_harness import Group, wait_until


def ids(g):
    return sorted(i["id"] for i in g.instances())


def launches(g):
    import os
    import sqlite3
    db = sqlite3.connect(os.path.join(g.state, "asgd.db"))
    try:
        return db.execute("SELECT COUNT(*) FROM activities WHERE kind='launch'").fetchone()[0]
    finally:
        db.close()


def steady(g, n, seconds):
    """The group keeps exactly n healthy instances and n agent processes for `seconds`."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        assert len(g.agent_pids()) == n, f"agent processes: {g.agent_pids()}"
        time.sleep(0.25)
    assert len(g.healthy()) == n, g.instances()


def main():
    g = Group("rst", min_size=3, max_size=5, load=40)
    try:
        p = g.start()
        wait_until(lambda: len(g.healthy()) == 3, 20, what="3 healthy")
        first = ids(g)
        pids = sorted(g.agent_pids())
        n_launch = launches(g)

        # 1. single process: kill -9 and restart
        g.stop(p, signal.SIGKILL)
        time.sleep(1)
        assert sorted(g.agent_pids()) == pids, "instances must outlive asgd"
        t0 = time.monotonic()
        p = g.start()
        wait_until(lambda: len(g.healthy()) == 3, 20, what="3 healthy after restart")
        print(f"restart: healthy again {time.monotonic() - t0:.2f}s after start")
        steady(g, 3, 3)
        assert ids(g) == first, (ids(g), first)
        assert sorted(g.agent_pids()) == pids, "no instance launched twice"
        assert launches(g) == n_launch, "restart must not launch"
        g.stop(p)

        # 2. two processes on one fleet table
        mon = g.start("monitor")
        ctl = g.start("controller")
        wait_until(lambda: len(g.healthy()) == 3, 20, what="3 healthy in two-process mode")
        assert ids(g) == first
        # kill the monitor: the controller keeps the group; a new monitor takes over
        g.stop(mon, signal.SIGKILL)
        time.sleep(2)
        assert ids(g) == first and sorted(g.agent_pids()) == pids
        mon = g.start("monitor")
        time.sleep(2)
        steady(g, 3, 2)
        # kill the controller: the monitor keeps polling; a new controller adopts, launches none
        g.stop(ctl, signal.SIGKILL)
        time.sleep(1)
        st = g.status()
        assert st and all(i["health"] == "healthy" for i in st["instances"]), st
        ctl = g.start("controller")
        time.sleep(3)
        steady(g, 3, 2)
        assert ids(g) == first, (ids(g), first)
        assert sorted(g.agent_pids()) == pids
        assert launches(g) == n_launch
        g.stop(ctl)
        g.stop(mon)
        print("ok")
    finally:
        g.cleanup()


if __name__ == "__main__":
    sys.exit(main())
