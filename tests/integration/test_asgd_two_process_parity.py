"""The two-process mode (asgd monitor + asgd controller on one config, local provider) does what
`asgd run` does for the group it runs:

- launch tokens carry the launch configuration: `asgd run` launches the first instance, then the
  two processes take the group over and a scale-out's token carries the same configuration
  ("asgd-<lc>-<random>", the lc of `asgd run`'s token);
- webhooks ([notify]) are sent by the controller process: a real receiver (http.server on
  127.0.0.1) gets the launch event of that scale-out;
- SIGHUP to the controller process after editing the file changes the setting (max_size, seen
  through the API, GET /api/v1/reload reports it); a bad edit is refused with FILE:LINE:
  [section] key: why, and the old settings stay; POST /api/v1/reload is answered (202) and
  reports. (Groups added to and removed from the files by a reload: the two processes run every
  group, as `asgd run` does: test_asgd_two_process_groups.py. The controller process's own
  calls to the agents over TLS: test_asgd_two_process_tls.py.)
"""
import http.server
import json
import os
import re
import signal
import sqlite3
import sys
import threading

from asgd_harness import Group, edit_file, free_port, wait_until
from group_api import call

TOKEN = "it-token-" + str(os.getpid())


class Receiver(http.server.BaseHTTPRequestHandler):
    lock = threading.Lock()
    events = []  # parsed bodies

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        with Receiver.lock:
            Receiver.events.append(json.loads(body))
        self.send_response(204)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def launches(event_list, group):
    with Receiver.lock:
        return [e for e in event_list if e.get("event") == "launch" and e.get("group") == group]


def tokens(g):
    db = sqlite3.connect(os.path.join(g.state, "asgd.db"), timeout=10)
    try:
        return dict(db.execute("SELECT id, launch_token FROM instances WHERE group_name = ? AND "
                               "terminated_at_ms = 0", (g.name,)).fetchall())
    finally:
        db.close()


def launch_config(token):
    m = re.fullmatch(r"asgd-([0-9a-f]{16})-\S+", token)
    return m.group(1) if m else None


def settings(g):
    st, j = call(g, "GET", f"/api/v1/groups/{g.name}")
    assert st == 200, (st, j)
    return j


def log_since(g, mark):
    return g.log_text()[mark:]


def sighup_and_wait(g, p):
    mark = len(g.log_text())
    p.send_signal(signal.SIGHUP)
    wait_until(lambda: re.search(r"reload of .* done|reload refused", log_since(g, mark)), 30,
               what="the controller process logged the reload")
    return log_since(g, mark)


def main():
    recv_port = free_port()
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", recv_port), Receiver)
    threading.Thread(target=srv.serve_forever, daemon=True).start()

    g = Group("two", min_size=1, max_size=3, load=50,
              extra=f"\n[notify]\nurl = http://127.0.0.1:{recv_port}/hook\nevents = launch\n")
    g.use_token(TOKEN)
    try:
        # `asgd run` launches the first instance: its token names the launch configuration
        p = g.start()
        wait_until(lambda: len(g.healthy()) == 1, 30, what="1 healthy under asgd run")
        first = tokens(g)
        assert len(first) == 1, first
        lc = launch_config(next(iter(first.values())))
        assert lc, first
        wait_until(lambda: launches(Receiver.events, g.name), 15, what="asgd run's webhook")
        g.stop(p)
        with Receiver.lock:
            Receiver.events.clear()

        # the two processes take the group over
        mon = g.start("monitor")
        ctl = g.start("controller")
        wait_until(lambda: call(g, "GET", f"/api/v1/groups/{g.name}")[0] == 200, 20,
                   what="the controller's API")
        wait_until(lambda: len(g.healthy()) == 1, 20, what="1 healthy in two-process mode")
        st, j = call(g, "PATCH", f"/api/v1/groups/{g.name}", {"desired_capacity": 2})
        assert st == 200, (st, j)
        wait_until(lambda: len(g.healthy()) == 2, 30, what="2 healthy after the scale-out")

        # 1. the new instance's token carries asgd run's launch configuration
        now = tokens(g)
        new = {i: t for i, t in now.items() if i not in first}
        assert len(new) == 1, (first, now)
        got = launch_config(next(iter(new.values())))
        assert got == lc, f"launch token {new} carries {got}, asgd run's carried {lc}"
        print(f"launch configuration {lc} in both modes' tokens")

        # 2. the controller process sent the launch webhook
        ev = wait_until(lambda: launches(Receiver.events, g.name), 15,
                        what="the controller process's launch webhook")
        assert ev[0]["status"] == "ok" and "desired 2" in ev[0]["cause"], ev
        print("webhook from the controller process:", ev[0]["event"], ev[0]["cause"])

        # 3. SIGHUP after an edit: the setting changes
        assert settings(g)["max_size"] == 3
        edit_file(g.config, "max_size = 3", "max_size = 4")
        out = sighup_and_wait(g, ctl)
        assert "reload of" in out and "done" in out, out
        assert settings(g)["max_size"] == 4, settings(g)
        st, rep = call(g, "GET", "/api/v1/reload")
        assert st == 200 and rep["ok"] is True, (st, rep)
        assert any(c.startswith(g.name + ": ") and "max_size" in c for c in rep["changed"]), rep

        # a bad edit: refused with FILE:LINE: [section] key, the old settings stay
        edit_file(g.config, "min_size = 1", "min_size = 9")
        out = sighup_and_wait(g, ctl)
        m = re.search(r"reload refused, nothing changed: (\S+asgd\.ini:\d+: \[group\] \S+: .*)",
                      out)
        assert m, out
        print("refused:", m.group(1))
        s = settings(g)
        assert s["min_size"] == 1 and s["max_size"] == 4, s
        edit_file(g.config, "min_size = 9", "min_size = 1")

        # POST /api/v1/reload on the controller process
        edit_file(g.config, "max_size = 4", "max_size = 5")
        st, j = call(g, "POST", "/api/v1/reload", {})
        assert st == 202 and j["requested"] is True, (st, j)
        gen = j["generation"]
        rep = wait_until(lambda: (lambda r: r[1] if r[0] == 200 and r[1].get("generation", 0) >=
                                  gen and not r[1].get("in_progress") else None)(
                                      call(g, "GET", "/api/v1/reload")), 20,
                         what="the reload's report")
        assert rep["ok"] is True, rep
        assert settings(g)["max_size"] == 5

        # the monitor process was not disturbed by any of it
        assert mon.poll() is None and ctl.poll() is None
        assert len(g.healthy()) == 2, g.instances()
        g.stop(ctl)
        g.stop(mon)
        assert ctl.returncode == 0 and mon.returncode == 0, (ctl.returncode, mon.returncode)
        print("ok")
    finally:
        srv.shutdown()
        g.cleanup()


if __name__ == "__main__":
    sys.exit(main())
