"""Temp dirs and files of a test: a passing test leaves nothing behind, a failing one keeps them.

The rule every harness and test follows: once the processes that write into a temp dir are
gone, finish() removes it; when the test is failing (finish() runs while an exception is on
its way out, as in a `finally:` block, or failed=True is passed) or ASGD_KEEP_TMP=1 is set,
it stays and its path is printed on stderr, since its logs are what the developer needs.
A path made with mkdtemp()/mkstemp() here and never finished is finished at exit, kept if
the interpreter dies of an uncaught exception.
"""
import atexit
import os
import shutil
import signal
import sys
import tempfile
import time

# whether an uncaught exception is ending the interpreter (atexit runs after the hook)
_uncaught = [False]
_prev_excepthook = sys.excepthook


def _excepthook(*args):
    _uncaught[0] = True
    _prev_excepthook(*args)


sys.excepthook = _excepthook

# paths made here and not finished yet: finished at exit
_pending = []


def uncaught():
    """True once an uncaught exception has reached the interpreter (it is exiting because of it)."""
    return _uncaught[0]


def keep_tmp():
    """ASGD_KEEP_TMP=1: every test dir stays (for looking at a passing run's logs)."""
    return os.environ.get("ASGD_KEEP_TMP", "") not in ("", "0")


def mkdtemp(prefix):
    """A new temp dir (under $TMPDIR), finished at exit if the test does not finish it."""
    path = tempfile.mkdtemp(prefix=prefix)
    _pending.append(path)
    return path


def mkstemp(prefix):
    """A new temp file: (open fd, path), finished at exit if the test does not finish it."""
    fd, path = tempfile.mkstemp(prefix=prefix)
    _pending.append(path)
    return fd, path


def users(path):
    """Pids of the processes whose command line names path or something under it (chromium's
    --user-data-dir=..., etcd's --data-dir ...): they were started for this test's dir."""
    mark = path.rstrip("/").encode()
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmd = f.read()
            with open(f"/proc/{entry}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        # the path itself or something under it, not a longer name that starts the same
        if state not in ("Z", "X") and (mark + b"/" in cmd or mark + b"\0" in cmd):
            pids.append(int(entry))
    return pids


def stop_users(path, timeout=10):
    """Waits up to timeout seconds for the processes that name path to exit by themselves (a
    browser closing, say), then kills what is left and waits for it to be gone."""
    deadline = time.monotonic() + timeout
    while users(path) and time.monotonic() < deadline:
        time.sleep(0.05)
    for pid in users(path):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 10
    while users(path) and time.monotonic() < deadline:
        time.sleep(0.05)


def finish(path, failed=None):
    """The test is done with path (a dir or a file; its writers must be stopped already).
    failed: whether the test is failing (None: an exception is on its way out). A failing test's
    path stays, and so does every path under ASGD_KEEP_TMP=1; either way its path is printed.
    Returns True if it was removed. Calling it again is harmless."""
    if failed is None:
        failed = sys.exc_info()[0] is not None
    if path in _pending:
        _pending.remove(path)
    if not os.path.lexists(path):
        return False
    if failed or keep_tmp():
        why = "the test failed" if failed else "ASGD_KEEP_TMP is set"
        print(f"kept {path} ({why})", file=sys.stderr)
        return False
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    else:
        os.unlink(path)
    return not os.path.lexists(path)


def _at_exit():
    for path in list(_pending):
        finish(path, failed=_uncaught[0])


atexit.register(_at_exit)
