"""Configuration reload (issue 13 item 3) against a real asgd, real monitorc agents and SQLite.

One node with a groups folder of two groups, "poll" (health interval 500ms, its agent logs every
poll it answers: --log-level debug) and "gone". Then, with SIGHUP:
- one reload adds a group file ("new"), removes one ("gone") and changes poll's health interval
  to 2s: "new" starts, "gone" is no longer managed (its agents keep running, the log and the
  activity history say so, the API no longer knows it), and the poll rate measured AT poll's
  agent drops about four times; a desired capacity set through the API before stays (the file
  did not change it);
- an invalid group file (and a valid change beside it) is refused with FILE:LINE: [section]
  key: why in the log and in GET /api/v1/reload, and NOTHING changes;
then POST /api/v1/reload (and asgctl reload) with a node-level key changed ([monitor]
accept_unknown) reports it as "needs restart" and changes nothing else. Every API answer is
checked against the OpenAPI document (cluster_harness).
"""
import os
import re
import signal
import subprocess
import sys
import time

from asgd_harness import BIN, agent_polls, edit_file, pid_alive, poll_rate, wait_until
from cluster_harness import Estate, Node, healthy_in_service, reload_and_wait

HEALTH = {"interval": "500ms", "timeout": "300ms", "healthy_threshold": 2,
          "unhealthy_threshold": 3, "grace_period": "3s"}


def group_file(est, short):
    return os.path.join(est.groups_dir, f"{short}.ini")


def group(node, name):
    st, j = node.api("GET", f"/api/v1/groups/{name}")
    return j if st == 200 else None


def activities(node, name):
    """The store's activity rows of a group (the API answers 404 for a group it no longer has)."""
    import sqlite3
    db = sqlite3.connect(os.path.join(node.state, "asgd.db"), timeout=10)
    try:
        return db.execute("SELECT kind, cause, detail FROM activities WHERE group_name = ?",
                          (name,)).fetchall()
    finally:
        db.close()


def asgctl(node, *args):
    return subprocess.run([os.path.join(BIN, "asgctl"), "--url", node.url, "--token-file",
                           node.estate.token_file, *args], capture_output=True, text=True,
                          timeout=90)


