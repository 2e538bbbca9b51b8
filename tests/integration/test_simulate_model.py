"""`asgd simulate` against an independent implementation of simulation.md's model.

The model below is written from ../shared/design/simulation.md alone (plus the float-noise rule
policy.c states: comparisons and roundings with a 1e-9 slack), not from sim.c: one step per
second, boot -> load -> observe every poll_s -> policy -> act -> account, the oracle, and the two
reference policies `threshold` and `target`. Every public trace (examples/traces/, the same files
as ../shared/traces/) runs through both with several settings, including target's
scale_down_window of 3600 s (the window asgd once cut to 64 evaluations), and every figure of
`asgd simulate --json` must be the model's: integers exactly, unserved to the 6 decimals printed.
"""
import json
import math
import os
import subprocess
import sys

SRC = os.environ.get("ASGD_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.environ.get("ASGD_BIN", os.path.join(os.environ.get("ASGD_BUILD_DIR", "build"), "bin"))
ASGD = os.path.join(BIN, "asgd")
TRACES = os.path.join(SRC, "examples", "traces")
EPS = 1e-9


def load_trace(path):
    rows = {}
    with open(path) as f:
        assert f.readline().strip() == "t,demand"
        for line in f:
            if line.strip():
                t, d = line.split(",")
                rows[int(t)] = float(d)
    return sorted(rows.items())


class Threshold:
    """simulation.md: every period: if avg > up and n < max (or n < min): n -> min(max, floor(n *
    up_factor)), at least 1 and min; else if avg < down and n > min (or n > max): n -> n -
    floor(min(n * down_factor, n - min))."""

    def __init__(self, up=70, down=20, up_factor=2, down_factor=0.5, period=60):
        self.up, self.down, self.uf, self.df, self.period = up, down, up_factor, down_factor, period
        self.last = None

    def decide(self, t, n, avg, mn, mx):
        if self.last is not None and t - self.last < self.period:
            return n
        self.last = t
        if (avg > self.up and n < mx) or n < mn:
            return max(mn, 1, min(mx, math.floor(n * self.uf + EPS)))
        if (avg < self.down and n > mn) or n > mx:
            return n - math.floor(min(n * self.df, n - mn) + EPS)
        return n


class Target:
    """simulation.md: every period: r = avg / target; recommendation n if |r - 1| <= tolerance
    else ceil(n * r), clamped; a scale-down takes the highest recommendation of the window."""

    def __init__(self, target=60, tolerance=0.1, period=15, window=300):
        self.target, self.tol, self.period, self.window = target, tolerance, period, window
        self.last = None
        self.recs = []  # (t, recommendation), all of them: no cleverness to share bugs with

    def decide(self, t, n, avg, mn, mx):
        if self.last is not None and t - self.last < self.period:
            return n
        self.last = t
        r = avg / self.target
        rec = n if abs(r - 1) <= self.tol + EPS else math.ceil(n * r - EPS)
        rec = max(mn, min(mx, rec))
        self.recs.append((t, rec))
        if rec >= n:
            return rec
        highest = max(v for (at, v) in self.recs if t - at < self.window)
        return min(n, highest)  # a scale-down never becomes a scale-up


def model(trace, policy, mn=2, mx=20, boot=60, poll=5):
    T = trace[-1][0]
    in_service, booting = mn, []  # launch times of the booting instances, oldest first
    observed = None
    cost = viol = actions = flaps = 0
    unserved = 0.0
    last_dir = 0
    oracle, prev_need = 0, mn
    row = 0
    for t in range(T + 1):
        while row + 1 < len(trace) and trace[row + 1][0] <= t:
            row += 1
        demand = trace[row][1]
        while booting and booting[0] <= t - boot:
            booting.pop(0)
            in_service += 1
        if in_service > 0:
            load = min(100.0, 100.0 * demand / in_service)
        else:
            load = 100.0 if demand > 0 else 0.0
        if t % poll == 0:
            observed = load
        n = in_service + len(booting)
        d = max(mn, min(mx, policy.decide(t, n, observed, mn, mx)))
        if d != n:
            direction = 1 if d > n else -1
            actions += 1
            if last_dir and direction != last_dir:
                flaps += 1
            last_dir = direction
        if d > n:
            booting += [t] * (d - n)
        elif d < n:
            drop = n - d
            c = min(drop, len(booting))
            if c:
                del booting[len(booting) - c:]  # the newest booting first
            in_service -= drop - c
        cost += in_service + len(booting)
        if demand > 0.8 * in_service:
            viol += 1
        if demand > in_service:
            unserved += demand - in_service
        need = max(mn, min(mx, math.ceil(demand / 0.8 - EPS)))
        oracle += need + (need - prev_need) * boot if need > prev_need else need
        prev_need = need
    return {"seconds": T + 1, "cost": cost, "violation_s": viol, "unserved": unserved,
            "actions": actions, "flaps": flaps, "oracle_cost": oracle,
            "cost_ratio": cost / oracle}


def simulate(trace_path, sets, boot=60, poll=5):
    args = [ASGD, "simulate", "--trace", trace_path, "--json", "--boot", str(boot),
            "--poll", str(poll)]
    for s in sets:
        args += ["--set", s]
    r = subprocess.run(args, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, f"{args}: {r.stderr}"
    return json.loads(r.stdout)


CASES = [
    # (label, --set list, model policy factory, min, max, boot, poll)
    ("threshold", [], lambda: Threshold(), 2, 20, 60, 5),
    ("target", ["policy.type=target"], lambda: Target(), 2, 20, 60, 5),
    ("target window 3600 s", ["policy.type=target", "policy.scale_down_window=3600s"],
     lambda: Target(window=3600), 2, 20, 60, 5),
    ("target window 3600 s, 1..50, boot 120, poll 10",
     ["policy.type=target", "policy.scale_down_window=3600s", "min=1", "max=50"],
     lambda: Target(window=3600), 1, 50, 120, 10),
    ("target 50 %, tolerance 0.05, period 30 s",
     ["policy.type=target", "policy.target=50", "policy.tolerance=0.05",
      "policy.evaluation_period=30s"],
     lambda: Target(target=50, tolerance=0.05, period=30), 2, 20, 60, 5),
    ("threshold 80/30, x1.5, 0.25, 30 s, 3..12",
     ["policy.scale_up_threshold=80", "policy.scale_down_threshold=30",
      "policy.scale_up_factor=1.5", "policy.down_factor=0.25", "policy.evaluation_period=30s",
      "min=3", "max=12"],
     lambda: Threshold(80, 30, 1.5, 0.25, 30), 3, 12, 60, 5),
]


def main():
    names = sorted(f for f in os.listdir(TRACES) if f.endswith(".csv"))
    assert len(names) >= 5, names
    checked = 0
    for name in names:
        path = os.path.join(TRACES, name)
        trace = load_trace(path)
        for label, sets, factory, mn, mx, boot, poll in CASES:
            want = model(trace, factory(), mn, mx, boot, poll)
            got = simulate(path, sets, boot, poll)
            for k in ("seconds", "cost", "violation_s", "actions", "flaps", "oracle_cost"):
                assert got[k] == want[k], f"{name}, {label}: {k} {got[k]} != model {want[k]}"
            assert abs(got["unserved"] - want["unserved"]) < 1e-6 * max(1, want["unserved"]), \
                f"{name}, {label}: unserved {got['unserved']} != model {want['unserved']}"
            assert abs(got["cost_ratio"] - want["cost_ratio"]) < 1e-5, (name, label)
            assert abs(got["violation_pct"] - 100.0 * want["violation_s"] / want["seconds"]) < 1e-4
            print(f"{name:12s} {label:48s} cost {got['cost']:>8} ratio {got['cost_ratio']:.3f} "
                  f"viol {got['violation_pct']:.2f} % actions {got['actions']}: = model")
            checked += 1
    # the 3600 s window must matter on some trace, else the case proves nothing about the cap
    differs = 0
    for name in names:
        path = os.path.join(TRACES, name)
        a = simulate(path, ["policy.type=target", "policy.scale_down_window=3600s"])
        b = simulate(path, ["policy.type=target", "policy.scale_down_window=960s"])
        differs += a["cost"] != b["cost"]
    assert differs > 0, "a 3600 s window behaves like 960 s on every trace"
    print(f"OK: {checked} runs equal to the model")


if __name__ == "__main__":
    sys.exit(main())
