"""`asgd simulate --from-store`: replay a group's own recorded history.

A real group runs (local provider, load through --load file:): 2 instances at 50 %, then 100 %
(saturated: the threshold policy grows it to 4). Its controller records load and instances in
service every 5 s; simulate rebuilds the demand from them (load x in service), flags the
saturated samples, runs the group's stored settings and a proposed policy side by side, and
refuses a missing config or an unknown group with a clear error."""
import csv
import json
import os
import subprocess
import sys
import time

from asgd_harness import Group, wait_until
import testtmp

BIN = os.environ.get("ASGD_BIN", os.path.join(os.environ.get("ASGD_BUILD_DIR", "build"), "bin"))
ASGD = os.path.join(BIN, "asgd")


def simulate(*args, code=0):
    r = subprocess.run([ASGD, "simulate", *args], capture_output=True, text=True, timeout=60)
    assert r.returncode == code, f"{args}: exit {r.returncode}: {r.stderr}"
    return r


def main():
    g = Group("hist", min_size=2, max_size=4, load=50,
              policy={"type": "threshold", "evaluation_period": "3s", "cooldown": "3s"})
    tmp = testtmp.mkdtemp("asgd-hist-")
    try:
        g.start()
        wait_until(lambda: len(g.healthy()) == 2, 20, what="2 healthy")
        time.sleep(11)  # two or three samples at 50 % of 2
        g.set_load(100)
        wait_until(lambda: len(g.healthy()) == 4, 40, what="growth to 4")
        time.sleep(11)
        r = simulate("--from-store", "-c", g.config, "--since", "1h", "--json")
        print(r.stderr.strip())
        j = json.loads(r.stdout)
        print(j)
        assert f"history of group \"{g.name}\"" in r.stderr
        n_sat = int(r.stderr.split(" s, ")[1].split(" of them")[0])
        assert n_sat >= 2, r.stderr  # the 100 % samples are flagged
        assert j["seconds"] >= 25, j
        # the demand is load x in service: 1.0 at 50 % of 2, and >= 2 (saturated) later
        path = os.path.join(tmp, "h.csv")
        simulate("--from-store", "-c", g.config, "--group", g.name, "--csv", path)
        with open(path) as f:
            demand = [float(r["demand"]) for r in csv.DictReader(f)]
        # (0 before the first instance was in service)
        assert any(abs(d - 1.0) < 0.05 for d in demand), sorted(set(demand))
        assert max(demand) >= 2.0, max(demand)
        # the stored settings (threshold 3 s) against a proposal, on the same history
        out = simulate("--from-store", "-c", g.config, "--variant",
                       "policy.type=threshold,policy.evaluation_period=3s", "--variant",
                       "policy.type=predictive").stdout
        print(out)
        assert "policy.type=predictive" in out and "(* best of the column)" in out
        # errors
        r = simulate("--from-store", code=2)
        assert "--from-store needs -c FILE" in r.stderr
        r = simulate("--from-store", "-c", g.config, "--group", "nope", code=1)
        assert "group \"nope\"" in r.stderr, r.stderr
        r = simulate("--from-store", "-c", g.config, "--since", "soon", code=1)
        assert "bad --since \"soon\"" in r.stderr
        print("ok")
    except Exception:
        print(g.log_text()[-3000:], file=sys.stderr)
        raise
    finally:
        g.cleanup()
        testtmp.finish(tmp)


if __name__ == "__main__":
    sys.exit(main())
