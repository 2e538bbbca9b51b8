"""Health settings changed through the API reach the running monitor on its next cycle, in both
modes (issue 11 item 7): one asgd process, and the two-process mode where the HTTP API runs in
`asgd controller` and the poller in `asgd monitor`. Measured as the rate of successful polls of
one agent before and after a PATCH of [health] interval from 1 s to 200 ms."""
import os
import sys
import time

from asgd_harness import Group, wait_until
from group_api import call

TOKEN = "health-api-" + str(os.getpid())


def polls(g):
    st, inst = call(g, "GET", "/api/v1/instances")
    return sum(i["polls_ok"] for i in inst) if st == 200 and inst else None


def rate(g, seconds):
    a = polls(g)
    time.sleep(seconds)
    b = polls(g)
    return (b - a) / seconds


def check(g, mode):
    wait_until(lambda: polls(g), 20, what="polls counted")
    slow = rate(g, 4)
    st, grp = call(g, "PATCH", "/api/v1/group",
                   {"health": {"interval": "200ms", "timeout": "150ms"}})
    assert st == 200 and grp["health"]["interval"] == "200ms", (st, grp)
    time.sleep(2.5)  # the next cycle (the monitor process re-reads the store every second)
    fast = rate(g, 4)
    print(f"{mode}: {slow:.2f} polls/s at 1 s, {fast:.2f} polls/s after PATCH to 200 ms")
    assert fast >= 3 * slow and fast >= 3, (slow, fast)
    st, grp = call(g, "PATCH", "/api/v1/group", {"health": {"interval": "1s", "timeout": "500ms"}})
    assert st == 200, (st, grp)


def main():
    health = {"interval": "1s", "timeout": "500ms", "healthy_threshold": 1,
              "unhealthy_threshold": 3, "grace_period": "5s"}
    g = Group("hapi", min_size=1, max_size=1, health=health)
    g.use_token(TOKEN)
    try:
        p = g.start()
        wait_until(lambda: len(g.healthy()) == 1, 30, what="1 healthy")
        check(g, "one process")
        g.stop(p)
        mon = g.start("monitor")
        ctl = g.start("controller")
        wait_until(lambda: len(g.healthy()) == 1, 30, what="1 healthy (two processes)")
        check(g, "two processes")
        g.stop(ctl)
        g.stop(mon)
    finally:
        g.cleanup()


if __name__ == "__main__":
    sys.exit(main())
