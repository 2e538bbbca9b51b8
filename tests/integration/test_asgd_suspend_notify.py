"""Issue 12 (helper Q) with real processes: termination policies, suspended processes and
webhooks, on one asgd running a local group.

- webhooks: a real HTTP receiver (http.server) that fails the first two attempts of every
  delivery: each event arrives on the third attempt, same delivery id, with a valid
  X-Asgd-Signature (HMAC-SHA256 of the body under secret_file); later a receiver that always
  fails: the event is dead-lettered after max_retries, counted in /metrics.
- termination_policy newest_instance, then oldest_instance: the scale-in picks the instance
  the policy names.
- suspended Launch (asgctl suspend Launch): a scale-out is recorded as an activity "skipped"
  with the reason, nothing launches; asgctl resume Launch: it launches.
"""
import hashlib
import hmac
import http.server
import json
import os
import re
import sys
import threading
import time

from asgd_harness import Group, free_port, wait_until
from group_api import asgctl, call

TOKEN = "it-token-" + str(os.getpid())
SECRET = b"s3cret-key-" + str(os.getpid()).encode()


class Receiver(http.server.BaseHTTPRequestHandler):
    mode = "fail-twice"  # or "always-fail", "ok"
    lock = threading.Lock()
    attempts = {}  # delivery id -> attempts seen
    delivered = []  # (headers dict, body bytes, parsed)

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        did = self.headers.get("X-Asgd-Delivery", "")
        with Receiver.lock:
            n = Receiver.attempts.get(did, 0) + 1
            Receiver.attempts[did] = n
            fail = Receiver.mode == "always-fail" or (Receiver.mode == "fail-twice" and n <= 2)
            if not fail:
                Receiver.delivered.append((dict(self.headers), body, json.loads(body)))
        self.send_response(503 if fail else 204)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def main():
    recv_port = free_port()
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", recv_port), Receiver)
    threading.Thread(target=srv.serve_forever, daemon=True).start()

    g = Group("susp", min_size=1, max_size=4, load=50)
    g.use_token(TOKEN)
    key = os.path.join(g.dir, "hook.key")
    with open(key, "wb") as f:
        f.write(SECRET + b"\n")
    os.chmod(key, 0o600)
    with open(g.config, "a") as f:
        f.write(f"\n[notify]\nurl = http://127.0.0.1:{recv_port}/hook\n"
                f"secret_file = {key}\nevents = launch, terminate, skipped\n"
                f"max_retries = 3\nretry_base = 200ms\nretry_max = 1s\ntimeout = 2s\n")

    def instances():
        st, inst = call(g, "GET", "/api/v1/instances")
        return inst if st == 200 else []

    def healthy():
        return [i for i in instances() if i["lifecycle"] == "in-service" and i["health"] == "healthy"]

    def activities():
        st, acts = call(g, "GET", "/api/v1/activities?limit=200")
        return acts if st == 200 else []

    def metric(name, labels):
        st, text = call(g, "GET", "/metrics")
        m = re.search(re.escape(name + labels) + r" (\S+)", text or "")
        return float(m.group(1)) if m else None

    try:
        g.start()
        wait_until(lambda: call(g, "GET", "/readyz")[0] == 200, 20, what="readyz")
        wait_until(lambda: len(healthy()) == 1, 30, what="1 healthy instance")

        # --- webhooks: the launch event, on its third attempt, signed ------------------------
        def launch_events():
            with Receiver.lock:
                return [d for d in Receiver.delivered if d[2]["event"] == "launch"]
        wait_until(launch_events, 20, what="the launch event delivered")
        hdrs, body, ev = launch_events()[0]
        want = "sha256=" + hmac.new(SECRET, body, hashlib.sha256).hexdigest()
        assert hdrs["X-Asgd-Signature"] == want, (hdrs, want)
        assert hdrs["X-Asgd-Attempt"] == "3", hdrs
        assert Receiver.attempts[hdrs["X-Asgd-Delivery"]] == 3
        assert ev["group"] == g.name and ev["kind"] == "launch" and ev["status"] == "ok", ev
        print(f"launch event delivered on attempt 3 with a valid signature: {ev['cause']}")

        # --- termination policies -------------------------------------------------------------
        st, _ = call(g, "PATCH", "/api/v1/group", {"desired_capacity": 3})
        assert st == 200
        wait_until(lambda: len(healthy()) == 3, 40, what="3 healthy instances")
        by_age = sorted(instances(), key=lambda i: (i["launched_at_ms"], i["id"]))
        # (the two added together may share a launch time: either is then the newest)
        st, _ = call(g, "PATCH", "/api/v1/group", {"termination_policy": ["newest_instance"],
                                                    "desired_capacity": 2})
        assert st == 200, st
        wait_until(lambda: len(instances()) == 2, 30, what="scale-in to 2")
        gone = {i["id"] for i in by_age} - {i["id"] for i in instances()}
        assert len(gone) == 1, gone
        gone = gone.pop()
        newest_time = by_age[-1]["launched_at_ms"]
        assert [i for i in by_age if i["id"] == gone][0]["launched_at_ms"] == newest_time, \
            (gone, by_age)
        assert by_age[0]["id"] != gone
        cause = [a["cause"] for a in activities()
                 if a["kind"] == "terminate" and gone in a["cause"]]
        assert cause and "newest instance" in cause[0], cause
        print(f"newest_instance: terminated {gone} ({cause[0]})")

        left = sorted(instances(), key=lambda i: (i["launched_at_ms"], i["id"]))
        out = asgctl(g, "set", "group", "termination_policy=oldest_instance")
        assert "termination_policy" in out and "oldest_instance" in out, out
        st, grp = call(g, "PATCH", "/api/v1/group", {"desired_capacity": 1})
        assert st == 200 and grp["termination_policy"] == ["oldest_instance"], grp
        wait_until(lambda: len(instances()) == 1, 30, what="scale-in to 1")
        assert instances()[0]["id"] == left[-1]["id"], (instances(), left)
        print(f"oldest_instance: terminated {left[0]['id']}, kept {left[-1]['id']}")

        # --- suspended Launch -----------------------------------------------------------------
        out = asgctl(g, "suspend", "Launch")
        assert "Launch" in out, out
        st, grp = call(g, "GET", "/api/v1/group")
        assert grp["suspended_processes"] == ["Launch"], grp
        assert "Launch" in asgctl(g, "status")
        assert metric("asgd_process_suspended", f'{{group="{g.name}",process="Launch"}}') == 1
        st, _ = call(g, "PATCH", "/api/v1/group", {"desired_capacity": 2})
        assert st == 200

        def skipped():
            return [a for a in activities() if a["status"] == "skipped"]
        wait_until(skipped, 15, what="a skipped activity")
        sk = skipped()
        assert len(sk) == 1 and sk[0]["kind"] == "launch", sk
        assert "process Launch is suspended" in sk[0]["cause"], sk
        print(f"suspended Launch: {sk[0]['cause']}")
        time.sleep(3)  # several ticks: still nothing launched, still one record
        assert len(instances()) == 1, instances()
        assert len(skipped()) == 1, skipped()
        # the skip went out as a webhook too
        wait_until(lambda: [d for d in Receiver.delivered if d[2]["event"] == "skipped"], 15,
                   what="the skipped event delivered")

        # --- resume; the receiver now always fails: dead letter -------------------------------
        Receiver.mode = "always-fail"
        dead0 = metric("asgd_notify_events_total", '{result="dead_letter"}') or 0
        out = asgctl(g, "resume", "Launch")
        assert "none" in out, out
        wait_until(lambda: len(healthy()) == 2, 40, what="the launch after resume")
        print("resumed Launch: the second instance launched")
        wait_until(lambda: (metric("asgd_notify_events_total", '{result="dead_letter"}') or 0)
                   > dead0, 20, what="a dead-lettered event")
        delivered = metric("asgd_notify_events_total", '{result="delivered"}')
        failed = metric("asgd_notify_events_total", '{result="failed"}')
        attempts_of_dead = max(Receiver.attempts.values())
        assert attempts_of_dead == 4, Receiver.attempts  # 1 + max_retries
        print(f"dead letter after {attempts_of_dead} attempts; /metrics delivered {delivered:g}, "
              f"failed {failed:g}")
        print("ok")
    finally:
        g.cleanup()
        srv.shutdown()


if __name__ == "__main__":
    sys.exit(main())
