"""The predictive policy drives a real group (local provider, load through --load file:).

Load 95 % on the two instances: the demand estimate (0.95 x 2) needs more than two instances at
70 %, so the group grows, to max 5; load 5 %: after the scale-down window it shrinks to min 2.
Every recorded scaling decision carries its forecast in its cause, as in the simulator."""
import os
import sqlite3
import sys

from asgd_harness import Group, wait_until


def scale_events(g):
    db = sqlite3.connect(os.path.join(g.state, "asgd.db"))
    try:
        db.row_factory = sqlite3.Row
        return [dict(r) for r in db.execute(
            "SELECT * FROM activities WHERE kind = 'scale' ORDER BY id").fetchall()]
    finally:
        db.close()


def main():
    g = Group("pred", min_size=2, max_size=5, load=50,
              policy={"type": "predictive", "evaluation_period": "1s", "lead": "5s",
                      "scale_down_window": "4s", "target": 70})
    try:
        g.start()
        wait_until(lambda: len(g.healthy()) == 2, 20, what="2 healthy")
        assert scale_events(g) == [], "50 % on 2 instances needs no change at 70 %"
        g.set_load(95)
        wait_until(lambda: len(g.healthy()) == 5, 60, what="growth to max 5")
        ups = [(e["from_count"], e["to_count"]) for e in scale_events(g)]
        print("scale out:", ups)
        assert ups and all(b > a for a, b in ups), ups
        g.set_load(5)
        wait_until(lambda: len(g.instances()) == 2 and len(g.healthy()) == 2, 60,
                   what="shrink to min 2")
        ev = scale_events(g)
        print("\n".join(e["cause"] for e in ev))
        assert ev[-1]["to_count"] == 2 and ev[-1]["from_count"] > 2
        for e in ev:
            assert e["cause"].startswith("forecast ") and " in 5s (trend " in e["cause"], e
        print("ok")
    except Exception:
        print(g.log_text()[-3000:], file=sys.stderr)
        raise
    finally:
        g.cleanup()


if __name__ == "__main__":
    sys.exit(main())
