"""max_instance_lifetime with real processes: a local group of 2 with a lifetime of 8 s has both
original instances replaced, one at a time and launching first, so the healthy in-service count
sampled every 100 ms never drops below 2 once reached; each replacement is recorded."""
import os
import sys
import time

from asgd_harness import Group, wait_until
from group_api import call

TOKEN = "it-token-" + str(os.getpid())


def main():
    g = Group("life", min_size=2, max_size=4, load=50)
    g.use_token(TOKEN)

    def healthy():
        st, inst = call(g, "GET", "/api/v1/instances")
        return [i for i in (inst if st == 200 else [])
                if i["lifecycle"] == "in-service" and i["health"] == "healthy"]

    try:
        g.start()
        wait_until(lambda: len(healthy()) == 2, 30, what="2 healthy instances")
        originals = {i["id"] for i in healthy()}
        st, grp = call(g, "PATCH", "/api/v1/group", {"max_instance_lifetime": "8s"})
        assert st == 200 and grp["max_instance_lifetime"] == "8s", (st, grp)
        t0 = time.monotonic()
        low = 99
        seen = set()
        while time.monotonic() - t0 < 45:
            h = healthy()
            low = min(low, len(h))
            seen |= {i["id"] for i in h}
            if not originals & {i["id"] for i in h} and len(h) >= 2:
                break
            time.sleep(0.1)
        took = time.monotonic() - t0
        now = {i["id"] for i in healthy()}
        assert not originals & now, f"originals still there after {took:.1f}s: {originals & now}"
        assert low >= 2, f"healthy count dropped to {low}"
        # a tick's activities are written together at its end: the last one may land a moment
        # after the instance left the healthy list
        deadline = time.monotonic() + 5
        while True:
            st, acts = call(g, "GET", "/api/v1/activities?limit=200")
            repl = [a for a in acts
                    if a["kind"] == "replace" and "max_instance_lifetime" in a["cause"]]
            if all(any(oid in a["cause"] for a in repl) for oid in originals):
                break
            assert time.monotonic() < deadline, (originals, repl)
            time.sleep(0.1)
        print(f"both originals replaced in {took:.1f}s, healthy never below {low} "
              f"({len(seen)} instances seen); e.g. {repl[-1]['cause']}")
        print("ok")
    finally:
        g.cleanup()


if __name__ == "__main__":
    sys.exit(main())
