"""Scale-in protection, standby, detach and attach with real processes (issue 12,
docs/lifecycle.md), through asgctl:
- a protected instance survives a scale-in to min; an unhealthy protected one (its agent
  stopped with SIGSTOP) is still replaced;
- standby: out of the group's count (a replacement is launched), back with exit-standby;
- detach --decrement: the process keeps running outside the group; attach by its agent's
  address: it is the group's again and in service."""
import os
import signal
import sys
import time

from asgd_harness import Group, pid_alive, wait_until
from group_api import FAST_HEALTH, STILL_POLICY, api, asgctl, call, insts

TOKEN = "protect-" + str(os.getpid())


def in_service(g):
    return sorted(i for i, x in insts(g).items()
                  if x["lifecycle"] == "in-service" and x["health"] == "healthy")


def kinds(g, kind):
    return [a for a in api(g, "GET", "/activities?limit=200") if a["kind"] == kind]


def protection(g):
    api(g, "PATCH", "", {"desired_capacity": 3})
    ids = wait_until(lambda: len(in_service(g)) == 3 and in_service(g), 30, what="3 in service")
    # the oldest: the victim order picks the oldest in service first
    keep = min(ids, key=lambda i: insts(g)[i]["launched_at_ms"])
    asgctl(g, "protect", keep)
    wait_until(lambda: insts(g)[keep]["protected"], 5, what="protected in the instance list")
    table = asgctl(g, "instances")
    assert "yes" in table.split(keep, 1)[1].split("\n", 1)[0], table
    api(g, "PATCH", "", {"desired_capacity": 1})
    wait_until(lambda: list(insts(g)) == [keep], 20, what="scale-in to min leaving the protected")
    print(f"protection: scale-in 3 -> 1 kept the protected {keep}")
    # unhealthy and protected: replaced all the same
    pid = insts(g)[keep]["pid"]
    os.kill(pid, signal.SIGSTOP)
    t0 = time.monotonic()
    try:
        wait_until(lambda: keep not in insts(g) and len(in_service(g)) == 1, 30,
                   what="the stopped protected instance replaced")
    finally:
        if pid_alive(pid):
            os.kill(pid, signal.SIGCONT)
    print(f"protection: the protected instance, stopped, was replaced in "
          f"{time.monotonic() - t0:.1f}s")
    assert any(keep in a["cause"] for a in kinds(g, "replace")), kinds(g, "replace")


def standby(g):
    api(g, "PATCH", "", {"desired_capacity": 2})
    ids = wait_until(lambda: len(in_service(g)) == 2 and in_service(g), 30, what="2 in service")
    sb = ids[0]
    asgctl(g, "standby", sb)
    wait_until(lambda: insts(g)[sb]["lifecycle"] == "standby", 5, what="standby")
    # out of the count: a replacement is launched, and the standby one is not touched
    wait_until(lambda: len(in_service(g)) == 2 and sb not in in_service(g), 30,
               what="a replacement for the standby instance")
    st = api(g, "GET", "")
    assert st["standby"] == 1 and st["desired_capacity"] == 2, st
    asgctl(g, "exit-standby", sb)
    wait_until(lambda: sb in in_service(g), 15, what="back in service after exit-standby")
    assert api(g, "GET", "")["desired_capacity"] == 3
    print(f"standby: {sb} left the count (replacement launched) and came back (desired 3)")
    assert [a for a in kinds(g, "standby") if sb in a["cause"]]


def detach_attach(g):
    ids = in_service(g)
    d = ids[0]
    info = insts(g)[d]
    asgctl(g, "detach", d, "--decrement")
    wait_until(lambda: d not in insts(g), 10, what="detached")
    time.sleep(2)  # a few ticks: no replacement (desired decremented), process untouched
    assert pid_alive(info["pid"]), "detach terminated the process"
    assert api(g, "GET", "")["desired_capacity"] == len(ids) - 1
    assert len(insts(g)) == len(ids) - 1
    asgctl(g, "attach", info["address"])
    wait_until(lambda: d in in_service(g), 20, what="attached and in service")
    assert insts(g)[d]["pid"] == info["pid"]
    assert api(g, "GET", "")["desired_capacity"] == len(ids)
    print(f"detach/attach: {d} (pid {info['pid']}) kept running outside the group and came back "
          f"by its address")
    assert kinds(g, "detach") and kinds(g, "attach")


def routes(g):
    """The lifecycle, hook and suspend routes answered directly (asgctl drives them above), so
    their real answers, errors included, are checked against the OpenAPI document."""
    base = f"/api/v1/groups/{g.name}"
    one = in_service(g)[0]
    st, h = call(g, "GET", base + "/hooks")
    assert st == 200 and h["launch_timeout"] == "0s" and h["terminate_default"] == "abandon", h
    st, grp = call(g, "PUT", base + "/hooks", {"terminate_default": "continue"})
    assert st == 200 and grp["hooks"]["terminate_default"] == "continue", grp
    st, grp = call(g, "PATCH", base + "/hooks", {"terminate_default": "abandon"})
    assert st == 200 and grp["hooks"]["terminate_default"] == "abandon", grp
    st, a = call(g, "PATCH", f"{base}/instances/{one}", {"protected": True})
    assert st == 202 and a["id"] == one, a
    wait_until(lambda: insts(g)[one]["protected"], 5, what="protected through PATCH")
    st, a = call(g, "PATCH", f"{base}/instances/{one}", {"protected": False})
    assert st == 202, a
    wait_until(lambda: not insts(g)[one]["protected"], 5, what="unprotected through PATCH")
    refused = [("PATCH", f"{base}/instances/i-none", {"protected": True}, 404),
               ("PATCH", f"{base}/instances/{one}", {}, 400),
               ("PATCH", f"{base}/instances/{one}", {"protected": 1}, 400),
               ("POST", f"{base}/instances/{one}/lifecycle", {"action": "continue"}, 409),
               ("POST", f"{base}/instances/{one}/lifecycle", {"action": "maybe"}, 400),
               ("POST", f"{base}/instances/{one}/exit-standby", None, 409),
               ("POST", f"{base}/instances/{one}/detach", {"decrement": True}, 400),
               ("POST", f"{base}/instances", {"attach": ""}, 400),
               ("POST", f"{base}/suspend", {"processes": ["Nap"]}, 400),
               ("PUT", base + "/hooks", {"launch_default": "maybe"}, 400)]
    for method, path, body, want in refused:
        st, e = call(g, method, path, body)
        assert st == want, f"{method} {path} {body}: {st} {e}"
    for path in (base + "/suspend", "/api/v1/group/suspend"):
        st, grp = call(g, "POST", path, {"processes": ["azrebalance"]})
        assert st == 200 and grp["suspended_processes"] == ["AZRebalance"], grp
        st, grp = call(g, "POST", path.replace("suspend", "resume"))
        assert st == 200 and grp["suspended_processes"] == [], grp
    print(f"routes: hooks, protection, suspend/resume and {len(refused)} refusals answered as "
          "documented")


def main():
    g = Group("prot", min_size=1, max_size=4, policy=STILL_POLICY,
              health=dict(FAST_HEALTH, panic_threshold=0), load=50)
    g.use_token(TOKEN)
    try:
        p = g.start()
        wait_until(lambda: len(g.healthy()) == 1, 30, what="1 healthy instance")
        protection(g)
        standby(g)
        detach_attach(g)
        routes(g)
        g.stop(p)
        print("ok")
    finally:
        g.cleanup()


if __name__ == "__main__":
    sys.exit(main())
