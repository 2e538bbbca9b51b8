"""The two-process mode runs every group of the files, as `asgd run` does: `asgd monitor` polls
(and takes the registrations of) the fleet tables of all of them, `asgd controller` runs a
controller for each and the API serves them all.

Two groups, one in the node file and one in the groups folder (local provider, loopback):
- both reach their desired capacity with healthy instances, and the API lists both;
- `asgd status` shows both (human: a block each; --json: {"groups": [...]}), `-g NAME` one of
  them (--json: the one-group object, as on a node with one group), and an unknown -g is refused
  (exit 1, naming it);
- an instance of the second group killed with SIGKILL is seen unhealthy by the monitor process
  and replaced by the controller process; its [health] changed through the API reaches the
  monitor process;
- a reload of the controller process (SIGHUP) with a third group file added starts it on both
  sides (it gets a healthy instance), and with the second group's file removed stops managing
  it (gone from the API, no longer polled by the monitor process, its instance left running);
- a group created through the controller's API is polled by the monitor process (a healthy
  instance) and deleted with ?force=true.
"""
import json
import os
import random
import signal
import subprocess
import sys

from asgd_harness import BIN, Group, pid_alive, wait_until
from group_api import call

TOKEN = "two-groups-" + str(os.getpid())
HEALTH = {"interval": "500ms", "timeout": "300ms", "healthy_threshold": 2,
          "unhealthy_threshold": 3, "grace_period": "2s"}


def group_file(g, path, name, min_size, max_size):
    """A group file for the groups folder: its own loopback range, the node's load file."""
    base = f"127.{random.randrange(1, 250)}.{random.randrange(1, 250)}.2"
    lines = ["[group]", f"name = {name}", f"min_size = {min_size}", f"max_size = {max_size}", "",
             "[policy]", "type = threshold", "evaluation_period = 3s", "cooldown = 3s", "",
             "[health]"] + [f"{k} = {v}" for k, v in HEALTH.items()]
    lines += ["", "[provider]", "type = local", "", "[local]",
              f"agent_args = --load file:{g.load_file}", f"address_base = {base}", ""]
    with open(path, "w") as f:
        f.write("\n".join(lines))


def listed(g):
    st, j = call(g, "GET", "/api/v1/groups")
    if st != 200:
        return set()
    return {x["name"] for x in (j["groups"] if isinstance(j, dict) else j)}


def instances(g, name):
    st, j = call(g, "GET", f"/api/v1/groups/{name}/instances")
    return j if st == 200 and isinstance(j, list) else []


def healthy(g, name):
    return [i for i in instances(g, name)
            if i["health"] == "healthy" and i["lifecycle"] == "in-service"]


def asgd_status(g, *args):
    r = subprocess.run([os.path.join(BIN, "asgd"), "status", "-c", g.config, *args],
                       capture_output=True, text=True, timeout=20)
    return r.returncode, r.stdout, r.stderr


def check_status(g, second):
    """asgd status on a node with two groups in its files."""
    rc, out, err = asgd_status(g, "--json")
    assert rc == 0, (rc, out, err)
    j = json.loads(out)
    assert list(j) == ["groups"], j
    assert [x["group"] for x in j["groups"]] == [g.name, second], j
    assert [len(x["instances"]) for x in j["groups"]] == [1, 2], j

    rc, out, err = asgd_status(g)
    assert rc == 0, (rc, out, err)
    blocks = out.split("\n\ngroup        ")
    assert len(blocks) == 2, out
    assert blocks[0].startswith(f"group        {g.name}\n"), out
    assert blocks[1].startswith(f"{second}\n"), out
    for block, x in zip(blocks, j["groups"]):
        assert "monitor      alive" in block and "controller   alive" in block, block
        assert all(i["id"] in block for i in x["instances"]), (block, x)

    for args in (["-g", second, "--json"], [f"--group={second}", "--json"]):
        rc, out, err = asgd_status(g, *args)
        assert rc == 0, (args, rc, out, err)
        one = json.loads(out)
        assert one["group"] == second and len(one["instances"]) == 2, one
        assert one["controller_alive"] and one["monitor_alive"], one

    rc, out, err = asgd_status(g, "--group", g.name)
    assert rc == 0, (rc, out, err)
    assert out.startswith(f"group        {g.name}\n") and second not in out, out

    # a group file not started yet (no reload): reported on stderr, exit 1, the others printed
    never = os.path.join(os.path.dirname(g.config), "groups", "never.ini")
    group_file(g, never, g.name + "-never", 1, 2)
    try:
        rc, out, err = asgd_status(g)
        assert rc == 1 and f'group "{g.name}-never" has no state' in err, (rc, out, err)
        assert out.count("\ngroup        ") == 1 and not out.endswith("\n\n"), out
        rc, out, err = asgd_status(g, "--json")
        assert rc == 1 and len(json.loads(out)["groups"]) == 2, (rc, out, err)
    finally:
        os.unlink(never)

    rc, out, err = asgd_status(g, "-g", second, "--all", "--json")
    assert rc == 2 and "--all" in err, (rc, out, err)
    rc, out, err = asgd_status(g, "-g", "nosuch-group", "--json")
    assert rc == 1 and out == "", (rc, out, err)
    assert f'no group "nosuch-group" in {g.config}' in err and second in err, err
    print("asgd status: both groups, -g NAME one of them, unknown -g refused:", err.strip())


