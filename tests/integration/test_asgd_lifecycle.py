"""Lifecycle hooks with real processes (issue 12, docs/lifecycle.md).

One group whose agents run `monitorc --on-terminate 'sh DIR/drain.sh'` (drain.sh: `sleep 3;
echo drained > FILE`, or fail, or hang, as flag files say) and a terminate hook of 30 s:
- scale-in: the victim waits in terminating:wait for about 3 s, the drain's file exists while
  its process still runs (before it is signalled), and no poll records its load meanwhile;
- a drain command that fails, and one that outlives the hook's timeout: the default result;
- a launch hook held 5 s: the new instance is not in service until `asgctl complete-hook`, and
  the wait survives a kill -9 and restart of asgd.
Durations measured are printed."""
import os
import signal
import sys
import time

from asgd_harness import Group, pid_alive, wait_until
from group_api import FAST_HEALTH, STILL_POLICY, api, asgctl, insts

TOKEN = "lifecycle-" + str(os.getpid())


def by_lifecycle(g, lc):
    return [i for i in insts(g).values() if i["lifecycle"] == lc]


def activities(g):
    return api(g, "GET", "/activities?limit=200")


def hook_acts(g, who, want):
    """The hook activities naming who, once one satisfies want: a tick's activities are written
    together at its end, a moment after the instance it acted on may be gone."""
    deadline = time.monotonic() + 5
    while True:
        acts = [a for a in activities(g) if a["kind"] == "hook" and who in a["cause"]]
        if any(want(a) for a in acts) or time.monotonic() > deadline:
            return acts
        time.sleep(0.1)


def make_group():
    g = Group("life", min_size=2, max_size=4, policy=STILL_POLICY, health=FAST_HEALTH,
              agent_args="--on-terminate 'sh DRAIN'", load=50)
    drain = os.path.join(g.dir, "drain.sh")
    g.drained = os.path.join(g.dir, "drained")
    g.fail_flag = os.path.join(g.dir, "fail")
    g.slow_flag = os.path.join(g.dir, "slow")
    with open(drain, "w") as f:
        f.write(f"if [ -f {g.fail_flag} ]; then exit 3; fi\n"
                f"if [ -f {g.slow_flag} ]; then sleep 60; fi\n"
                f"sleep 3; echo drained > {g.drained}\n")
    text = open(g.config).read().replace("DRAIN", drain)
    text = text.replace("[store]", "[hooks]\nterminate_timeout = 30s\nterminate_default = "
                        "abandon\n\n[store]")
    with open(g.config, "w") as f:
        f.write(text)
    g.use_token(TOKEN)
    return g


def scale_in_one(g):
    """desired 2 -> 1; returns (victim id, its pid, monotonic time it entered the wait)."""
    api(g, "PATCH", "", {"min_size": 1, "desired_capacity": 1})
    w = wait_until(lambda: by_lifecycle(g, "terminating:wait"), 10, step=0.05,
                   what="an instance in terminating:wait")
    return w[0]["id"], w[0]["pid"], time.monotonic()


def back_to_two(g):
    api(g, "PATCH", "", {"min_size": 2, "desired_capacity": 2})
    wait_until(lambda: len(g.healthy()) == 2 and len(insts(g)) == 2, 30, what="2 in service")


def drain_ok(g):
    victim, pid, t0 = scale_in_one(g)
    t_file = t_gone = None
    loads = []
    while time.monotonic() - t0 < 20:
        # the file first, then the process: a file seen before a live process proves the
        # order (the other way round, both could change between the two looks)
        now = time.monotonic()
        if t_file is None and os.path.exists(g.drained):
            t_file = now
        alive = pid_alive(pid)
        if t_file == now:
            assert alive, "the drain's file appeared after the process was gone"
        if not alive:
            t_gone = now
            break
        i = insts(g).get(victim)
        if i and i["lifecycle"] == "terminating:wait" and now - t0 > 1.0:
            loads.append(i["load"])
        time.sleep(0.05)
    assert t_gone is not None, "the victim was never terminated"
    assert t_file is not None and t_file < t_gone, (t_file, t_gone)
    waited = t_gone - t0
    print(f"drain: terminating:wait {waited:.2f}s (drain command: sleep 3), drained file "
          f"{t_gone - t_file:.2f}s before the process was gone; {len(loads)} looks at its load "
          f"during the wait, all null: {all(x is None for x in loads)}")
    assert 2.5 <= waited <= 8, waited
    assert loads and all(x is None for x in loads), loads
    hook = hook_acts(g, victim, lambda a: a["status"] == "continue"
                     and "drain command succeeded" in a["cause"])
    assert any(a["status"] == "continue" and "drain command succeeded" in a["cause"]
               for a in hook), hook
    assert any(a["status"] == "terminating:wait" for a in hook), hook


