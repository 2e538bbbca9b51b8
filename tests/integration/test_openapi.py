"""The OpenAPI document (issue 13 item 6): GET /api/v1/openapi.json against a real asgd.

- every route of src/http/routes.c is in the document, and every /api/ path of the document is
  a route (they cannot drift apart);
- every key of the group key table (src/group/settings.c, as `asgd help-keys --json` prints it)
  is in the Group and GroupPatch schemas, where the JSON form puts it, with a type that takes
  the table's kind of value and refuses another kind (and the settings sections list no key the
  table does not have);
- the served document is the source file src/http/assets/openapi.json (compiled in);
- every $ref resolves, and the document validates as OpenAPI 3.1 with an independent validator:
  npm's @seriousme/openapi-schema-validator, installed once into <build>/npm-openapi (no network:
  the other checks run, then the test is skipped with the reason);
- each documented GET, the reload routes and a few errors answer as documented (cluster_harness
  checks every answer against the document: openapi_check.py).
"""
import json
import os
import re
import shutil
import subprocess
import sys
import urllib.request

import openapi_check
from asgd_harness import wait_until
from cluster_harness import Estate, Node, healthy_in_service

SRC = openapi_check.SRC
BUILD = os.environ.get("ASGD_BUILD_DIR", os.path.join(SRC, "build"))
VALIDATOR = "@seriousme/openapi-schema-validator@2.11.0"
SKIP = 77


def route_table():
    """(METHOD, pattern with '*') of every route in routes.c."""
    with open(os.path.join(SRC, "src", "http", "routes.c")) as f:
        text = f.read()
    table = text[text.index("routes[] = {"):]
    table = table[:table.index("};")]
    routes = set(re.findall(r'\{"([A-Z]+)", "([^"]+)"', table))
    assert len(routes) >= 19, routes
    return routes


def documented(doc):
    out = set()
    for tmpl, item in doc["paths"].items():
        for m in item:
            if m in ("get", "put", "post", "patch", "delete"):
                out.add((m.upper(), re.sub(r"\{[^}]+\}", "*", tmpl)))
    return out


def check_refs(doc):
    """Every $ref of the document resolves inside it."""
    n = 0

    def walk(o):
        nonlocal n
        if isinstance(o, dict):
            if "$ref" in o:
                node = doc
                for part in o["$ref"].lstrip("#/").split("/"):
                    assert part in node, f"unresolved $ref {o['$ref']}"
                    node = node[part]
                n += 1
            for v in o.values():
                walk(v)
        elif isinstance(o, list):
            for v in o:
                walk(v)
    walk(doc)
    return n


# per kind of the key table: values the API writes or accepts, and values it refuses
GOOD = {"integer": [0, 3], "number": [0.5, 2], "boolean": [True, False], "duration": ["30s", "0"],
        "string": ["", "x"]}
BAD = {"integer": ["3", 0.5], "number": ["0.5", None], "boolean": ["true", 1],
       "duration": [True, "soon"], "string": [3, None], "enum": ["not-a-choice", 1],
       "list": [3, None]}


