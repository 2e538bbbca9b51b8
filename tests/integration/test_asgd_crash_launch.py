"""kill -9 of asgd at random instants during local launches (issue 11 item 1).

Each trial: a new group (min = max = 4) starts, so asgd launches 4 agents; asgd is killed with
SIGKILL during those launches (sometimes twice), then restarted. Every other trial kills at a
random instant; the others watch asgd's threads for a child process (the first process of the
double fork, alive for about a millisecond) and kill asgd the moment its n-th spawn (n random)
appears: inside the narrow window between "agent spawned" and "pid file written" that random
instants rarely hit. Checks:
- the group converges to 4 healthy instances;
- no orphan: every monitorc of the group is an instance of the group (a pid file names it,
  `asgd status` lists it), and every instance has its process;
- no double: exactly 4 agent processes, steady for 2 s;
- never above max: the group's agent processes, sampled every 20 ms during the whole trial,
  never exceed 4.

Runs 3 trials under `make test`; by hand: test_asgd_crash_launch.py 20 (or ASGD_CRASH_TRIALS).
"""
import os
import random
import signal
import sys
import threading
import time

from asgd_harness import Group, wait_until

SIZE = 4


class Sampler:
    """Counts the group's agent processes every 20 ms in a thread; remembers the maximum."""

    def __init__(self, g):
        self.g, self.max, self.n, self.when = g, 0, 0, None
        self.stop = threading.Event()
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        while not self.stop.is_set():
            pids = self.g.agent_pids()
            self.n += 1
            if len(pids) > self.max:
                self.max, self.when = len(pids), pids
            self.stop.wait(0.02)

    def finish(self):
        self.stop.set()
        self.t.join(5)


def kill_at_spawn(p, nth, timeout=3.0):
    """SIGKILLs p as soon as one of its threads has its nth child; returns the child's pid."""
    seen = set()
    deadline = time.monotonic() + timeout
    task = f"/proc/{p.pid}/task"
    while time.monotonic() < deadline:
        try:
            tids = os.listdir(task)
        except FileNotFoundError:
            return None
        for tid in tids:
            try:
                with open(f"{task}/{tid}/children") as f:
                    kids = f.read().split()
            except OSError:
                continue
            for c in kids:
                seen.add(c)
                if len(seen) >= nth:
                    os.kill(p.pid, signal.SIGKILL)
                    p.wait()
                    return int(c)
    # a short-lived child can slip between two looks: kill anyway
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    return None


def live_pidfiles(g):
    return {i: p for i, p in g.pidfiles().items() if p > 0}


def trial(k, rng):
    g = Group("cr", min_size=SIZE, max_size=SIZE, load=40)
    s = None
    try:
        s = Sampler(g)
        kills = []
        p = g.start()
        if k % 2 == 0:
            nth = rng.randint(1, SIZE)
            t0 = time.monotonic()
            child = kill_at_spawn(p, nth)
            kills.append(f"spawn {nth} (+{time.monotonic() - t0:.3f}s)" if child else
                         f"{time.monotonic() - t0:.3f}s (spawn {nth} not seen)")
            time.sleep(rng.uniform(0.0, 0.3))
            p = g.start()
        else:
            for _ in range(rng.choice((1, 1, 2))):
                at = rng.uniform(0.05, 1.0)
                time.sleep(at)
                g.stop(p, signal.SIGKILL)
                kills.append(f"{at:.3f}s")
                time.sleep(rng.uniform(0.0, 0.3))
                p = g.start()
        wait_until(lambda: len(g.healthy()) == SIZE, 40, step=0.2,
                   what=f"{SIZE} healthy after the restart")
        end = time.monotonic() + 2
        while time.monotonic() < end:
            assert len(g.agent_pids()) == SIZE, f"agent processes: {g.agent_pids()}"
            time.sleep(0.1)
        ids = sorted(i["id"] for i in g.instances())
        files = live_pidfiles(g)
        pids = g.agent_pids()
        assert sorted(files) == ids, f"pid files {sorted(files)} vs instances {ids}"
        assert sorted(files.values()) == pids, f"orphans: processes {pids} vs pid files {files}"
        s.finish()
        assert s.max <= SIZE, f"{s.max} agent processes at once (max {SIZE}): {s.when}"
        print(f"trial {k}: killed at {kills}; converged to {SIZE}; "
              f"max {s.max} processes over {s.n} samples")
        g.stop(p)
    finally:
        if s:
            s.finish()
        g.cleanup()


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else int(os.environ.get("ASGD_CRASH_TRIALS", "3"))
    seed = int(os.environ.get("ASGD_CRASH_SEED", str(int(time.time()))))
    print(f"{n} trials, seed {seed}")
    rng = random.Random(seed)
    for k in range(1, n + 1):
        trial(k, rng)
    print("ok")


if __name__ == "__main__":
    sys.exit(main())
