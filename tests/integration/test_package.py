#!/usr/bin/python3
"""The Debian packages asgd and monitorc: built, inspected, installed, used, purged.

1. scripts/build-deb builds both with dpkg-buildpackage (debian/, debhelper), packaging the
   programs of this build directory (debian/rules' ASGD_PREBUILT: seconds, not a rebuild);
2. dpkg-deb -c / -I: the files, the dependencies, the conffiles;
3. dpkg -i on this machine: dpkg -L, the system user asgd, /var/lib/asgd and /etc/asgd owned
   as the units expect, `asgd check-config` of the installed /etc/asgd/asgd.ini run as the
   user asgd, systemd-analyze verify of the installed units (programs and man pages found);
4. a conffile changed by the operator survives a reinstall of the package;
5. dpkg --purge: nothing of either package is left (files, /etc/asgd, /var/lib/asgd);
6. lintian, when installed: no error and no warning (informational tags are printed).

Needs root and dpkg-buildpackage/debhelper (scripts/install-deps installs them); exits 77
otherwise. The machine is left as it was: the system user is removed again when this test
created it (the package itself keeps it on purge, as Debian does).
"""
import os
import pwd
import grp
import shutil
import stat
import subprocess
import sys
import tempfile
import time

SRC = os.environ.get("ASGD_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.environ.get("ASGD_BUILD_DIR", os.path.join(SRC, "build"))
OURS = "asgd maintainers"


def run(*args, check=True, **kw):
    r = subprocess.run(list(args), capture_output=True, text=True, **kw)
    if check and r.returncode != 0:
        raise AssertionError(f"{' '.join(args)} -> {r.returncode}\n{r.stdout}\n{r.stderr}")
    return r


def dpkg(*args):
    """dpkg, waiting for its lock when apt or another dpkg holds it."""
    deadline = time.monotonic() + 120
    while True:
        r = run("dpkg", *args, check=False, env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
        if r.returncode == 0:
            return r
        if "lock" in r.stderr and time.monotonic() < deadline:
            time.sleep(2)
            continue
        raise AssertionError(f"dpkg {' '.join(args)} -> {r.returncode}\n{r.stdout}\n{r.stderr}")


def installed(pkg):
    r = run("dpkg-query", "-W", "-f=${Status}|${Maintainer}", pkg, check=False)
    if r.returncode != 0 or "installed" not in r.stdout.split("|")[0].split():
        return None
    return r.stdout.split("|", 1)[1]


def ours_on_disk():
    """Every path of this machine that belongs to asgd or monitorc by name."""
    found = set()
    for top in ("/etc", "/usr/sbin", "/usr/bin", "/usr/share/man", "/usr/share/doc",
                "/usr/share/bash-completion", "/lib/systemd/system", "/var/lib"):
        for root, dirs, files in os.walk(top):
            for n in dirs + files:
                if n.startswith(("asgd", "monitorc", "asgctl")) or n in ("asgd.service",):
                    found.add(os.path.join(root, n))
            if root.startswith("/var/lib/dpkg") or root.startswith("/etc/ssl"):
                dirs[:] = []
    # dpkg's own records are dpkg's business
    return {p for p in found if not p.startswith("/var/lib/dpkg/")}


def main():
    if os.geteuid() != 0:
        print("SKIP: installing a package needs root")
        return 77
    for tool in ("dpkg-buildpackage", "dh", "systemd-analyze"):
        if shutil.which(tool) is None:
            print(f"SKIP: {tool} missing (scripts/install-deps installs it)")
            return 77
    for pkg in ("asgd", "monitorc"):
        m = installed(pkg)
        if m is not None and OURS not in m:
            print(f"SKIP: a package named {pkg} by {m!r} is installed here")
            return 77
        if m is not None:  # left by an interrupted run of this test
            dpkg("--purge", pkg)
    user_before = True
    try:
        pwd.getpwnam("asgd")
    except KeyError:
        user_before = False
    before = ours_on_disk()

    out = tempfile.mkdtemp(prefix="asgd-deb-")
    t0 = time.monotonic()
    env = dict(os.environ, DEB_BUILD_OPTIONS="noautodbgsym")
    r = run(os.path.join(SRC, "scripts", "build-deb"), out, BUILD, env=env)
    debs = sorted(f for f in os.listdir(out) if f.endswith(".deb"))
    assert [d.split("_")[0] for d in debs] == ["asgd", "monitorc"], debs
    asgd_deb, mon_deb = (os.path.join(out, d) for d in debs)
    print(f"built {debs} in {time.monotonic() - t0:.1f} s")

    # --- the packages as files ---------------------------------------------------------------
    contents = run("dpkg-deb", "-c", asgd_deb).stdout
    for path in ("./usr/sbin/asgd", "./usr/bin/asgctl", "./usr/share/man/man8/asgd.8.gz",
                 "./usr/share/man/man5/asgd.ini.5.gz", "./usr/share/man/man1/asgctl.1.gz",
                 "./lib/systemd/system/asgd.service", "./lib/systemd/system/asgd@.service",
                 "./usr/share/bash-completion/completions/asgctl", "./etc/asgd/asgd.ini",
                 "./etc/asgd/groups/example.ini", "./usr/share/doc/asgd/examples/node.ini",
                 "./usr/share/doc/asgd/contrib/grafana/asgd-dashboard.json",
                 "./usr/share/doc/asgd/contrib/prometheus/asgd-alerts.yml",
                 "./usr/share/doc/asgd/operations.md"):
        assert f" {path}\n" in contents + "\n", f"{path} not in {asgd_deb}:\n{contents}"
    assert "monitorc" not in "".join(l for l in contents.splitlines() if "/sbin/" in l)
    mcontents = run("dpkg-deb", "-c", mon_deb).stdout
    for path in ("./usr/sbin/monitorc", "./usr/share/man/man8/monitorc.8.gz",
                 "./lib/systemd/system/monitorc.service", "./etc/default/monitorc"):
        assert f" {path}\n" in mcontents + "\n", f"{path} not in {mon_deb}"
    control = run("dpkg-deb", "-f", asgd_deb, "Depends").stdout
    assert "adduser" in control and "libgrpc" in control and "libsqlite3" in control, control
    conffiles = run("dpkg-deb", "--info", asgd_deb, "conffiles").stdout.split()
    assert set(conffiles) == {"/etc/asgd/asgd.ini", "/etc/asgd/groups/example.ini",
                              "/etc/default/asgd"}, conffiles

    try:
        # --- installed ---------------------------------------------------------------------------
        dpkg("-i", asgd_deb, mon_deb)
        listed = set(run("dpkg", "-L", "asgd").stdout.split())
        for path in ("/usr/sbin/asgd", "/usr/bin/asgctl", "/lib/systemd/system/asgd.service",
                     "/etc/asgd/asgd.ini", "/usr/share/man/man5/asgd.ini.5.gz"):
            assert path in listed, f"dpkg -L asgd lacks {path}"
        assert "/usr/sbin/monitorc" in run("dpkg", "-L", "monitorc").stdout.split()
        u = pwd.getpwnam("asgd")
        assert u.pw_uid < 1000 and u.pw_dir == "/var/lib/asgd" and u.pw_shell.endswith("nologin"), u
        st = os.stat("/var/lib/asgd")
        assert st.st_uid == u.pw_uid and stat.S_IMODE(st.st_mode) == 0o750, st
        st = os.stat("/etc/asgd")
        assert st.st_uid == 0 and st.st_gid == grp.getgrnam("asgd").gr_gid, st
        assert stat.S_IMODE(st.st_mode) == 0o750, oct(st.st_mode)

        r = run("runuser", "-u", "asgd", "--", "/usr/sbin/asgd", "check-config", "-c",
                "/etc/asgd/asgd.ini")
        assert "/etc/asgd/asgd.ini: ok" in r.stdout and 'group "example"' in r.stdout, r.stdout
        r = run("/usr/sbin/asgd", "check-config", "-c", "/usr/share/doc/asgd/examples/node.ini")
        assert "3 groups" in r.stdout, r.stdout
        assert run("/usr/bin/asgctl", "--version").stdout.startswith("asgctl ")
        assert run("/usr/sbin/monitorc", "--version").stdout.startswith("monitorc ")
        r = run("systemd-analyze", "verify", "/lib/systemd/system/asgd.service",
                "/lib/systemd/system/asgd@.service", "/lib/systemd/system/monitorc.service",
                check=False)
        assert r.returncode == 0 and not r.stderr.strip(), f"systemd-analyze verify:\n{r.stderr}"
        assert run("man", "-w", "asgd.ini").stdout.strip() == "/usr/share/man/man5/asgd.ini.5.gz"
        print("installed: dpkg -L ok, user asgd, check-config ok as asgd, units verify clean")

        # --- the operator's change to a conffile survives the package's reinstall ---------------
        with open("/etc/asgd/asgd.ini", "a") as f:
            f.write("; changed by the operator\n")
        dpkg("-i", asgd_deb)
        with open("/etc/asgd/asgd.ini") as f:
            assert f.read().endswith("; changed by the operator\n"), "conffile replaced on upgrade"
        print("conffile kept across a reinstall")
    finally:
        # --- purged --------------------------------------------------------------------------
        for pkg in ("asgd", "monitorc"):
            if installed(pkg) is not None or run("dpkg", "-s", pkg, check=False).returncode == 0:
                dpkg("--purge", pkg)
        if not user_before:
            subprocess.run(["deluser", "--system", "--quiet", "asgd"], capture_output=True)
            subprocess.run(["delgroup", "--system", "--quiet", "asgd"], capture_output=True)
    assert installed("asgd") is None and installed("monitorc") is None
    left = ours_on_disk() - before
    assert not left, f"left after purge: {sorted(left)}"
    assert not os.path.exists("/etc/asgd") and not os.path.exists("/var/lib/asgd")
    print("purged: nothing left")

    # --- lintian -------------------------------------------------------------------------------
    if shutil.which("lintian"):
        r = run("lintian", "--info", asgd_deb, mon_deb, check=False)
        tags = [l for l in r.stdout.splitlines() if l[:2] in ("E:", "W:", "I:", "X:", "P:")]
        print("lintian:", "clean" if not tags else "\n  " + "\n  ".join(tags))
        bad = [t for t in tags if t.startswith(("E:", "W:"))]
        assert not bad, "lintian errors or warnings:\n" + "\n".join(bad)
    else:
        print("lintian not installed: not run")
    shutil.rmtree(out, ignore_errors=True)
    print(f"ok in {time.monotonic() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