def key_table():
    asgd = os.path.join(os.environ.get("ASGD_BIN", os.path.join(BUILD, "bin")), "asgd")
    out = subprocess.run([asgd, "help-keys", "--json"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, f"asgd help-keys --json failed: {out.stderr}"
    keys = json.loads(out.stdout)
    assert len(keys) >= 40 and {k["section"] for k in keys} >= {"group", "policy", "health"}, keys
    return keys


def check_settings_keys(doc):
    """Every key of the table is in Group (the answer: every key, required, as the API writes
    it) and GroupPatch (as it is accepted: durations also as seconds, lists also as text; the
    name is read-only), with a compatible type. Returns how many (schema, key) pairs."""
    keys = key_table()
    schemas = doc["components"]["schemas"]
    n = 0
    for top, patch in (("Group", False), ("GroupPatch", True)):
        seen = {}
        for k in keys:
            sec, js = k["section"], k["json"]
            if patch and sec == "group" and js == "name":
                continue
            obj = openapi_check._resolve(schemas[top])
            where = top
            if sec != "group":
                assert sec in obj["properties"], f"{top} has no \"{sec}\" object (src/group/settings.c)"
                obj = openapi_check._resolve(obj["properties"][sec])
                where += "." + sec
            where += "." + js
            seen.setdefault(sec, (obj, set()))[1].update({js, k["key"]} if patch else {js})
            prop = obj.get("properties", {}).get(js)
            assert prop is not None, (f"{where}: the key [{sec}] {k['key']} of src/group/settings.c "
                                      f"is missing from src/http/assets/openapi.json")
            if not patch:
                assert js in obj.get("required", []), f"{where}: the API always writes it: required"
            kind, choices = k["kind"], k.get("choices") or []
            good = list(GOOD.get(kind, []))
            if kind == "enum":
                good = list(choices)
            elif kind == "list":
                good = [list(choices), [choices[0]], []]
                if patch:
                    good.append(", ".join(c.lower() for c in choices))
            elif kind == "duration" and patch:
                good.append(30)
            assert good and kind in BAD, f"{where}: kind {kind!r} unknown to this test"
            for v in good:
                openapi_check.validate(prop, v, f"{where} ({kind}) must take {v!r}")
            bad = list(BAD[kind])
            if kind == "list" and not patch:
                bad.append(["not-a-choice"])
            for v in bad:
                try:
                    openapi_check.validate(prop, v, where)
                except AssertionError:
                    continue
                raise AssertionError(f"{where} ({kind}) takes {v!r}, which the API refuses")
            n += 1
        # no stale key: a settings section of the document lists only keys of the table
        for sec, (obj, names) in seen.items():
            if sec == "group":
                continue
            stale = set(obj["properties"]) - names
            assert not stale, (f"{top}.{sec} lists keys src/group/settings.c does not have: "
                               f"{sorted(stale)}")
    return n


def npm_validate(path):
    """Validates the document with the npm validator; None when it cannot be installed."""
    if not shutil.which("node") or not shutil.which("npm"):
        return "node/npm are not installed"
    cache = os.path.join(BUILD, "npm-openapi")
    cli = os.path.join(cache, "node_modules", "@seriousme", "openapi-schema-validator", "bin",
                       "validate-api-cli.js")
    if not os.path.exists(cli):
        os.makedirs(cache, exist_ok=True)
        r = subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--silent", "--prefix",
                            cache, VALIDATOR], capture_output=True, text=True, timeout=180)
        if r.returncode != 0 or not os.path.exists(cli):
            return (f"npm install {VALIDATOR} failed (offline? a registry mirror?): "
                    f"{(r.stderr or r.stdout).strip()[-300:]}")
    r = subprocess.run(["node", cli, path], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and json.loads(r.stdout).get("valid") is True, \
        f"the OpenAPI document is invalid ({VALIDATOR}): {r.stdout} {r.stderr}"
    print(f"{VALIDATOR}: {path} is a valid OpenAPI {json.load(open(path))['openapi']} document")
    return None


def main():
    doc = openapi_check.doc()
    # 1. routes.c and the document list the same API
    routes, docs = route_table(), documented(doc)
    missing = routes - docs
    assert not missing, f"routes of src/http/routes.c missing from openapi.json: {sorted(missing)}"
    extra = {r for r in docs - routes if r[1].startswith("/api/")}
    assert not extra, f"openapi.json documents API routes routes.c does not have: {sorted(extra)}"
    print(f"{len(routes)} routes of routes.c, all in the document ({len(docs)} operations)")
    print(f"{check_refs(doc)} $refs resolve")
    # 2. the group settings of the document against the key table
    print(f"{check_settings_keys(doc)} settings keys of src/group/settings.c in Group and "
          "GroupPatch with compatible types")
    # the checker the integration tests use refuses what the document does not allow
    ok_reload = '{"requested": true, "generation": 1}'
    for method, path, st, body, req in [
            ("GET", "/healthz", 200, '{"status": "ok"}', None),
            ("GET", "/api/v1/groups", 200, '[{"name": "x"}]', None),
            ("GET", "/api/v1/nothing", 200, "{}", None),
            ("GET", "/healthz", 404, '{"error": "x"}', None),
            ("POST", "/api/v1/reload", 202, ok_reload, "[1]"),
            ("GET", "/healthz", 200, '{"status": "ok", "version": "1"}', {"a": 1})]:
        try:
            openapi_check.check(method, path, st, body, request=req)
        except AssertionError as e:
            print("  refused as it should:", str(e).splitlines()[0][:140])
            continue
        raise AssertionError(f"openapi_check accepted {method} {path} {st} {body} {req}")

    est = Estate("oas")
    name = est.add_group("web", min_size=1, max_size=2, load=40)
    node = Node(est, "solo")
    try:
        node.start()
        wait_until(node.up, 20, what="API up")
        # 2. the served document is the source file
        with urllib.request.urlopen(node.url + "/api/v1/openapi.json", timeout=10) as r:
            assert r.headers.get("Content-Type", "").startswith("application/json"), r.headers
            assert json.loads(r.read()) == doc, "the served document differs from the source file"
        wait_until(lambda: len(healthy_in_service(node, name)) == 1, 30, what="1 healthy")

        # 3. every documented GET answers as documented (node.api checks each answer)
        for path in ["/api/v1/groups", "/api/v1/groups?scope=local", f"/api/v1/groups/{name}",
                     f"/api/v1/groups/{name}/instances", f"/api/v1/groups/{name}/instances?limit=1",
                     f"/api/v1/groups/{name}/activities?limit=3",
                     f"/api/v1/groups/{name}/metrics/history?since=10m", "/api/v1/cluster",
                     "/api/v1/group", "/api/v1/instances", "/api/v1/activities",
                     "/api/v1/metrics/history", "/api/v1/openapi.json", "/healthz", "/readyz"]:
            st, _ = node.api("GET", path)
            assert st == 200, (path, st)
        for path in ["/metrics", "/"]:
            st, _ = node.api("GET", path)
            assert st == 200, (path, st)
        # reload: none yet, asked, its report
        st, j = node.api("GET", "/api/v1/reload")
        assert st == 404, (st, j)
        st, j = node.api("POST", "/api/v1/reload", {}, auth=True)
        assert st == 202, (st, j)
        gen = j["generation"]
        wait_until(lambda: (lambda r: r[0] == 200 and r[1]["generation"] >= gen)(
            node.api("GET", "/api/v1/reload")), 20, what="the reload's report")
        # errors are documented too
        for method, path, body, auth, want in [
                ("GET", "/api/v1/groups/nope", None, False, 404),
                ("GET", "/api/v1/groups/.bad", None, False, 400),
                ("PATCH", f"/api/v1/groups/{name}", {"min_size": 1}, False, 401),
                ("PATCH", f"/api/v1/groups/{name}", {"bogus": 1}, True, 400),
                ("DELETE", f"/api/v1/groups/{name}", None, True, 409),
                ("POST", f"/api/v1/groups/{name}/instances/i-none/terminate", {}, True, 404),
                ("GET", f"/api/v1/groups/{name}/activities?limit=0", None, False, 400),
                ("PUT", "/api/v1/groups", {}, True, 405),
                ("GET", "/api/v1/nothing-here", None, False, 404)]:
            st, j = node.api(method, path, body, auth=auth)
            assert st == want, (method, path, st, j, want)
        node.kill()
    finally:
        est.cleanup()

    # 4. an independent validator (last: it may need the network once)
    why = npm_validate(openapi_check.DOC_PATH)
    if why:
        print(f"SKIPPED the OpenAPI validator: {why}")
        return SKIP
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