def main():
    est = Estate("rld")
    poll = est.add_group("poll", min_size=1, max_size=3, load=50, health=HEALTH)
    gone = est.add_group("gone", min_size=2, max_size=3, load=50, health=HEALTH)
    pf = group_file(est, "poll")
    edit_file(pf, "agent_args = --load file:", "agent_args = --log-level debug --load file:")
    node = Node(est, "solo")
    try:
        node.start()
        wait_until(node.up, 20, what="API up")
        wait_until(lambda: len(healthy_in_service(node, poll)) == 1, 30, what="poll: 1 healthy")
        wait_until(lambda: len(healthy_in_service(node, gone)) == 2, 30, what="gone: 2 healthy")
        st, j = node.api("GET", "/api/v1/reload")
        assert st == 404, (st, j)

        # desired set through the API: a reload that does not touch it keeps it
        st, j = node.api("PATCH", f"/api/v1/groups/{poll}", {"desired_capacity": 2}, auth=True)
        assert st == 200, (st, j)
        wait_until(lambda: len(healthy_in_service(node, poll)) == 2, 30, what="poll: 2 healthy")
        inst = sorted(i["id"] for i in healthy_in_service(node, poll))[0]
        agent_log = os.path.join(est.groups["poll"]["local_dir"], "local", inst + ".log")
        wait_until(lambda: agent_polls(agent_log) > 3, 10, what="the agent logs its polls")
        before = poll_rate(agent_log, 5)
        gone_pids = est.agent_pids("gone")
        assert len(gone_pids) == 2, gone_pids

        # 1. one reload: a group added, one removed, a health interval changed
        new = est.add_group("new", min_size=1, max_size=2, load=50, health=HEALTH)
        os.unlink(group_file(est, "gone"))
        edit_file(pf, "interval = 500ms", "interval = 2s")
        out = reload_and_wait(node)
        assert "reload of" in out and "done" in out, out
        wait_until(lambda: len(healthy_in_service(node, new)) == 1, 30, what="new: 1 healthy")
        wait_until(lambda: group(node, gone) is None, 10, what="gone no longer known")
        assert "no longer managed" in out and "2 instances left running" in out, out
        time.sleep(1)
        assert est.agent_pids("gone") == gone_pids, "the unmanaged group's agents were touched"
        assert all(pid_alive(p) for p in gone_pids)
        # the history under its name says why its instances were left
        acts = activities(node, gone)
        assert [a[0] for a in acts] == ["unmanaged"], acts
        assert "2 instances left running" in acts[0][1], acts
        assert f"{gone}-" in acts[0][2], acts
        st, acts = node.api("GET", f"/api/v1/groups/{poll}/activities?limit=5")
        assert st == 200, (st, acts)
        assert any("health.interval 500ms -> 2s" in a["cause"] and a["kind"] == "settings"
                   for a in acts), acts
        g = group(node, poll)
        assert g["health"]["interval"] == "2s", g
        assert g["desired_capacity"] == 2, g
        st, rep = node.api("GET", "/api/v1/reload")
        assert st == 200 and rep["ok"] is True, (st, rep)
        assert rep["added"] == [new] and rep["removed"] == [gone], rep
        assert any(c.startswith(poll + ": ") and "health.interval" in c for c in rep["changed"]), rep
        # measured at the agent: the poll rate follows the new interval
        time.sleep(2.5)  # one old-interval poll may still be scheduled
        after = poll_rate(agent_log, 8)
        print(f"poll rate at {inst}'s agent: {before:.2f}/s at 500ms, {after:.2f}/s at 2s")
        assert before > 0 and after < before / 2.5, (before, after)

        # 2. an invalid file beside a valid change: refused, nothing changes
        bad = os.path.join(est.groups_dir, "bad.ini")
        with open(bad, "w") as f:
            f.write(f"[group]\nname = {est.tag}-bad\nmin_size = 3\nmax_size = 2\n")
        edit_file(pf, "interval = 2s", "interval = 500ms")
        out = reload_and_wait(node)
        m = re.search(r"reload refused, nothing changed: (\S+bad\.ini:\d+: \[group\] \S+: .*)", out)
        assert m, out
        print("refused:", m.group(1))
        st, rep = node.api("GET", "/api/v1/reload")
        assert st == 200 and rep["ok"] is False and "bad.ini:" in rep["error"], rep
        assert group(node, f"{est.tag}-bad") is None
        assert group(node, poll)["health"]["interval"] == "2s"
        time.sleep(1)
        assert poll_rate(agent_log, 4) < before / 2.5
        # asgctl reload says the same, exit 1
        r = asgctl(node, "reload")
        assert r.returncode == 1 and "reload refused, nothing changed" in r.stderr and \
            "bad.ini:" in r.stderr, (r.returncode, r.stdout, r.stderr)
        os.unlink(bad)
        edit_file(pf, "interval = 500ms", "interval = 2s")

        # 3. POST /api/v1/reload with a node-level key changed: needs restart, nothing else
        node.lines.insert(node.lines.index("[monitor]") + 1, "accept_unknown = true")
        node.write_config()
        st, j = node.api("POST", "/api/v1/reload", {}, auth=True)
        assert st == 202 and j["requested"] is True, (st, j)
        gen = j["generation"]
        rep = wait_until(lambda: (lambda r: r[1] if r[0] == 200 and r[1].get("generation", 0) >= gen
                                  else None)(node.api("GET", "/api/v1/reload")), 20,
                         what="the reload's report")
        assert rep["ok"] is True and rep["needs_restart"] == ["[monitor] accept_unknown"], rep
        assert rep["added"] == rep["removed"] == rep["changed"] == [], rep
        assert "[monitor] accept_unknown changed" in node.log_text()
        st, _ = node.api("POST", "/api/v1/reload", {})
        assert st == 401, st
        print("POST /api/v1/reload: needs_restart", rep["needs_restart"])
        r = asgctl(node, "reload")
        assert r.returncode == 0 and "needs a restart" in r.stdout and \
            "[monitor] accept_unknown" in r.stdout, (r.returncode, r.stdout, r.stderr)
        print("asgctl reload:", r.stdout.strip().replace("\n", " | "))

        node.kill(signal.SIGTERM)
        assert node.proc.returncode == 0, node.proc.returncode
        print("ok")
    finally:
        est.cleanup()


if __name__ == "__main__":
    sys.exit(main())
