"""asgd with the local provider: a group with min 2 reaches 2 healthy instances; kill -9 of one
instance's process is detected and the instance replaced within
interval x unhealthy_threshold + timeout + one tick (+ boot), measured and printed.
`asgd status --json` on this one-group node prints the group's object; --all the same object in
{"groups": [...]} (the shape of a node with several groups)."""
import json
import os
import signal
import subprocess
import sys
import time

from asgd_harness import BIN, Group, pid_alive, wait_until

INTERVAL, TIMEOUT, FALL, TICK = 0.5, 0.3, 3, 1.0


def main():
    g = Group("rep", min_size=2, max_size=4, load=40)
    try:
        t0 = time.monotonic()
        g.start()
        wait_until(lambda: len(g.healthy()) == 2, 20, what="2 healthy instances")
        print(f"2 healthy instances after {time.monotonic() - t0:.2f}s")
        before = {i["id"]: i["pid"] for i in g.instances()}
        assert len(before) == 2, before
        victim, vpid = sorted(before.items())[0]

        os.kill(vpid, signal.SIGKILL)
        t_kill = time.monotonic()

        def victim_gone():
            ids = {i["id"] for i in g.instances()}
            return victim not in ids
        wait_until(victim_gone, 15, step=0.05, what="the dead instance to leave the group")
        detect = time.monotonic() - t_kill

        def replaced():
            h = g.healthy()
            return len(h) == 2 and victim not in {i["id"] for i in h}
        wait_until(replaced, 20, step=0.05, what="a healthy replacement")
        total = time.monotonic() - t_kill
        bound = INTERVAL * FALL + TIMEOUT + TICK
        print(f"kill -9 -> detected and removed in {detect:.2f}s (bound {bound:.1f}s + describe), "
              f"healthy replacement in {total:.2f}s")
        assert detect <= bound + 2.5, f"detection took {detect:.2f}s"

        # exactly min instances, and no process left over from the victim
        assert not pid_alive(vpid)
        assert len(g.agent_pids()) == 2, g.agent_pids()
        acts = g.log_text()
        assert "vanished" in acts or "replacing instance" in acts, acts[-2000:]

        one = g.status()
        assert one["group"] == g.name, one
        r = subprocess.run([os.path.join(BIN, "asgd"), "status", "-c", g.config, "--json",
                            "--all"], capture_output=True, text=True, timeout=20)
        assert r.returncode == 0, (r.returncode, r.stderr)
        all_ = json.loads(r.stdout)
        assert list(all_) == ["groups"] and len(all_["groups"]) == 1, all_
        assert all_["groups"][0]["group"] == g.name, all_
        assert sorted(i["id"] for i in all_["groups"][0]["instances"]) == \
            sorted(i["id"] for i in one["instances"]), (one, all_)
        print("ok")
    finally:
        g.cleanup()


if __name__ == "__main__":
    sys.exit(main())
