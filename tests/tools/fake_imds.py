#!/usr/bin/python3
"""A fake EC2 instance metadata service (IMDSv2) for credential tests.

Serves on 127.0.0.1 (ephemeral port unless --port):
  PUT /latest/api/token                               (needs X-aws-ec2-metadata-token-ttl-seconds)
  GET /latest/meta-data/iam/security-credentials/     -> role name
  GET /latest/meta-data/iam/security-credentials/ROLE -> JSON credentials
  GET /latest/meta-data/instance-id
Every GET needs a valid X-aws-ec2-metadata-token (else 401), like IMDSv2.
Each credentials fetch issues a new key pair ASIAFAKE<n> / fake-secret-<n> /
fake-token-<n> expiring --expiry-seconds from now, so a client that refreshes
can be told apart from one that caches.
  GET /_admin/stats  -> {"token_puts": n, "credential_gets": n}
--no-role makes the role listing return 404 (an instance without a profile).

Usage: fake_imds.py [--port-file F] [--role R] [--expiry-seconds S] [--no-role]
Prints "port N" on stdout once listening, and writes N to --port-file.
"""
import argparse
import datetime
import json
import secrets
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class State:
    def __init__(self, args):
        self.args = args
        self.lock = threading.Lock()
        self.tokens = set()
        self.token_puts = 0
        self.credential_gets = 0


def make_handler(state):
    class H(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *a):
            pass

        def reply(self, code, body, ctype="text/plain"):
            data = body.encode() if isinstance(body, str) else body
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_PUT(self):
            n = int(self.headers.get("Content-Length") or 0)
            if n:
                self.rfile.read(n)
            if self.path != "/latest/api/token":
                return self.reply(404, "not found")
            ttl = self.headers.get("X-aws-ec2-metadata-token-ttl-seconds")
            if not ttl or not ttl.isdigit() or not 1 <= int(ttl) <= 21600:
                return self.reply(400, "missing or bad ttl")
            tok = secrets.token_urlsafe(24)
            with state.lock:
                state.tokens.add(tok)
                state.token_puts += 1
            self.reply(200, tok)

        def do_GET(self):
            if self.path == "/_admin/stats":
                with state.lock:
                    body = json.dumps({"token_puts": state.token_puts,
                                       "credential_gets": state.credential_gets})
                return self.reply(200, body, "application/json")
            with state.lock:
                ok = self.headers.get("X-aws-ec2-metadata-token") in state.tokens
            if not ok:
                return self.reply(401, "unauthorized")
            base = "/latest/meta-data/iam/security-credentials/"
            role = state.args.role
            if self.path == "/latest/meta-data/instance-id":
                return self.reply(200, "i-0fake0000000000000")
            if self.path == base:
                if state.args.no_role:
                    return self.reply(404, "not found")
                return self.reply(200, role)
            if self.path == base + role and not state.args.no_role:
                with state.lock:
                    state.credential_gets += 1
                    n = state.credential_gets
                exp = (datetime.datetime.utcnow() +
                       datetime.timedelta(seconds=state.args.expiry_seconds))
                body = json.dumps({
                    "Code": "Success",
                    "LastUpdated": datetime.datetime.utcnow().strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "Type": "AWS-HMAC",
                    "AccessKeyId": "ASIAFAKE%d" % n,
                    "SecretAccessKey": "fake-secret-%d" % n,
                    "Token": "fake-token-%d" % n,
                    "Expiration": exp.strftime("%Y-%m-%dT%H:%M:%SZ"),
                })
                return self.reply(200, body, "application/json")
            return self.reply(404, "not found")

    return H


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file")
    ap.add_argument("--role", default="asgd-role")
    ap.add_argument("--expiry-seconds", type=int, default=6 * 3600)
    ap.add_argument("--no-role", action="store_true")
    args = ap.parse_args()
    srv = ThreadingHTTPServer(("127.0.0.1", args.port), make_handler(State(args)))
    srv.daemon_threads = True
    port = srv.server_address[1]
    if args.port_file:
        tmp = args.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d\n" % port)
        import os
        os.rename(tmp, args.port_file)
    print("port", port, flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
