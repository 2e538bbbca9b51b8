"""The per-instance cuts are group settings: [group] history_instances_max (per-instance load
history, default 500) and metrics_instances_max (per-instance series on /metrics, default 1000),
against a real asgd with two real agents.

- a bad value in the file is refused by check-config with the file, the line and the key;
- set to 1 in the file (the group has 2 instances): /metrics leaves the group's per-instance
  series out with a comment naming it, and the metric history has the group's rows but no
  instance's;
- through the API: a bad value is a 400 naming the key (the one validator), and 0 (the
  default) brings both back: per-instance series on /metrics and instance rows in the history.
"""
import json
import os
import re
import subprocess
import sys

from asgd_harness import BIN, Group, wait_until
from cluster_harness import http

TOKEN = "cuts-" + str(os.getpid())


def call(g, method, path, body=None):
    """(status, JSON or text) of one API call, checked against the OpenAPI document."""
    return http(method, f"http://127.0.0.1:{g.api_port}{path}", body, TOKEN, timeout=10)


def metrics(g):
    st, text = call(g, "GET", "/metrics")
    assert st == 200, st
    return text


def history(g):
    st, h = call(g, "GET", "/api/v1/metrics/history?since=10m")
    assert st == 200, (st, h)
    return h


def with_keys(g, keys):
    """The group file with keys added to its [group] section."""
    with open(g.config) as f:
        text = f.read()
    add = "".join(f"{k} = {v}\n" for k, v in keys.items())
    return re.sub(r"(max_size = \d+\n)", lambda m: m.group(1) + add, text, count=1)


def main():
    g = Group("cuts", min_size=2, max_size=3)
    try:
        # a bad value: refused at its line, naming the key
        bad = os.path.join(g.dir, "bad.ini")
        with open(bad, "w") as f:
            f.write(with_keys(g, {"history_instances_max": -3}))
        r = subprocess.run([os.path.join(BIN, "asgd"), "check-config", "-c", bad],
                           capture_output=True, text=True, timeout=20)
        out = r.stdout + r.stderr
        assert r.returncode != 0, out
        assert re.search(re.escape(bad) + r":5: \[group\] history_instances_max: ", out), out

        tok = os.path.join(g.dir, "api.token")
        with open(tok, "w") as f:
            f.write(TOKEN + "\n")
        os.chmod(tok, 0o600)
        text = with_keys(g, {"history_instances_max": 1, "metrics_instances_max": 1})
        with open(g.config, "w") as f:
            f.write(text + f"token_file = {tok}\n")
        g.start()
        wait_until(lambda: len(g.healthy()) == 2, 30, what="2 healthy")
        st, got = call(g, "GET", "/api/v1/group")
        assert st == 200, st
        assert got["history_instances_max"] == 1 and got["metrics_instances_max"] == 1, got

        # 2 instances > 1: no per-instance series, a comment says so
        page = metrics(g)
        assert f'# per-instance series of group "{g.name}" left out: 2 instances (more than 1)' \
            in page, page
        assert f'asgd_instance_healthy{{group="{g.name}"' not in page, page
        assert f'asgd_instances_by_health{{group="{g.name}",health="healthy"}} 2' in page, page
        # the history: the group's rows (every 5 s), none of an instance
        wait_until(lambda: len(history(g)["group"]) >= 2, 20, what="two history periods")
        h = history(g)
        assert h["instances"] == {}, h["instances"]

        # the API: the one validator's reasons, with the key
        for patch, key in (({"history_instances_max": -2}, "history_instances_max"),
                           ({"metrics_instances_max": 100001}, "metrics_instances_max"),
                           ({"metrics_instances_max": "many"}, "metrics_instances_max")):
            st, body = call(g, "PATCH", "/api/v1/group", patch)
            assert st == 400 and key in json.dumps(body), (patch, st, body)
        # 0: the defaults, both come back
        st, body = call(g, "PATCH", "/api/v1/group",
                        {"history_instances_max": 0, "metrics_instances_max": 0})
        assert st == 200, (st, body)
        page = metrics(g)
        assert f'asgd_instance_healthy{{group="{g.name}"' in page, page
        assert "left out" not in page, page
        wait_until(lambda: len(history(g)["instances"]) == 2, 20,
                   what="per-instance history of both instances")
        print("instance cuts: file, API and their effects OK")
    finally:
        g.cleanup()


if __name__ == "__main__":
    sys.exit(main())
