"""Health settings changed through the API reach the running monitor on its next cycle, in both
modes (issue 11 item 7): one asgd process, and the two-process mode where the HTTP API runs in
`asgd controller` and the poller in `asgd monitor`. Measured as the rate of successful polls of
one agent before and after a PATCH of [health] interval from 1 s to 200 ms."""
import json
import os
import sys
import time
import urllib.request

import openapi_check
from asgd_harness import Group, wait_until

TOKEN = "health-api-" + str(os.getpid())


def api(g, method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(f"http://127.0.0.1:{g.api_port}{path}", data=data, method=method)
    req.add_header("Authorization", "Bearer " + TOKEN)
    if data:
        req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=10) as r:
        text = r.read().decode()
        # every answer is checked against the OpenAPI document (raises on a mismatch)
        openapi_check.check(method, path, r.status, text, r.headers.get("Content-Type"), data)
        return json.loads(text)


def polls(g):
    try:
        inst = api(g, "GET", "/api/v1/instances")
    except OSError:
        return None
    return sum(i["polls_ok"] for i in inst) if inst else None


def rate(g, seconds):
    a = polls(g)
    time.sleep(seconds)
    b = polls(g)
    return (b - a) / seconds


def check(g, mode):
    wait_until(lambda: polls(g), 20, what="polls counted")
    slow = rate(g, 4)
    st = api(g, "PATCH", "/api/v1/group", {"health": {"interval": "200ms", "timeout": "150ms"}})
    assert st["health"]["interval"] == "200ms", st
    time.sleep(2.5)  # the next cycle (the monitor process re-reads the store every second)
    fast = rate(g, 4)
    print(f"{mode}: {slow:.2f} polls/s at 1 s, {fast:.2f} polls/s after PATCH to 200 ms")
    assert fast >= 3 * slow and fast >= 3, (slow, fast)
    api(g, "PATCH", "/api/v1/group", {"health": {"interval": "1s", "timeout": "500ms"}})


def main():
    health = {"interval": "1s", "timeout": "500ms", "healthy_threshold": 1,
              "unhealthy_threshold": 3, "grace_period": "5s"}
    g = Group("hapi", min_size=1, max_size=1, health=health)
    tok = os.path.join(g.dir, "api.token")
    with open(tok, "w") as f:
        f.write(TOKEN + "\n")
    os.chmod(tok, 0o600)
    with open(g.config, "a") as f:
        f.write(f"token_file = {tok}\n")
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
