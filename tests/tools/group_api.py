"""HTTP helpers for integration tests that drive one asgd Group (asgd_harness) through its API
with a bearer token (Group.use_token): every answer, errors included, is checked against the
OpenAPI document (openapi_check), and asgctl is run against the same group.
"""
import json
import os
import subprocess
import urllib.error
import urllib.request

import openapi_check
from asgd_harness import BIN

# [health] of a group whose instances become healthy within a second and unhealthy after 1.5 s
FAST_HEALTH = {"interval": "500ms", "timeout": "300ms", "healthy_threshold": 2,
               "unhealthy_threshold": 3, "grace_period": "3s"}
# a policy that never acts (load stays between 1 % and 99 %): sizes change only through the API
STILL_POLICY = {"type": "threshold", "evaluation_period": "3s", "cooldown": "3s",
                "scale_up_threshold": 99, "scale_down_threshold": 1}


def _send(g, method, url_path, body):
    """(status, text) of one request to g's API, checked against the document; an asgd that
    does not answer raises OSError (urllib.error.URLError)."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(f"http://127.0.0.1:{g.api_port}{url_path}", data=data,
                                 method=method)
    req.add_header("Authorization", "Bearer " + g.token)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            st, ctype, text = r.status, r.headers.get("Content-Type"), r.read().decode()
    except urllib.error.HTTPError as e:
        st, ctype, text = e.code, e.headers.get("Content-Type"), e.read().decode()
    # raises on a mismatch with the document
    openapi_check.check(method, url_path, st, text, ctype, data)
    return st, text


def call(g, method, url_path, body=None):
    """(status, answer) of any route of g's asgd, errors included: the answer's JSON, or its
    text when it is not JSON (/metrics); (0, None) when asgd does not answer (restarting)."""
    try:
        st, text = _send(g, method, url_path, body)
    except OSError:
        return 0, None
    try:
        return st, json.loads(text)
    except ValueError:
        return st, text


def api(g, method, path, body=None):
    """The JSON answer of path under /api/v1/groups/<g.name>. An error status raises
    urllib.error.HTTPError, an asgd that does not answer OSError (HTTPError is one too)."""
    url_path = f"/api/v1/groups/{g.name}{path}"
    st, text = _send(g, method, url_path, body)
    if st >= 400:
        raise urllib.error.HTTPError(url_path, st, text, None, None)
    return json.loads(text)


def insts(g):
    """g's instances by id; {} while asgd does not answer."""
    try:
        return {i["id"]: i for i in api(g, "GET", "/instances")}
    except OSError:
        return {}


def asgctl(g, *args):
    """asgctl's output for args on g (with g's token); a non-zero exit fails the test."""
    r = subprocess.run([os.path.join(BIN, "asgctl"), "--url", f"http://127.0.0.1:{g.api_port}",
                        "--token-file", g.token_file, "-g", g.name] + list(args),
                       capture_output=True, text=True, timeout=20)
    assert r.returncode == 0, (args, r.stdout, r.stderr)
    return r.stdout
