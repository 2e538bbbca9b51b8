"""The dashboard in headless Chromium (Debian's /usr/bin/chromium) driven by playwright-core.

asgd runs a real group (local provider, min 1, max 4); tests/browser/dashboard.mjs loads the
dashboard, finds the instances in the table, is refused without the token, changes min to 2
and a policy parameter through the form (checked through the API), sees the API's validation
message for min > max, watches the second instance appear without a reload, and saves a
screenshot to $ASGD_BUILD_DIR/dashboard.png. playwright-core is installed into
tests/browser/node_modules from the committed package-lock.json by this test."""
import os
import subprocess
import sys
import tempfile
import urllib.request

from asgd_harness import Group, wait_until

SRC = os.environ.get("ASGD_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.environ.get("ASGD_BUILD_DIR", "build")
BROWSER_DIR = os.path.join(SRC, "tests", "browser")


def npm_install():
    r = subprocess.run(["npm", "install", "--no-audit", "--no-fund"], cwd=BROWSER_DIR,
                       capture_output=True, text=True, timeout=240)
    print(r.stdout[-2000:], r.stderr[-2000:])
    assert r.returncode == 0, "npm install of playwright-core failed"


def up(port):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


def main():
    assert os.access("/usr/bin/chromium", os.X_OK), "Debian chromium is not installed"
    npm_install()
    token = f"dash-token-{os.getpid()}"
    g = Group("dash", min_size=1, max_size=4, load=50)
    tok = os.path.join(g.dir, "api.token")
    with open(tok, "w") as f:
        f.write(token + "\n")
    with open(g.config, "a") as f:  # the harness's config ends in [api]
        f.write(f"token_file = {tok}\n")
    shot = os.path.abspath(os.path.join(BUILD, "dashboard.png"))
    if os.path.exists(shot):
        os.unlink(shot)
    profile = tempfile.mkdtemp(prefix="asgd-chromium-")
    try:
        g.start()
        wait_until(lambda: up(g.api_port), 20, what="asgd ready")
        wait_until(lambda: len(g.healthy()) == 1, 20, what="1 healthy instance")
        env = dict(os.environ, ASGD_URL=f"http://127.0.0.1:{g.api_port}", ASGD_TOKEN=token,
                   ASGD_GROUP=g.name, ASGD_SCREENSHOT=shot, ASGD_PROFILE=profile)
        r = subprocess.run(["node", os.path.join(BROWSER_DIR, "dashboard.mjs")], env=env,
                           capture_output=True, text=True, timeout=150)
        print(r.stdout)
        print(r.stderr, file=sys.stderr)
        assert r.returncode == 0, "dashboard checks failed"
        with open(shot, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n", "screenshot is not a PNG"
        print("screenshot:", shot, os.path.getsize(shot), "bytes")
        print("OK")
    except Exception:
        print(g.log_text()[-3000:], file=sys.stderr)
        raise
    finally:
        g.cleanup()
        subprocess.run(["rm", "-rf", profile])


if __name__ == "__main__":
    main()
