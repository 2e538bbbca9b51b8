"""The harness's Group leaves nothing behind when a test passes, and keeps what a developer needs
when it fails:

- cleanup() after a passing run: asgd and the group's monitorc agents are gone, and so is the
  temp dir (/tmp/asgd-it-*);
- cleanup() while an exception is on its way out (a failing test's `finally:`), or the end of a
  `with Group() as g:` block that raised: the processes are gone, the dir stays and its path is
  printed (the logs are in it);
- a group the test never cleaned up: cleaned up at exit (dir removed after a normal exit, kept
  after an uncaught exception);
- ASGD_KEEP_TMP=1: the dir stays even when the test passes.

The same rule holds for cluster_harness's Estate (/tmp/asgd-<prefix>-*: its asgd nodes stopped
first) and for a bare testtmp.mkdtemp() dir, which share testtmp's keep/remove logic.

Each case runs in its own python process, the way ctest runs a test.
"""
import os
import shutil
import subprocess
import sys
import textwrap

from asgd_harness import Group, pid_alive, wait_until

PRELUDE = textwrap.dedent("""\
    import sys
    from asgd_harness import Group, wait_until
    g = Group("hns", min_size=1, max_size=1, load=40)
    print("DIR", g.dir, g.name, flush=True)
    """)
START = 'g.start(); wait_until(lambda: len(g.healthy()) == 1, 30, what="1 healthy")\n'

CASES = {
    # name: (script after the prelude, extra env, want exit 0, want the dir kept)
    "finally, failing": (
        "try:\n    " + START.replace("\n", "\n    ") + "assert False, 'deliberate'\n"
        "finally:\n    g.cleanup()\n", {}, False, True),
    "with, failing": (
        "with g:\n    " + START.replace("\n", "\n    ") + "raise RuntimeError('deliberate')\n",
        {}, False, True),
    "with, passing": ("with g:\n    " + START, {}, True, False),
    "never cleaned up, passing": (START, {}, True, False),
    "never cleaned up, failing": (START + "raise SystemError('deliberate')\n", {}, False, True),
    "ASGD_KEEP_TMP=1, passing": (
        "try:\n    " + START.replace("\n", "\n    ") + "\nfinally:\n    g.cleanup()\n",
        {"ASGD_KEEP_TMP": "1"}, True, True),
}


# an Estate with one asgd node running (its log in the dir), and a testtmp dir with a file
EST_PRELUDE = textwrap.dedent("""\
    import os, sys
    import testtmp
    from asgd_harness import wait_until
    from cluster_harness import Estate, Node
    est = Estate("hnse")
    est.add_group("g", min_size=1, max_size=1)
    n = Node(est, "a").start()
    wait_until(n.up, 30, what="node a up")
    t = testtmp.mkdtemp("asgd-hnst-")
    open(os.path.join(t, "x"), "w").close()
    print("DIRS", est.dir, t, n.proc.pid, flush=True)
    """)
EST_CASES = {
    # name: (script after the prelude, extra env, want exit 0, want the dirs kept)
    "Estate, finally, passing": (
        "try:\n    pass\nfinally:\n    est.cleanup()\n    testtmp.finish(t)\n", {}, True, False),
    "Estate, finally, failing": (
        "try:\n    assert False, 'deliberate'\nfinally:\n    est.cleanup()\n    testtmp.finish(t)\n",
        {}, False, True),
    "Estate, never cleaned up, passing": ("", {}, True, False),
    "Estate, never cleaned up, failing": ("raise SystemError('deliberate')\n", {}, False, True),
    "Estate, ASGD_KEEP_TMP=1, passing": (
        "est.cleanup()\ntesttmp.finish(t)\n", {"ASGD_KEEP_TMP": "1"}, True, True),
}


def run_estate_case(label, body, env, want_ok, want_kept):
    r = subprocess.run([sys.executable, "-c", EST_PRELUDE + body], capture_output=True, text=True,
                       timeout=120, env=dict(os.environ, **env))
    lines = [l.split() for l in r.stdout.splitlines() if l.startswith("DIRS ")]
    assert lines, (label, r.stdout, r.stderr)
    est_dir, t, pid = lines[0][1], lines[0][2], int(lines[0][3])
    try:
        assert (r.returncode == 0) == want_ok, (label, r.returncode, r.stderr[-3000:])
        assert not pid_alive(pid), f"{label}: asgd {pid} outlived the test"
        for d in (est_dir, t):
            kept = os.path.isdir(d)
            assert kept == want_kept, f"{label}: {d} kept={kept}, want {want_kept}\n{r.stderr}"
            if want_kept:
                assert f"kept {d}" in r.stderr, (label, r.stderr[-3000:])
        if want_kept:
            assert "a-0.log" in os.listdir(est_dir), os.listdir(est_dir)  # the node's log
        print(f"ok {label}: exit {r.returncode}, dirs {'kept' if want_kept else 'removed'}")
    finally:
        shutil.rmtree(est_dir, ignore_errors=True)
        shutil.rmtree(t, ignore_errors=True)


def agents_of(name):
    """monitorc processes whose command line names the group (its instance ids)."""
    g = Group.__new__(Group)
    g.name = name
    return g.agent_pids()


def run_case(label, body, env, want_ok, want_kept):
    r = subprocess.run([sys.executable, "-c", PRELUDE + body], capture_output=True, text=True,
                       timeout=120, env=dict(os.environ, **env))
    lines = [l.split() for l in r.stdout.splitlines() if l.startswith("DIR ")]
    assert lines, (label, r.stdout, r.stderr)
    d, name = lines[0][1], lines[0][2]
    try:
        assert (r.returncode == 0) == want_ok, (label, r.returncode, r.stderr[-3000:])
        assert os.path.basename(d).startswith("asgd-it-"), d
        kept = os.path.isdir(d)
        assert kept == want_kept, f"{label}: dir {d} kept={kept}, want {want_kept}\n{r.stderr[-3000:]}"
        if want_kept:
            assert f"kept {d}" in r.stderr, (label, r.stderr[-3000:])
            # what a developer needs is there: asgd's log and the agents' files
            assert any(f.startswith("asgd-run-") for f in os.listdir(d)), os.listdir(d)
        wait_until(lambda: not agents_of(name), 10, what=f"{label}: the agents gone")
        print(f"ok {label}: exit {r.returncode}, dir {'kept' if kept else 'removed'}")
    finally:
        for pid in agents_of(name):
            os.kill(pid, 9)
        shutil.rmtree(d, ignore_errors=True)


def main():
    for label, (body, env, want_ok, want_kept) in CASES.items():
        run_case(label, body, env, want_ok, want_kept)
    for label, (body, env, want_ok, want_kept) in EST_CASES.items():
        run_estate_case(label, body, env, want_ok, want_kept)
    print("ok")


if __name__ == "__main__":
    main()