def main():
    g = Group("tp", min_size=1, max_size=3, load=50, health=HEALTH)
    gdir = os.path.join(g.dir, "groups")
    os.makedirs(gdir)
    with open(g.config, "a") as f:
        f.write(f"\n[groups]\ndir = {gdir}\n")
    second, third, api_group = g.name + "-b", g.name + "-c", g.name + "-api"
    group_file(g, os.path.join(gdir, "b.ini"), second, 2, 3)
    g.use_token(TOKEN)
    try:
        mon = g.start("monitor")
        ctl = g.start("controller")
        wait_until(lambda: {g.name, second} <= listed(g), 20, what="the API lists both groups")
        wait_until(lambda: len(healthy(g, g.name)) == 1, 40, what="node file group: 1 healthy")
        wait_until(lambda: len(healthy(g, second)) == 2, 40, what="folder group: 2 healthy")
        assert os.path.exists(f"/dev/shm/asgd-{second}"), "the second group's fleet table"
        print("two groups healthy in two-process mode:", sorted(listed(g)))
        check_status(g, second)

        # an instance of the second group dies: the monitor sees it, the controller replaces it
        before = {i["id"]: i for i in healthy(g, second)}
        victim = sorted(before)[0]
        pid = before[victim]["pid"]
        assert pid > 0 and pid_alive(pid), before[victim]
        os.kill(pid, signal.SIGKILL)
        wait_until(lambda: victim not in {i["id"] for i in healthy(g, second)}, 20,
                   what=f"{victim} no longer healthy")
        wait_until(lambda: len(healthy(g, second)) == 2 and
                   victim not in {i["id"] for i in healthy(g, second)}, 60,
                   what="the killed instance replaced")
        new = sorted(set(i["id"] for i in healthy(g, second)) - set(before))
        assert len(new) == 1, (before, new)
        print(f"killed {victim} replaced by {new[0]}")
        assert len(healthy(g, g.name)) == 1

        # [health] of the second group changed through the controller's API: the monitor
        # process polls it at the new rate (it reads the store)
        st, j = call(g, "PATCH", f"/api/v1/groups/{second}",
                     {"health": {"interval": "300ms", "timeout": "200ms"}})
        assert st == 200 and j["health"]["interval"] == "300ms", (st, j)
        wait_until(lambda: f'[monitor] group "{second}": health settings changed: polling every '
                   '300 ms' in g.log_text(), 10, what="the monitor process follows the PATCH")

        # reload: a third group file added runs on both sides
        group_file(g, os.path.join(gdir, "c.ini"), third, 1, 2)
        ctl.send_signal(signal.SIGHUP)
        wait_until(lambda: len(healthy(g, third)) == 1, 40, what="reloaded group: 1 healthy")
        print("group added by a reload: healthy")

        # reload: the second group's file removed: no longer managed nor polled
        left = [i["pid"] for i in instances(g, second)]
        os.unlink(os.path.join(gdir, "b.ini"))
        ctl.send_signal(signal.SIGHUP)
        wait_until(lambda: second not in listed(g), 20, what="the removed group gone from the API")
        wait_until(lambda: f'group "{second}" is gone from the store: no longer polled' in
                   g.log_text(), 10, what="the monitor process stopped polling it")
        assert all(pid_alive(p) for p in left), "a removed group's instances are left running"
        print("group removed by a reload: no longer managed, instances left running")

        # a group created through the controller's API is polled by the monitor process
        spec = {"group": {"name": api_group, "min_size": 1, "max_size": 2},
                "provider": {"type": "local"},
                "local": {"agent_args": f"--load file:{g.load_file}",
                          "address_base": f"127.{random.randrange(1, 250)}.251.2"},
                "health": HEALTH}
        st, j = call(g, "POST", "/api/v1/groups", spec)
        assert st == 201, (st, j)
        wait_until(lambda: len(healthy(g, api_group)) == 1, 40, what="API group: 1 healthy")
        st, j = call(g, "DELETE", f"/api/v1/groups/{api_group}?force=true")
        assert st in (200, 202), (st, j)
        wait_until(lambda: api_group not in listed(g), 20, what="API group deleted")
        print("group created through the API polled by the monitor process, then deleted")

        assert mon.poll() is None and ctl.poll() is None
        assert len(healthy(g, g.name)) == 1 and len(healthy(g, third)) == 1
        g.stop(ctl)
        g.stop(mon)
        assert ctl.returncode == 0 and mon.returncode == 0, (ctl.returncode, mon.returncode)
        print("ok")
    finally:
        g.cleanup()
        for name in (second, third, api_group):
            subprocess.run(["rm", "-f", f"/dev/shm/asgd-{name}"])


if __name__ == "__main__":
    sys.exit(main())
