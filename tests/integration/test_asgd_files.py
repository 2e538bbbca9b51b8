"""File modes and secrets (issue 11 item 8) against a real asgd and real monitorc agents.

- the state directory is 0700; the database, pid files, agent logs and generated tokens 0600;
- a configured token file readable by others is used with a warning naming the file;
- the bearer comparison covers the whole header value: "Bearer TOKEN\\0junk" and
  "Bearer TOKENjunk" are 401, the exact token is not;
- after one 64 MiB GetMetrics request (refused) a monitorc's RSS returns near idle;
- logs of terminated agents are pruned to [local] keep_logs.
"""
import os
import socket
import stat
import sys
import time
import urllib.request

from asgd_harness import Group, edit_file, wait_until

TOKEN = "files-token-" + str(os.getpid())


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def raw_patch(port, auth_value):
    """PATCH /api/v1/group with an Authorization value given as raw bytes; returns the status."""
    body = b'{"desired_capacity": 2}'
    req = (b"PATCH /api/v1/group HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
           b"Content-Type: application/json\r\nAuthorization: " + auth_value + b"\r\n" +
           b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(req)
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    line = data.split(b"\r\n", 1)[0]
    return int(line.split()[1]) if line.startswith(b"HTTP/") else 0


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


def check_monitorc_rss(g):
    import grpc  # Debian's python3-grpcio
    inst = g.healthy()[0]
    pid = g.pidfiles()[inst["id"]]
    target = inst["address"]
    ch = grpc.insecure_channel(target, options=[("grpc.max_send_message_length", 128 << 20)])
    call = ch.unary_unary("/MonitorC/GetMetrics")
    call(b"", timeout=5)
    time.sleep(0.5)
    idle = rss_kb(pid)
    try:
        # field 1, length-delimited, 64 MiB: far over monitorc's 4 KiB request cap
        call(b"\x0a\x80\x80\x80\x20" + b"a" * (64 << 20), timeout=30)
        raise AssertionError("a 64 MiB GetMetrics was accepted")
    except grpc.RpcError as e:
        assert e.code() in (grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.UNAVAILABLE,
                            grpc.StatusCode.CANCELLED), e.code()
        print(f"64 MiB GetMetrics -> {e.code()}")
    peak = rss_kb(pid)
    ch.close()
    # the agent gives the memory back within a few seconds
    after = wait_until(lambda: (lambda r: r if r <= idle + 8 * 1024 else None)(rss_kb(pid)), 15,
                       step=0.5, what=f"monitorc RSS back near idle ({idle} kB)")
    print(f"monitorc RSS: idle {idle} kB, right after the request {peak} kB, then {after} kB")


def main():
    g = Group("fm", min_size=2, max_size=4, load=40)
    g.use_token(TOKEN)
    exposed = g.token_file
    os.chmod(exposed, 0o644)  # readable by others: asgd must refuse it (below)
    edit_file(g.config, "[local]\n", "[local]\nkeep_logs = 2\n")
    try:
        p = g.start()
        wait_until(lambda: len(g.healthy()) == 2, 30, what="2 healthy")

        # 1. the configured token file is used, with a warning naming it
        log = g.log_text()
        assert exposed in log and "readable" in log, log[-3000:]

        # 2. modes
        assert mode(g.state) == 0o700, oct(mode(g.state))
        local = os.path.join(g.state, "local")
        assert mode(local) == 0o700, oct(mode(local))
        for name in ("asgd.db", "agent.token"):
            assert mode(os.path.join(g.state, name)) == 0o600, (name, oct(mode(os.path.join(g.state, name))))
        files = os.listdir(local)
        assert any(f.endswith(".pid") for f in files) and any(f.endswith(".log") for f in files), files
        for name in files:
            m = mode(os.path.join(local, name))
            assert m == 0o600, (name, oct(m))
        print(f"modes: state 0700, database/token/pid/log 0600 ({len(files)} files)")

        # 3. the bearer comparison covers the whole value
        port = g.api_port
        assert raw_patch(port, b"Bearer " + TOKEN.encode() + b"\0junk") == 401
        assert raw_patch(port, b"Bearer " + TOKEN.encode() + b"junk") == 401
        assert raw_patch(port, b"Bearer " + TOKEN.encode()[:-1]) == 401
        good = raw_patch(port, b"Bearer " + TOKEN.encode())
        assert good == 200, good
        print("bearer: NUL + junk, trailing junk, prefix -> 401; exact token -> 200")

        # 4. monitorc memory after abuse
        check_monitorc_rss(g)

        # 5. logs of terminated agents are pruned to keep_logs = 2
        for _ in range(4):
            inst = g.healthy()[0]
            req = urllib.request.Request(
                f"http://127.0.0.1:{port}/api/v1/instances/{inst['id']}/terminate",
                data=b"{}", method="POST",
                headers={"Authorization": "Bearer " + TOKEN, "Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=20) as r:
                assert r.status in (200, 202), r.status
            wait_until(lambda: inst["id"] not in g.pidfiles() and len(g.healthy()) == 2, 40,
                       what=f"{inst['id']} replaced")
        live = set(g.pidfiles())
        logs = [f[:-4] for f in os.listdir(local) if f.endswith(".log")]
        old = [i for i in logs if i not in live]
        assert len(old) <= 2, f"logs of gone instances kept: {old}"
        assert all(i in logs for i in live), (live, logs)
        print(f"logs: {len(live)} live + {len(old)} of gone instances kept (keep_logs 2, 4 terminated)")
        g.stop(p)
        print("ok")
    finally:
        g.cleanup()


if __name__ == "__main__":
    sys.exit(main())
