"""The dashboard in headless Chromium (Debian's /usr/bin/chromium) driven by playwright-core.

asgd runs a real group (local provider, min 1, max 4); tests/browser/dashboard.mjs loads the
dashboard, finds the instances in the table, is refused without the token, changes min to 2
and a policy parameter through the form (checked through the API), sees the API's validation
message for min > max, watches the second instance appear without a reload, and saves a
screenshot to $ASGD_BUILD_DIR/dashboard.png. playwright-core is installed into
tests/browser/node_modules from the committed package-lock.json by this test.

Many groups and the cluster view: until asgd's node runs several groups (src/asgd/main.c runs
one today), a stand-in API on loopback serves the real dashboard files and answers with the real
asgd's JSON (its group and instances, copied under two names) plus a two-node /api/v1/cluster;
the browser then checks the group picker, #group=NAME in the URL, that every panel follows the
picked group, the "not live" mark and the cluster panel."""
import copy
import json
import os
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
import sys
import urllib.request

import openapi_check
from asgd_harness import Group, wait_until
import testtmp

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


def fetch(port, path):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
        text = r.read().decode()
        # every answer is checked against the OpenAPI document (raises on a mismatch)
        openapi_check.check("GET", path, r.status, text, r.headers.get("Content-Type"))
        return json.loads(text)


ASSETS = {"/": ("index.html", "text/html; charset=utf-8"),
          "/index.html": ("index.html", "text/html; charset=utf-8"),
          "/app.js": ("app.js", "text/javascript; charset=utf-8"),
          "/style.css": ("style.css", "text/css; charset=utf-8")}


def stand_in(group, instances):
    """A two-group, two-node API built from the real asgd's answers. Returns (server, paths)."""
    web = copy.deepcopy(group)
    web.update(name="web", owner_node="node-a", live=True)
    api = copy.deepcopy(group)
    api.update(name="api", owner_node="node-b", live=False, unhealthy=None, average_load=None,
               owner_error="http://127.0.0.1:1: connection refused")
    inst = {"web": [dict(i, id="web-" + str(n)) for n, i in enumerate(instances)],
            "api": [dict(instances[0], id="api-0", live=False, health=None, load=None)]}
    answers = {
        "/api/v1/groups": [web, api],
        "/api/v1/groups/web": web, "/api/v1/groups/api": api,
        "/api/v1/groups/web/instances": inst["web"], "/api/v1/groups/api/instances": inst["api"],
        "/api/v1/cluster": {"mode": "cluster", "self": "node-a",
                            "store": {"type": "etcd", "ok": True, "detail": ""},
                            "nodes": [{"name": "node-a", "api": "http://127.0.0.1:1", "alive": True,
                                       "self": True, "groups": ["web"],
                                       "lease": {"ok": True, "ttl_ms": 5000,
                                                 "last_renewal_ms_ago": 1200}},
                                      {"name": "node-b", "api": "http://127.0.0.2:1",
                                       "alive": False, "groups": ["api"],
                                       "lease": {"ok": False, "ttl_ms": 5000,
                                                 "last_renewal_ms_ago": 9000,
                                                 "detail": "not renewed"}}]},
    }
    paths = []

    class H(BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_GET(self):
            path = self.path.split("?")[0]
            paths.append(path)
            if path in ASSETS:
                fn, ctype = ASSETS[path]
                with open(os.path.join(SRC, "src", "http", "assets", fn), "rb") as f:
                    body = f.read()
            elif path in answers:
                body, ctype = json.dumps(answers[path]).encode(), "application/json"
            elif path.endswith("/activities"):
                body, ctype = b"[]", "application/json"
            elif path.endswith("/metrics/history"):
                body, ctype = b'{"group": [], "instances": {}}', "application/json"
            else:
                self.send_response(404)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b'{"error": "not found", "detail": "stand-in"}')
                return
            self.send_response(200)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv, paths


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
    profile = testtmp.mkdtemp("asgd-chromium-")
    try:
        g.start()
        wait_until(lambda: up(g.api_port), 20, what="asgd ready")
        wait_until(lambda: len(g.healthy()) == 1, 20, what="1 healthy instance")
        stub, paths = stand_in(fetch(g.api_port, "/api/v1/group"),
                               fetch(g.api_port, "/api/v1/instances"))
        env = dict(os.environ, ASGD_URL=f"http://127.0.0.1:{g.api_port}", ASGD_TOKEN=token,
                   ASGD_GROUP=g.name, ASGD_SCREENSHOT=shot, ASGD_PROFILE=profile,
                   ASGD_STUB_URL=f"http://127.0.0.1:{stub.server_address[1]}")
        r = subprocess.run(["node", os.path.join(BROWSER_DIR, "dashboard.mjs")], env=env,
                           capture_output=True, text=True, timeout=150)
        print(r.stdout)
        print(r.stderr, file=sys.stderr)
        stub.shutdown()
        assert r.returncode == 0, "dashboard checks failed"
        # after the switch to "web" the panels asked for web's resources
        assert "/api/v1/groups/web/instances" in paths and "/api/v1/groups/api/instances" in paths
        assert not any(p in paths for p in ("/api/v1/group", "/api/v1/instances")), \
            "the dashboard still used a single-group route"
        with open(shot, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n", "screenshot is not a PNG"
        print("screenshot:", shot, os.path.getsize(shot), "bytes")
        print("OK")
    except Exception:
        print(g.log_text()[-3000:], file=sys.stderr)
        raise
    finally:
        g.cleanup()
        testtmp.stop_users(profile)  # chromium's helpers may outlive node for a moment
        testtmp.finish(profile)


if __name__ == "__main__":
    main()
