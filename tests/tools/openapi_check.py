"""Checks real HTTP answers of asgd against its OpenAPI document (src/http/assets/openapi.json).

The integration tests' HTTP helpers call check() on every answer they get, so every response of
those tests is validated against the schema of its operation and status code:
- an /api/ path with a method the document does not have, or a status the operation does not
  list (and no "default"), fails;
- a JSON body must validate against the response's schema (JSON Schema 2020-12, which OpenAPI
  3.1 uses: Debian's python3-jsonschema, run with /usr/bin/python3); arrays are checked on
  their first 50 items (see _sample());
- a request body that was accepted (2xx) must validate against the operation's request schema;
- an error of a path the document does not know (404 of an unknown route, 405) must still be
  the {"error", "detail"} object every error is.
Paths outside /api/ that answer 2xx are the dashboard's files: not checked.

summary() says how many answers were checked (printed at exit by the tests that use it).
"""
import atexit
import json
import os
import re
import sys

SRC = os.environ.get("ASGD_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
DOC_PATH = os.path.join(SRC, "src", "http", "assets", "openapi.json")

try:
    import jsonschema
except ImportError:  # pragma: no cover - the message is the point
    sys.exit("openapi_check: python3-jsonschema is needed to check responses against the OpenAPI "
             "document (scripts/install-deps installs it; run the tests with /usr/bin/python3)")

_doc = None
_ops = None
checked = {}


def doc():
    global _doc, _ops
    if _doc is None:
        with open(DOC_PATH) as f:
            _doc = json.load(f)
        _ops = []
        for tmpl, item in _doc["paths"].items():
            rx = "^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(tmpl)) + "$"
            _ops.append((re.compile(rx), tmpl, item))
    return _doc


def find(method, path):
    """(template, operation) of method+path (query ignored, HEAD as GET); (template, None) when
    the path exists for other methods; (None, None) when no path matches."""
    doc()
    path = path.split("?", 1)[0]
    m = "get" if method.upper() == "HEAD" else method.lower()
    for rx, tmpl, item in _ops:
        if rx.match(path):
            return tmpl, item.get(m)
    return None, None


def _resolve(obj):
    while isinstance(obj, dict) and "$ref" in obj:
        node = doc()
        for part in obj["$ref"].lstrip("#/").split("/"):
            node = node[part]
        obj = node
    return obj


_validators = {}
SAMPLE = 50


def _sample(value):
    """value with every array cut to its first SAMPLE items: the 1,000-group tests poll the
    cluster view every 100 ms, and a whole check of it costs 0.2 s on a busy machine."""
    if isinstance(value, list):
        return [_sample(v) for v in value[:SAMPLE]]
    if isinstance(value, dict):
        return {k: _sample(v) for k, v in value.items()}
    return value


def validate(schema, value, what):
    key = json.dumps(schema, sort_keys=True)
    v = _validators.get(key)
    if v is None:
        resolver = jsonschema.RefResolver(base_uri="", referrer=doc())
        v = _validators[key] = jsonschema.Draft202012Validator(schema, resolver=resolver)
    value = _sample(value)
    errors = sorted(v.iter_errors(value), key=lambda e: list(e.path))
    if errors:
        e = errors[0]
        where = "/".join(str(p) for p in e.path) or "(the body)"
        raise AssertionError(f"{what}: the body does not match the OpenAPI document at {where}: "
                             f"{e.message}\nbody: {json.dumps(value)[:600]}")


def check(method, path, status, body, content_type=None, request=None):
    """Validates one answer; body is the text (or bytes) received. request: the JSON body sent
    (text, bytes or an object; None: none), checked against the operation's request schema
    when the answer is 2xx (invalid requests the tests send on purpose are refused with 4xx).
    Raises AssertionError."""
    if status is None:
        return
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    what = f"{method} {path} -> {status}"
    tmpl, op = find(method, path)
    err_schema = {"$ref": "#/components/schemas/Error"}
    if op is None:
        if status >= 400:
            validate(err_schema, json.loads(body), what)
            checked["(error of an unknown route)"] = checked.get("(error of an unknown route)", 0) + 1
            return
        if not path.startswith("/api/"):
            return  # a dashboard file
        raise AssertionError(f"{what}: {method} {tmpl or path} is not in the OpenAPI document")
    responses = op["responses"]
    r = _resolve(responses.get(str(status)) or responses.get("default"))
    if r is None:
        raise AssertionError(f"{what}: status {status} is not documented for {method} {tmpl}")
    content = r.get("content")
    key = f"{method.upper()} {tmpl} {status}"
    checked[key] = checked.get(key, 0) + 1
    if request is not None and 200 <= status < 300:
        rb = _resolve(op.get("requestBody"))
        if rb is None:
            raise AssertionError(f"{what}: the document says {method} {tmpl} takes no body")
        if isinstance(request, (bytes, str)):
            request = json.loads(request) if request else None
        if request is not None:
            validate(rb["content"]["application/json"]["schema"], request, what + " (request)")
    if method.upper() == "HEAD" or not content:
        return
    if "application/json" in content:
        try:
            value = json.loads(body)
        except ValueError:
            raise AssertionError(f"{what}: not JSON: {body[:200]!r}")
        validate(content["application/json"]["schema"], value, what)
        return
    if content_type:
        want = [c.split(";")[0].strip() for c in content]
        got = content_type.split(";")[0].strip()
        if got not in want:
            raise AssertionError(f"{what}: content type {content_type}, documented {want}")


def summary():
    n = sum(checked.values())
    return f"openapi: {n} answers checked against the document ({len(checked)} operation/status pairs)"


def _at_exit():
    if checked:
        print(summary())


atexit.register(_at_exit)
