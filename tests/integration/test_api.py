"""HTTP API v1 over real HTTP against a running asgd (local provider).

Every endpoint answers; mutations need the bearer token (401 without or with a wrong one);
invalid input is refused with a JSON message (bad JSON, min > max, unknown keys, oversized
body); PATCH desired_capacity really changes the number of running instances; terminate with
and without decrement_desired; /metrics passes `promtool check metrics`."""
import json
import os
import shutil
import subprocess
import sys
import urllib.error
import urllib.request

import openapi_check
from asgd_harness import Group, wait_until

TOKEN = "it-token-" + str(os.getpid())


class Api:
    def __init__(self, port):
        self.base = f"http://127.0.0.1:{port}"

    def call(self, method, path, body=None, token=None, raw=None):
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        req = urllib.request.Request(self.base + path, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        if token:
            req.add_header("Authorization", "Bearer " + token)
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                st, hdr, text = r.status, r.headers, r.read().decode()
        except urllib.error.HTTPError as e:
            st, hdr, text = e.code, e.headers, e.read().decode()
        # every answer is checked against the OpenAPI document (raises on a mismatch)
        openapi_check.check(method, path, st, text, hdr.get("Content-Type"), data)
        return st, hdr, text

    def json(self, method, path, body=None, token=None, raw=None):
        st, hdr, text = self.call(method, path, body, token, raw)
        try:
            return st, json.loads(text)
        except ValueError:
            raise AssertionError(f"{method} {path}: {st} answered non-JSON: {text[:200]!r}")


def expect_error(api, status, needle, method, path, body=None, token=None, raw=None):
    st, j = api.json(method, path, body, token, raw)
    assert st == status, f"{method} {path} {body!r}: {st} {j}, want {status}"
    assert isinstance(j.get("error"), str) and isinstance(j.get("detail"), str), j
    if needle:
        assert needle in j["detail"], f"{needle!r} not in {j['detail']!r}"
    print(f"  {method} {path} -> {st} {j['error']}: {j['detail']}")


def in_service(api):
    st, inst = api.json("GET", "/api/v1/instances")
    return [i for i in inst if i["lifecycle"] == "in-service" and i["health"] == "healthy"]


def main():
    g = Group("api", min_size=1, max_size=4, load=50)
    g.use_token(TOKEN)
    api = Api(g.api_port)
    try:
        g.start()
        wait_until(lambda: api.call("GET", "/readyz")[0] == 200 if _up(api) else False, 20,
                   what="readyz 200")
        wait_until(lambda: len(in_service(api)) == 1, 20, what="1 instance in service")

        # --- every read endpoint ---------------------------------------------------------
        st, grp = api.json("GET", "/api/v1/group")
        assert st == 200 and grp["name"] == g.name, grp
        for k in ("min_size", "max_size", "desired_capacity", "policy", "health", "in_service",
                  "pending", "unhealthy", "average_load", "revision"):
            assert k in grp, k
        assert grp["policy"]["type"] == "threshold" and grp["policy"]["evaluation_period"] == "3s"
        st, inst = api.json("GET", "/api/v1/instances")
        assert st == 200 and len(inst) == 1, inst
        for k in ("id", "address", "lifecycle", "health", "load", "launched_at"):
            assert k in inst[0], k
        st, acts = api.json("GET", "/api/v1/activities?limit=5")
        assert st == 200 and any(a["kind"] == "launch" for a in acts), acts
        assert all(k in acts[0] for k in ("at", "kind", "cause", "from", "to", "status"))
        st, hist = api.json("GET", "/api/v1/metrics/history?since=5m")
        assert st == 200 and isinstance(hist["group"], list) and isinstance(hist["instances"], dict)
        st, j = api.json("GET", "/healthz")
        assert st == 200 and j["status"] == "ok"
        st, hdr, html = api.call("GET", "/")
        assert st == 200 and "text/html" in hdr["Content-Type"] and "/app.js" in html
        st, hdr, js = api.call("GET", "/app.js")
        assert st == 200 and "javascript" in hdr["Content-Type"]

        st, hdr, metrics = api.call("GET", "/metrics")
        assert st == 200 and hdr["Content-Type"].startswith("text/plain; version=0.0.4")
        assert f'asgd_desired_capacity{{group="{g.name}"}} 1' in metrics
        assert "asgd_poll_duration_seconds_bucket" in metrics
        assert 'asgd_provider_calls_total{op="launch",result="ok"} 1' in metrics
        promtool = shutil.which("promtool") or "/usr/bin/promtool"
        r = subprocess.run([promtool, "check", "metrics"], input=metrics, capture_output=True,
                           text=True, timeout=30)
        print("promtool check metrics:", r.returncode, (r.stdout + r.stderr).strip())
        assert r.returncode == 0, r.stdout + r.stderr

        # --- auth --------------------------------------------------------------------------
        print("auth:")
        expect_error(api, 401, None, "PATCH", "/api/v1/group", {"max_size": 3})
        expect_error(api, 401, "token rejected", "PATCH", "/api/v1/group", {"max_size": 3},
                     token="wrong")
        expect_error(api, 401, None, "POST", f"/api/v1/instances/{inst[0]['id']}/terminate",
                     {"decrement_desired": False})
        assert api.json("GET", "/api/v1/group")[1]["max_size"] == 4

        # --- invalid input -------------------------------------------------------------------
        print("validation:")
        expect_error(api, 400, "line 1", "PATCH", "/api/v1/group", raw=b'{"min_size": ',
                     token=TOKEN)
        expect_error(api, 400, "min_size 3 > max_size 2", "PATCH", "/api/v1/group",
                     {"min_size": 3, "max_size": 2}, token=TOKEN)
        expect_error(api, 400, 'unknown key "colour"', "PATCH", "/api/v1/group",
                     {"colour": "blue"}, token=TOKEN)
        expect_error(api, 400, 'unknown key "policy.speed"', "PATCH", "/api/v1/group",
                     {"policy": {"speed": 3}}, token=TOKEN)
        expect_error(api, 400, "policy.down_threshold", "PATCH", "/api/v1/group",
                     {"policy": {"down_threshold": 90}}, token=TOKEN)
        expect_error(api, 400, "desired_capacity 9", "PATCH", "/api/v1/group",
                     {"desired_capacity": 9}, token=TOKEN)
        expect_error(api, 413, "larger than", "PATCH", "/api/v1/group",
                     raw=b'{"min_size": 1' + b" " * 200000 + b"}", token=TOKEN)
        expect_error(api, 404, None, "GET", "/api/v1/nothing")
        expect_error(api, 404, "i-nope", "POST", "/api/v1/instances/i-nope/terminate",
                     {"decrement_desired": True}, token=TOKEN)
        expect_error(api, 405, None, "DELETE", "/api/v1/group", token=TOKEN)
        expect_error(api, 400, "limit", "GET", "/api/v1/activities?limit=zero")
        assert api.json("GET", "/api/v1/group")[1]["revision"] == grp["revision"]

        # --- PATCH desired really changes the fleet ------------------------------------------
        st, j = api.json("PATCH", "/api/v1/group", {"desired_capacity": 3}, token=TOKEN)
        assert st == 200 and j["desired_capacity"] == 3, j
        wait_until(lambda: len(in_service(api)) == 3, 30, what="3 instances in service")
        st, acts = api.json("GET", "/api/v1/activities?limit=20")
        assert any(a["kind"] == "settings" and "desired_capacity 1 -> 3" in a["cause"]
                   for a in acts), acts
        print("desired 1 -> 3: three instances in service")

        # --- terminate with decrement: one fewer, desired 2 ----------------------------------
        victim = in_service(api)[0]["id"]
        st, j = api.json("POST", f"/api/v1/instances/{victim}/terminate",
                         {"decrement_desired": True}, token=TOKEN)
        assert st == 202, (st, j)
        wait_until(lambda: victim not in [i["id"] for i in api.json("GET", "/api/v1/instances")[1]],
                   20, what=f"{victim} gone")
        assert api.json("GET", "/api/v1/group")[1]["desired_capacity"] == 2
        wait_until(lambda: len(api.json("GET", "/api/v1/instances")[1]) == 2, 20,
                   what="2 instances")
        # --- terminate without decrement: replaced --------------------------------------------
        victim = in_service(api)[0]["id"]
        st, j = api.json("POST", f"/api/v1/instances/{victim}/terminate",
                         {"decrement_desired": False}, token=TOKEN)
        assert st == 202, (st, j)
        wait_until(lambda: len(in_service(api)) == 2 and
                   victim not in [i["id"] for i in in_service(api)], 30, what="replacement")
        assert api.json("GET", "/api/v1/group")[1]["desired_capacity"] == 2
        print("terminate: decrement and replacement OK")
        many_groups_routes(api, g.name)
        print("OK")
    except Exception:
        print(g.log_text()[-4000:], file=sys.stderr)
        raise
    finally:
        g.cleanup()


def many_groups_routes(api, name):
    """The /api/v1/groups routes on a node running one group: the same data as the old routes."""
    # the counts are the controller's, one tick behind the fleet table
    wait_until(lambda: api.json("GET", "/api/v1/groups")[1][0].get("in_service") == 2, 10,
               what="group counts settle")
    st, groups = api.json("GET", "/api/v1/groups")
    assert st == 200 and [x["name"] for x in groups] == [name], groups
    assert groups[0]["live"] is True and groups[0]["in_service"] == 2, groups
    st, one = api.json("GET", f"/api/v1/groups/{name}")
    st0, old = api.json("GET", "/api/v1/group")
    assert st == 200 and st0 == 200 and one["name"] == name == old["name"], (one, old)
    assert one["revision"] == old["revision"] and one["desired_capacity"] == old["desired_capacity"]
    st, inst = api.json("GET", f"/api/v1/groups/{name}/instances")
    assert st == 200 and sorted(i["id"] for i in inst) == \
        sorted(i["id"] for i in api.json("GET", "/api/v1/instances")[1])
    # paging: one per page, Link to the next, in id order
    st, hdr, text = api.call("GET", f"/api/v1/groups/{name}/instances?limit=1")
    page = json.loads(text)
    assert st == 200 and len(page) == 1 and 'rel="next"' in hdr.get("Link", ""), (hdr, page)
    st, hdr, text = api.call("GET", f"/api/v1/groups/{name}/instances?limit=1&after={page[0]['id']}")
    page2 = json.loads(text)
    assert st == 200 and len(page2) == 1 and page2[0]["id"] > page[0]["id"], (page, page2)
    st, acts = api.json("GET", f"/api/v1/groups/{name}/activities?limit=3")
    assert st == 200 and len(acts) == 3, acts
    st, hist = api.json("GET", f"/api/v1/groups/{name}/metrics/history?since=10m")
    assert st == 200 and "group" in hist, hist
    st, j = api.json("PATCH", f"/api/v1/groups/{name}", {"max_size": 4}, token=TOKEN)
    assert st == 200 and j["max_size"] == 4, (st, j)
    st, c = api.json("GET", "/api/v1/cluster")
    assert st == 200 and c["mode"] == "single" and c["nodes"][0]["groups"] == [name], c
    expect_error(api, 404, '"nope"', "GET", "/api/v1/groups/nope")
    expect_error(api, 404, None, "GET", "/api/v1/groups/nope/instances")
    expect_error(api, 400, "group name", "GET", "/api/v1/groups/..")
    expect_error(api, 400, "group name", "GET", "/api/v1/groups/a%20b/activities")
    expect_error(api, 400, "limit", "GET", f"/api/v1/groups/{name}/instances?limit=0")
    expect_error(api, 401, None, "DELETE", f"/api/v1/groups/{name}")
    expect_error(api, 401, None, "POST", "/api/v1/groups", {"group": {"name": "x"}})
    # creation validates every key as the config file does (the group is not created)
    expect_error(api, 400, "min_size", "POST", "/api/v1/groups",
                 {"group": {"name": "x", "min_size": 3, "max_size": 2}}, token=TOKEN)
    expect_error(api, 400, None, "POST", "/api/v1/groups",
                 {"group": {"name": "x"}, "provider": {"type": "cloud9"}}, token=TOKEN)
    expect_error(api, 404, None, "POST", f"/api/v1/groups/{name}/instances/i-none/terminate",
                 {}, token=TOKEN)
    st, hdr, text = api.call("GET", "/metrics")
    assert st == 200 and f'asgd_desired_capacity{{group="{name}"}}' in text
    print("many-groups routes OK")


def _up(api):
    try:
        return api.call("GET", "/healthz")[0] == 200
    except OSError:
        return False


if __name__ == "__main__":
    main()
