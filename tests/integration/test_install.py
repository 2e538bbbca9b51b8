#!/usr/bin/python3
"""make install's tree, the systemd units and the man pages.

1. `cmake --install` with a prefix, and with DESTDIR + prefix /usr (what `make install
   PREFIX=... DESTDIR=...` runs): every file where it belongs, the units naming the
   installed programs and config, the installed asgd validating the installed config;
2. `systemd-analyze verify` of the installed units: clean (programs and man pages found), and
   `systemd-analyze security --offline` rates their sandbox at most 3.0 ("OK");
3. every man page renders with `man -l` without a groff warning;
4. asgd.ini(5) documents exactly the keys the readers read: the [group]/[policy]/[health]
   keys come from the key table (`asgd help-keys`), the others are every
   cfg_get_*/cfg_find(..., "section", "key") of src/asgd/conf.c, src/group/group_conf.c and
   src/provider/ec2_settings.c, so a key added without its documentation (or documented and gone)
   fails here;
5. asgctl's bash completion completes commands and the API's policy/health keys.
"""
import os
import re
import shutil
import subprocess
import sys

import testtmp

SRC = os.environ.get("ASGD_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.environ.get("ASGD_BUILD_DIR", os.path.join(SRC, "build"))


def run(*args, env=None, check=True):
    r = subprocess.run(list(args), capture_output=True, text=True, env=env)
    if check and r.returncode != 0:
        raise AssertionError(f"{' '.join(args)} -> {r.returncode}\n{r.stdout}\n{r.stderr}")
    return r


def install(prefix, destdir=None):
    env = dict(os.environ)
    env.pop("ASGD_UNITDIR", None)
    if destdir:
        env["DESTDIR"] = destdir
    run("cmake", "--install", BUILD, "--prefix", prefix, env=env)


def source_keys():
    """(section, key) of every key the node and provider readers ask for."""
    keys = set()
    for rel in ("src/asgd/conf.c", "src/group/group_conf.c", "src/provider/ec2_settings.c"):
        text = open(os.path.join(SRC, rel)).read()
        for sec, key in re.findall(r'cfg_(?:get_\w+|find)\(\s*\w+,\s*"(\w+)",\s*"(\w+)"', text):
            keys.add((sec, key))
        for sec in re.findall(r'get_listen\(\s*\w+,\s*"(\w+)"', text):
            keys.add((sec, "listen"))
        if rel.endswith("ec2_settings.c"):
            for key in re.findall(r'load_list\(\s*\w+,\s*"(\w+)"', text):
                keys.add(("ec2", key))
    return keys


def table_keys(asgd):
    keys, sec = set(), None
    for line in run(asgd, "help-keys").stdout.splitlines():
        m = re.match(r"^\[(\w+)\]$", line)
        if m:
            sec = m.group(1)
        elif line.startswith("  ") and sec:
            keys.add((sec, line.split()[0]))
    return keys


def documented_keys(page):
    keys, sec, prev = set(), None, ""
    for line in open(page).read().splitlines():
        m = re.match(r"^\.SS \[(\w+)\]$", line)
        if m:
            sec = m.group(1)
        elif line.startswith(".SH"):
            sec = None if line.split()[1] not in ("NODE", "GROUP") else sec
        elif prev == ".TP" and line.startswith(".B ") and sec:
            keys.add((sec, line[3:].strip().replace("\\-", "-")))
        prev = line
    return keys


def main():
    tmp = testtmp.mkdtemp("asgd-install-")
    try:
        # --- a prefix of its own: the programs are really there, so the units can be verified
        px = os.path.join(tmp, "px")
        install(px)
        want = ["sbin/asgd", "sbin/monitorc", "bin/asgctl", "share/man/man8/asgd.8",
                "share/man/man8/monitorc.8", "share/man/man5/asgd.ini.5",
                "share/man/man1/asgctl.1", "lib/systemd/system/asgd.service",
                "lib/systemd/system/asgd@.service", "lib/systemd/system/monitorc.service",
                "share/bash-completion/completions/asgctl", "etc/asgd/asgd.ini",
                "etc/asgd/groups/example.ini", "etc/default/asgd", "etc/default/monitorc",
                "share/doc/asgd/examples/asgd.ini", "share/doc/asgd/operations.md",
                "share/doc/asgd/contrib/grafana/asgd-dashboard.json",
                "share/doc/asgd/contrib/prometheus/asgd-alerts.yml"]
        for rel in want:
            assert os.path.isfile(os.path.join(px, rel)), f"{rel} not installed under {px}"
        assert os.access(os.path.join(px, "sbin/asgd"), os.X_OK)
        unit = open(os.path.join(px, "lib/systemd/system/asgd.service")).read()
        assert f"ExecStart={px}/sbin/asgd run -c {px}/etc/asgd/asgd.ini" in unit, unit
        for d in ("Type=notify", "WatchdogSec=", "LimitNOFILE=", "StateDirectory=asgd",
                  "ConfigurationDirectory=asgd", "ProtectSystem=strict", "NoNewPrivileges=yes",
                  "PrivateTmp=yes", "KillMode=process", "ExecReload="):
            assert d in unit, f"asgd.service lacks {d}"
        tunit = open(os.path.join(px, "lib/systemd/system/asgd@.service")).read()
        assert f"-c {px}/etc/asgd/%i.ini" in tunit and "StateDirectory=asgd/%i" in tunit
        r = run(os.path.join(px, "sbin/asgd"), "check-config", "-c",
                os.path.join(px, "etc/asgd/asgd.ini"))
        assert 'group "example": min 0, max 2, desired 0' in r.stdout, r.stdout
        for ex in ("asgd.ini", "node.ini", "demo.ini"):
            run(os.path.join(px, "sbin/asgd"), "check-config", "-c",
                os.path.join(px, "share/doc/asgd/examples", ex))

        if shutil.which("systemd-analyze"):
            units = [os.path.join(px, "lib/systemd/system", u)
                     for u in ("asgd.service", "asgd@.service", "monitorc.service")]
            r = run("systemd-analyze", "verify", *units, check=False,
                    env=dict(os.environ, MANPATH=os.path.join(px, "share/man")))
            assert r.returncode == 0 and not r.stderr.strip(), \
                f"systemd-analyze verify:\n{r.stdout}{r.stderr}"
            print("systemd-analyze verify: clean (3 units)")
            for u in ("asgd.service", "monitorc.service"):
                r = run("systemd-analyze", "security", "--offline=yes",
                        os.path.join(px, "lib/systemd/system", u), check=False)
                m = re.search(r"Overall exposure level for \S+: ([0-9.]+)", r.stdout + r.stderr)
                assert m, r.stdout + r.stderr
                # 0 (locked down) .. 10 (exposed); the hardening must keep it "OK" or better
                assert float(m.group(1)) <= 3.0, f"{u}: exposure {m.group(1)}"
                print(f"systemd-analyze security {u}: {m.group(1)}")
        else:
            print("systemd-analyze missing: units not verified")

        # --- DESTDIR + /usr: the Debian layout (config in /etc, not /usr/etc) ----------------
        dd = os.path.join(tmp, "dd")
        install("/usr", dd)
        for rel in ("usr/sbin/asgd", "usr/bin/asgctl", "etc/asgd/asgd.ini",
                    "etc/default/monitorc", "usr/lib/systemd/system/asgd.service",
                    "usr/share/man/man5/asgd.ini.5"):
            assert os.path.isfile(os.path.join(dd, rel)), f"DESTDIR: {rel} missing"
        assert not os.path.exists(os.path.join(dd, "usr/etc")), "config under /usr/etc"
        assert "ExecStart=/usr/sbin/asgd run -c /etc/asgd/asgd.ini" in \
            open(os.path.join(dd, "usr/lib/systemd/system/asgd.service")).read()
        print("make install: prefix and DESTDIR layouts ok")

        # --- man pages --------------------------------------------------------------------
        man = os.path.join(px, "share/man")
        pages = [os.path.join(man, p) for p in ("man8/asgd.8", "man5/asgd.ini.5",
                                                "man1/asgctl.1", "man8/monitorc.8")]
        if shutil.which("man"):
            for page in pages:
                r = run("man", "--warnings", "-l", page,
                        env=dict(os.environ, MANWIDTH="100", LC_ALL="C.UTF-8"))
                assert not r.stderr.strip(), f"{page}: groff says:\n{r.stderr}"
                assert "NAME" in r.stdout and "SEE ALSO" in r.stdout, page
            print("man -l: 4 pages render without warnings")
        else:
            print("man missing: pages not rendered")
        ini5 = os.path.join(man, "man5/asgd.ini.5")
        doc = documented_keys(ini5)
        code = source_keys() | table_keys(os.path.join(px, "sbin/asgd"))
        assert len(code) > 60, f"only {len(code)} keys found in the sources: the regex broke"
        undocumented = sorted(code - doc)
        stale = sorted(doc - code)
        assert not undocumented, f"keys read but not in asgd.ini(5): {undocumented}"
        assert not stale, f"keys in asgd.ini(5) that no reader reads: {stale}"
        text = open(ini5).read()
        assert "@GROUP_KEYS@" not in text and "@VERSION@" not in text
        print(f"asgd.ini(5): all {len(code)} keys documented, none stale")

        # --- bash completion --------------------------------------------------------------
        comp = os.path.join(px, "share/bash-completion/completions/asgctl")

        def complete(*words):
            script = (f"source {comp}; COMP_WORDS=({' '.join(words)} ''); "
                      f"COMP_CWORD={len(words)}; _asgctl; echo \"${{COMPREPLY[*]}}\"")
            return run("bash", "-c", script).stdout.split()
        assert "instances" in complete("asgctl") and "create-group" in complete("asgctl")
        assert complete("asgctl", "set") == ["min", "max", "desired", "policy", "health", "group",
                                             "notify"]
        # every command asgctl has (its usage lists them) completes
        usage = run(os.path.join(px, "bin/asgctl"), "--help", check=False)
        cmds = set(re.findall(r"^  ([a-z][a-z-]+) ", usage.stdout + usage.stderr, re.M))
        assert cmds and cmds <= set(complete("asgctl")), cmds - set(complete("asgctl"))
        text = open(ini5).read().replace("\\-", "-")
        api = set(re.findall(r"API: (policy|health|notify)\.(\w+)", text))
        for sec in ("policy", "health", "notify"):
            got = {k.rstrip("=") for k in complete("asgctl", "set", sec)}
            assert got == {k for s, k in api if s == sec}, (sec, got, api)
        print("bash completion: every command, and every policy/health/notify key of the API")
    finally:
        testtmp.finish(tmp)  # kept when the test fails
    return 0


if __name__ == "__main__":
    sys.exit(main())
