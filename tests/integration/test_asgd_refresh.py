"""Instance refresh (issue 12 item 5) with real processes, local provider: a group of 6 whose
[local] agent_args change (SIGHUP reload: a new launch configuration) is refreshed with
min_healthy_percentage = 50, a 3 s warmup and a checkpoint at 50 %:
- the healthy in-service count, sampled every 100 ms, never drops below 3 while asgd runs;
- it pauses at the checkpoint (nothing replaced while paused) until resumed;
- kill -9 of asgd mid-refresh and a restart: it continues where it was (same total, the
  instances already replaced stay, it ends successful with every original gone);
- a second refresh is cancelled mid-way: it stops replacing;
- a third is rolled back: it waits until the previous launch settings are restored (reload),
  then replaces the new config's instances by ones of the restored config;
- a start while one runs is refused (409); each replacement is an activity."""
import os
import re
import signal
import sys
import threading
import time

from asgd_harness import Group, wait_until
from group_api import call

TOKEN = "it-token-" + str(os.getpid())


def main():
    g = Group("refr", min_size=6, max_size=7, load=50)
    g.use_token(TOKEN)
    base = f"/api/v1/groups/{g.name}"

    def instances():
        st, inst = call(g, "GET", f"{base}/instances")
        return inst if st == 200 and isinstance(inst, list) else None

    def healthy():
        inst = instances()
        return None if inst is None else [i for i in inst if i["lifecycle"] == "in-service"
                                          and i["health"] == "healthy"]

    def refresh():
        st, j = call(g, "GET", f"{base}/instance-refresh")
        return j if st == 200 else None

    def reload_with(args_from, args_to):
        text = open(g.config).read()
        assert args_from in text, (args_from, text)
        with open(g.config, "w") as f:
            f.write(text.replace(args_from, args_to, 1))
        mark = len(g.log_text())
        proc.send_signal(signal.SIGHUP)
        wait_until(lambda: re.search(r"reload of .* done|reload refused", g.log_text()[mark:]),
                   30, what="the reload logged")
        assert "refused" not in g.log_text()[mark:], g.log_text()[mark:]

    # the sampler: every 100 ms while asgd answers (None: asgd down or restarting)
    samples = []
    stop = threading.Event()
    sampling = threading.Event()
    proc = None

    def sampler():
        while not stop.is_set():
            if sampling.is_set():
                h = healthy()
                if h is not None:
                    samples.append((time.monotonic(), len(h)))
            time.sleep(0.1)

    th = threading.Thread(target=sampler, daemon=True)
    try:
        proc = g.start()
        wait_until(lambda: len(healthy() or []) == 6, 40, what="6 healthy instances")
        originals = {i["id"] for i in healthy()}
        st, j = call(g, "GET", f"{base}/instance-refresh")
        assert st == 200 and j["status"] == "none", (st, j)

        reload_with("agent_args = --load file:", "agent_args = --log-level info --load file:")
        wait_until(lambda: len(healthy() or []) == 6, 30, what="6 healthy after the reload")
        th.start()
        sampling.set()
        st, j = call(g, "POST", f"{base}/instance-refresh",
                     {"min_healthy_percentage": 50, "instance_warmup": "3s", "checkpoints": [50]})
        assert st == 202 and j["status"] == "pending", (st, j)
        st, j = call(g, "POST", f"{base}/instance-refresh", {})
        assert st == 409, (st, j)
        t0 = time.monotonic()

        # 1. kill -9 of asgd mid-way: the first batch terminated, its replacements warming
        wait_until(lambda: (refresh() or {}).get("status") == "in_progress" and
                   refresh()["instances_left"] < 6, 30, what="the first batch replaced")
        r = refresh()
        assert r["status"] == "in_progress" and r["instances_to_replace"] == 6, r
        left_killed = r["instances_left"]
        gone = originals - {i["id"] for i in instances()}
        sampling.clear()
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        print(f"asgd killed {time.monotonic() - t0:.1f}s into the refresh: {r['status']}, "
              f"{left_killed} of 6 left")
        proc = g.start()
        # adopted instances are polled again before they count: the floor holds once they do
        wait_until(lambda: len(healthy() or []) >= 3, 30, what="asgd back with 3 healthy")
        restarted = time.monotonic()
        sampling.set()
        r = refresh()
        assert r["status"] in ("in_progress", "paused_at_checkpoint") and \
            r["instances_to_replace"] == 6 and r["instances_left"] == left_killed, r
        assert not gone & {i["id"] for i in instances()}, "a replaced instance came back"

        # 2. the checkpoint, reached after the restart: nothing replaced while paused
        wait_until(lambda: (refresh() or {}).get("status") == "paused_at_checkpoint", 60,
                   what="the refresh paused at its checkpoint")
        r = refresh()
        assert r["percentage_complete"] >= 50 and r["instances_left"] == left_killed, r
        ids_paused = {i["id"] for i in instances()}
        time.sleep(3)
        r = refresh()
        assert r["status"] == "paused_at_checkpoint" and r["instances_left"] == left_killed, r
        assert {i["id"] for i in instances()} == ids_paused, "an instance changed while paused"
        print(f"continued after the restart; paused at {r['percentage_complete']} %, "
              f"{left_killed} left, nothing replaced in 3 s")

        # 3. resume: it ends successful
        st, j = call(g, "POST", f"{base}/instance-refresh/resume")
        assert st == 200 and j["status"] == "in_progress", (st, j)
        st, j = call(g, "POST", f"{base}/instance-refresh/resume")
        assert st == 409, (st, j)
        wait_until(lambda: (refresh() or {}).get("status") == "successful", 90,
                   what="the refresh successful")
        wait_until(lambda: len(healthy() or []) == 6, 30, what="6 healthy at the end")
        now_ids = {i["id"] for i in healthy()}
        assert not originals & now_ids, f"originals left: {originals & now_ids}"
        sampling.clear()
        low = min(n for _, n in samples)
        print(f"refresh successful {time.monotonic() - t0:.1f}s after the start "
              f"({time.monotonic() - restarted:.1f}s after the restart); healthy in service "
              f"never below {low} in {len(samples)} samples at 100 ms")
        assert low >= 3, f"healthy count dropped to {low}"
        st, acts = call(g, "GET", f"{base}/activities?limit=200")
        repl = [a for a in acts if a["kind"] == "replace" and "instance refresh" in a["cause"]]
        for oid in originals:
            assert any(oid in a["cause"] for a in repl), (oid, repl)
        print("e.g.", repl[0]["cause"])

        # 4. cancel: a second refresh (agent_args back) is stopped mid-way
        gen2 = {i["id"] for i in healthy()}
        reload_with("agent_args = --log-level info --load file:", "agent_args = --load file:")
        wait_until(lambda: len(healthy() or []) == 6, 30, what="6 healthy after the 2nd reload")
        st, j = call(g, "POST", f"{base}/instance-refresh",
                     {"min_healthy_percentage": 80, "instance_warmup": "3s"})
        assert st == 202, (st, j)
        wait_until(lambda: (refresh() or {}).get("status") == "in_progress" and
                   0 < refresh()["instances_left"] < 6, 60,
                   what="the second refresh under way")
        st, j = call(g, "POST", f"{base}/instance-refresh/cancel")
        assert st == 200 and j["status"] == "cancelled", (st, j)
        st, j = call(g, "POST", f"{base}/instance-refresh/cancel")
        assert st == 409, (st, j)
        time.sleep(1)  # a termination sent in the same tick as the cancel may still finish
        n_repl = len([a for a in call(g, "GET", f"{base}/activities?limit=400")[1]
                      if a["kind"] == "replace" and "instance refresh" in a["cause"]])
        time.sleep(5)
        n_after = len([a for a in call(g, "GET", f"{base}/activities?limit=400")[1]
                       if a["kind"] == "replace" and "instance refresh" in a["cause"]])
        assert n_after == n_repl, f"replacements went on after the cancel: {n_repl} -> {n_after}"
        wait_until(lambda: len(healthy() or []) == 6, 30, what="6 healthy after the cancel")
        kept = gen2 & {i["id"] for i in healthy()}
        assert kept, "every instance was replaced despite the cancel"
        print(f"cancelled: {len(kept)} of 6 instances of the previous config kept")

        # 5. rollback: a third refresh (the same target: the kept ones go) paused at 50 %, rolled
        # back: it waits, replacing nothing, until the previous launch settings are restored
        st, j = call(g, "POST", f"{base}/instance-refresh/rollback")
        assert st == 409, (st, j)  # the cancelled one cannot be
        st, j = call(g, "POST", f"{base}/instance-refresh",
                     {"min_healthy_percentage": 50, "instance_warmup": "1s", "checkpoints": [50]})
        assert st == 202, (st, j)
        wait_until(lambda: (refresh() or {}).get("status") == "paused_at_checkpoint", 60,
                   what="the third refresh paused")
        st, j = call(g, "POST", f"{base}/instance-refresh/rollback")
        assert st == 200 and j["status"] == "rollback_in_progress", (st, j)
        wait_until(lambda: "restore them" in (refresh() or {}).get("reason", ""), 10,
                   what="the rollback waiting for the previous launch settings")
        ids = {i["id"] for i in instances()}
        still_b = kept & ids  # the old config's instances the paused refresh had not replaced
        assert still_b, (kept, ids)
        time.sleep(2)
        assert {i["id"] for i in instances()} == ids, "replaced before the settings were restored"
        print("rollback waits:", refresh()["reason"])
        reload_with("agent_args = --load file:", "agent_args = --log-level info --load file:")
        wait_until(lambda: (refresh() or {}).get("status") == "rolled_back", 60,
                   what="the refresh rolled back")
        r = refresh()
        wait_until(lambda: len(healthy() or []) == 6, 30, what="6 healthy after the rollback")
        back = {i["id"] for i in healthy()}
        assert still_b <= back, "an instance of the restored config was replaced by the rollback"
        assert not (ids - still_b) & back, "an instance of the rolled-back config is left"
        print(f"rolled back: {r['instances_to_replace']} instances of the new config replaced, "
              f"the {len(still_b)} of the restored config kept")
        print("ok")
    finally:
        stop.set()
        g.cleanup()


if __name__ == "__main__":
    sys.exit(main())
