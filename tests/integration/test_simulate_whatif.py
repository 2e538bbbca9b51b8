"""What-if in the API and the dashboard (issue 10, item 5).

A real group runs (threshold policy; load 50 % then 95 %, so it scales); then
POST /api/v1/groups/NAME/simulate (and /api/v1/simulate) runs its current settings and a
proposal over its recorded history: the figures have simulation.md's keys, equal to
`asgd simulate --from-store` on the same rows, and nothing is applied; bad proposals, bad
"since" and a missing token are refused. Then the dashboard's "What if" button is driven in
headless Chromium (tests/browser/whatif.mjs): two rows, two chart panels, nothing applied."""
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request

import openapi_check
from asgd_harness import Group, wait_until
import testtmp

SRC = os.environ.get("ASGD_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.environ.get("ASGD_BUILD_DIR", "build")
BROWSER_DIR = os.path.join(SRC, "tests", "browser")


def post(port, path, body, token):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method="POST",
                                 data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    if token:
        req.add_header("Authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(req, timeout=20) as r:
            st, ctype, text = r.status, r.headers.get("Content-Type"), r.read().decode()
    except urllib.error.HTTPError as e:
        st, ctype, text = e.code, e.headers.get("Content-Type"), e.read().decode()
    # every answer is checked against the OpenAPI document (raises on a mismatch)
    openapi_check.check("POST", path, st, text, ctype, body)
    return st, json.loads(text or "{}")


def main():
    token = f"whatif-{os.getpid()}"
    g = Group("wif", min_size=2, max_size=5, load=50)
    tok = os.path.join(g.dir, "api.token")
    with open(tok, "w") as f:
        f.write(token + "\n")
    with open(g.config, "a") as f:
        f.write(f"token_file = {tok}\n")
    profile = None
    try:
        g.start()
        wait_until(lambda: len(g.healthy()) == 2, 20, what="2 healthy")
        time.sleep(6)
        g.set_load(95)
        wait_until(lambda: len(g.healthy()) >= 4, 40, what="growth")
        time.sleep(6)
        path = f"/api/v1/groups/{g.name}/simulate"
        code, w = post(g.api_port, path, {"policy": {"type": "predictive"}, "since": "1h"}, token)
        assert code == 200, w
        keys = {"seconds", "cost", "violation_s", "violation_pct", "unserved", "actions", "flaps",
                "oracle_cost", "cost_ratio"}
        assert set(w["current"]["result"]) == keys and set(w["proposed"]["result"]) == keys
        assert w["current"]["settings"]["policy"]["type"] == "threshold"
        assert w["proposed"]["settings"]["policy"]["type"] == "predictive"
        assert w["samples"] >= 3 and w["svg"].count("cost ratio") == 2
        assert len(w["series"]["t"]) == len(w["series"]["demand"]) == len(w["series"]["proposed"])
        print("current:", w["current"]["result"])
        print("proposed:", w["proposed"]["result"])
        # the single-group route answers too
        code, w1 = post(g.api_port, "/api/v1/simulate", {"max_size": 3}, token)
        assert code == 200 and w1["proposed"]["settings"]["max_size"] == 3, w1
        # nothing applied
        gpath = f"/api/v1/groups/{g.name}"
        with urllib.request.urlopen(f"http://127.0.0.1:{g.api_port}{gpath}") as r:
            text = r.read().decode()
            openapi_check.check("GET", gpath, r.status, text, r.headers.get("Content-Type"))
            assert json.loads(text)["policy"]["type"] == "threshold"
        # refused: bad proposal, bad since, no token
        code, e = post(g.api_port, path, {"policy": {"target": 500}}, token)
        assert code == 400 and "policy.target" in e["detail"], e
        code, e = post(g.api_port, path, {"since": "yesterday"}, token)
        assert code == 400 and "since" in e["detail"], e
        code, e = post(g.api_port, path, {"boot": -1}, token)
        assert code == 400 and "boot" in e["detail"], e
        code, e = post(g.api_port, path, {}, None)
        assert code == 401, (code, e)

        # the dashboard's button
        assert os.access("/usr/bin/chromium", os.X_OK), "Debian chromium is not installed"
        r = subprocess.run(["npm", "install", "--no-audit", "--no-fund"], cwd=BROWSER_DIR,
                           capture_output=True, text=True, timeout=240)
        assert r.returncode == 0, r.stderr[-2000:]
        shot = os.path.abspath(os.path.join(BUILD, "whatif.png"))
        profile = testtmp.mkdtemp("asgd-chromium-")
        env = dict(os.environ, ASGD_URL=f"http://127.0.0.1:{g.api_port}", ASGD_TOKEN=token,
                   ASGD_GROUP=g.name, ASGD_SCREENSHOT=shot, ASGD_PROFILE=profile)
        r = subprocess.run(["node", os.path.join(BROWSER_DIR, "whatif.mjs")], env=env,
                           capture_output=True, text=True, timeout=150)
        print(r.stdout)
        print(r.stderr, file=sys.stderr)
        assert r.returncode == 0, "what-if checks failed in Chromium"
        with open(shot, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"
        print("OK")
    except Exception:
        print(g.log_text()[-3000:], file=sys.stderr)
        raise
    finally:
        g.cleanup()
        if profile:
            testtmp.stop_users(profile)  # chromium's helpers may outlive node for a moment
            testtmp.finish(profile)


if __name__ == "__main__":
    sys.exit(main())