def drain_fails(g):
    open(g.fail_flag, "w").close()
    victim, pid, t0 = scale_in_one(g)
    wait_until(lambda: not pid_alive(pid), 10, step=0.05, what="the failed drain's victim gone")
    took = time.monotonic() - t0
    os.unlink(g.fail_flag)
    acts = hook_acts(g, victim, lambda a: a["status"] == "abandon" and "exit status 3" in a["cause"])
    print(f"drain fails (exit 3): default result applied, terminated after {took:.2f}s")
    assert any(a["status"] == "abandon" and "exit status 3" in a["cause"] for a in acts), acts
    assert took < 5, took


def drain_times_out(g):
    open(g.slow_flag, "w").close()
    api(g, "PATCH", "/hooks", {"terminate_timeout": "2s"})
    victim, pid, t0 = scale_in_one(g)
    wait_until(lambda: not pid_alive(pid), 15, step=0.05, what="the slow drain's victim gone")
    took = time.monotonic() - t0
    os.unlink(g.slow_flag)
    api(g, "PATCH", "/hooks", {"terminate_timeout": "30s"})
    acts = hook_acts(g, victim, lambda a: a["status"] == "abandon" and "timed out" in a["cause"])
    print(f"drain outlives terminate_timeout 2s: default result after {took:.2f}s")
    assert any(a["status"] == "abandon" and "timed out" in a["cause"] for a in acts), acts
    assert 1.5 <= took <= 6, took


def launch_hook(g, p):
    api(g, "PATCH", "/hooks", {"launch_timeout": "60s", "launch_default": "abandon"})
    api(g, "PATCH", "", {"desired_capacity": 3})
    w = wait_until(lambda: by_lifecycle(g, "pending:wait"), 15, what="an instance in pending:wait")
    new = w[0]["id"]
    t0 = time.monotonic()
    # healthy (its agent answers), yet not in service while the hook waits
    wait_until(lambda: insts(g)[new]["health"] == "healthy", 10, what="the new one healthy")
    while time.monotonic() - t0 < 5:
        i = insts(g)[new]
        assert i["lifecycle"] == "pending:wait", i
        assert api(g, "GET", "")["in_service"] == 2
        time.sleep(0.2)
    deadline = insts(g)[new]["hook_deadline_at"]
    # visible in asgctl: the instance table and the group's status
    assert "pending:wait" in asgctl(g, "instances").split(new, 1)[1].split("\n", 1)[0]
    st = asgctl(g, "status")
    assert "1 waiting for a hook" in st and "launch 1m (default abandon)" in st, st
    # the wait is in the store: a kill -9 and restart of asgd keeps it
    p.send_signal(signal.SIGKILL)
    p.wait()
    p = g.start()
    wait_until(lambda: new in insts(g), 20, what="asgd back")
    i = insts(g)[new]
    assert i["lifecycle"] == "pending:wait" and i["hook_deadline_at"] == deadline, i
    time.sleep(1.5)
    assert insts(g)[new]["lifecycle"] == "pending:wait"
    held = time.monotonic() - t0
    out = asgctl(g, "complete-hook", new, "continue")
    assert "continue" in out, out
    t1 = time.monotonic()
    wait_until(lambda: insts(g)[new]["lifecycle"] == "in-service", 10, step=0.05,
               what="in service after complete-hook")
    print(f"launch hook: held {held:.1f}s in pending:wait (through a kill -9 of asgd), in "
          f"service {time.monotonic() - t1:.2f}s after complete-hook continue")
    acts = hook_acts(g, new, lambda a: a["status"] == "continue" and "API" in a["cause"])
    assert any(a["status"] == "continue" and "API" in a["cause"] for a in acts), acts
    api(g, "PATCH", "/hooks", {"launch_timeout": "0s"})
    return p


def main():
    g = make_group()
    try:
        p = g.start()
        wait_until(lambda: len(g.healthy()) == 2, 30, what="2 healthy instances")
        drain_ok(g)
        back_to_two(g)
        drain_fails(g)
        back_to_two(g)
        drain_times_out(g)
        back_to_two(g)
        p = launch_hook(g, p)
        g.stop(p)
        print("ok")
    finally:
        g.cleanup()


if __name__ == "__main__":
    sys.exit(main())
