"""Load driven through [local] agent_args = --load file:PATH.
95 -> the group grows to max by the seed's factors (2 -> 4 -> 5); 5 -> it shrinks back to min
(5 -> 3 -> 2); the cooldown separates actions, and instances inside their grace period do not
count in the average (recorded causes are checked)."""
import json
import os
import re
import sqlite3
import sys
import time

from asgd_harness import Group, wait_until

COOLDOWN = 3.0


def activities(g):
    db = sqlite3.connect(os.path.join(g.state, "asgd.db"))
    try:
        rows = db.execute("SELECT * FROM activities ORDER BY id").fetchall()
        cols = [d[0] for d in db.execute("SELECT * FROM activities LIMIT 0").description]
    finally:
        db.close()
    return [dict(zip(cols, r)) for r in rows]


def scale_events(g):
    return [a for a in activities(g) if a["kind"] == "scale"]


def main():
    g = Group("scl", min_size=2, max_size=5, load=50,
              policy={"type": "threshold", "evaluation_period": "3s", "cooldown": "3s",
                      "scale_up_threshold": 70, "scale_down_threshold": 20,
                      "scale_up_factor": 2, "scale_down_factor": 0.5})
    try:
        g.start()
        wait_until(lambda: len(g.healthy()) == 2, 20, what="2 healthy")
        g.set_load(95)
        wait_until(lambda: len(g.healthy()) == 5, 40, what="growth to max 5")
        ups = [(e["from_count"], e["to_count"]) for e in scale_events(g)]
        print("scale out:", ups)
        assert ups[:2] == [(2, 4), (4, 5)], ups
        causes = [e["cause"] for e in scale_events(g)]
        # the evaluation period's average: 95 once the window holds only the new load, less
        # when the decision came while it still held some of the 50 % before (a busy machine)
        m = re.search(r"(\d+(?:\.\d+)?)% > 70%", causes[0])
        assert m and 70 < float(m.group(1)) <= 95, causes

        g.set_load(5)
        wait_until(lambda: len(g.instances()) == 2 and len(g.healthy()) == 2, 40,
                   what="shrink to min 2")
        ev = scale_events(g)
        downs = [(e["from_count"], e["to_count"]) for e in ev[2:]]
        print("scale in:", downs)
        assert downs == [(5, 3), (3, 2)], downs
        # cooldown: consecutive actions at least COOLDOWN apart
        times = [e["at_ms"] / 1000 for e in ev]
        gaps = [b - a for a, b in zip(times, times[1:])]
        print("gaps between actions (s):", [round(x, 2) for x in gaps])
        assert all(gap >= COOLDOWN - 0.05 for gap in gaps), gaps
        # grace: after 2 -> 4 the two new instances were inside their grace period, so the
        # next decision still saw only loaded instances and no average from booting ones
        terms = [a for a in activities(g) if a["kind"] == "terminate"]
        assert len(terms) == 3, terms
        time.sleep(1)
        assert len(g.agent_pids()) == 2, g.agent_pids()
        print("ok")
    finally:
        g.cleanup()


if __name__ == "__main__":
    sys.exit(main())
