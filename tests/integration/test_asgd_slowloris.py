"""HTTP under abuse (issue 11 item 4) against a real asgd.

1. 500 slowloris connections from 10 client addresses (250 idle after connecting, 250
   trickling one header byte every second, reconnecting when closed) for SLOW_S seconds:
   /healthz, the API and the dashboard keep answering a normal client within 1 s every time.
   Trickling connections are closed by the header deadline (not kept alive forever).
2. One client address cannot hold more than the per-address limit (64) of connections.
3. A chunked PATCH body over the cap (64 KiB) is refused before the client has sent it all:
   the server answers 413 or closes while the client is still sending 32 MiB.
Bounded in time: about 40 s.
"""
import errno
import os
import socket
import sys
import threading
import time

from asgd_harness import Group, wait_until

TOKEN = "slow-token-" + str(os.getpid())
SLOW_S = 14
N_IDLE, N_TRICKLE = 250, 250
SOURCES = [f"127.77.{os.getpid() % 200}.{i}" for i in range(1, 11)]


def connect(port, src):
    s = socket.socket()
    s.bind((src, 0))
    s.settimeout(2)
    s.connect(("127.0.0.1", port))
    s.setblocking(False)
    return s


def get(port, path, timeout=5.0):
    """A normal client: one GET on a fresh connection; returns (status, seconds)."""
    t0 = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    dt = time.monotonic() - t0
    line = data.split(b"\r\n", 1)[0]
    return (int(line.split()[1]) if line.startswith(b"HTTP/") else 0), dt


def is_closed(s):
    try:
        return s.recv(1024) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


def slowloris(port):
    stop = threading.Event()
    stats = {"reconnects": 0, "trickle_closed": 0, "open": 0}
    idle, trickle = [], []
    for i in range(N_IDLE):
        idle.append(connect(port, SOURCES[i % len(SOURCES)]))
    for i in range(N_TRICKLE):
        s = connect(port, SOURCES[i % len(SOURCES)])
        s.send(b"GET /api/v1/group HTTP/1.1\r\nHost: x\r\n")
        trickle.append(s)
    stats["open"] = len(idle) + len(trickle)

    def run():
        while not stop.is_set():
            for group, kind in ((idle, "idle"), (trickle, "trickle")):
                for k, s in enumerate(group):
                    if stop.is_set():
                        return
                    closed = is_closed(s)
                    if not closed and kind == "trickle":
                        try:
                            s.send(b"X")  # part of a header name, never finished
                        except OSError:
                            closed = True
                    if closed:
                        s.close()
                        if kind == "trickle":
                            stats["trickle_closed"] += 1
                        stats["reconnects"] += 1
                        try:
                            n = connect(port, SOURCES[k % len(SOURCES)])
                            if kind == "trickle":
                                n.send(b"GET / HTTP/1.1\r\nHost: x\r\n")
                            group[k] = n
                        except OSError:
                            pass
            stop.wait(1.0)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return stop, t, stats, idle, trickle


def check_per_ip(port):
    src = f"127.78.{os.getpid() % 200}.1"
    socks = [connect(port, src) for _ in range(100)]
    time.sleep(1.0)
    closed = sum(1 for s in socks if is_closed(s))
    for s in socks:
        s.close()
    assert closed >= 100 - 64, f"only {closed} of 100 connections from one address were refused"
    print(f"per-address limit: {closed} of 100 connections from {src} refused (limit 64)")


def check_chunked_413(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(b"PATCH /api/v1/group HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"Authorization: Bearer " + TOKEN.encode() + b"\r\nTransfer-Encoding: chunked\r\n\r\n")
    chunk = b"%x\r\n" % 65536 + b" " * 65536 + b"\r\n"
    total, limit = 0, 32 << 20
    answer, stopped = b"", None
    s.setblocking(False)
    t0 = time.monotonic()
    while total < limit and time.monotonic() - t0 < 20:
        try:
            got = s.recv(65536)
            if got == b"":
                stopped = "closed"
                break
            answer += got
            stopped = "answered"
            break
        except BlockingIOError:
            pass
        except OSError as e:
            stopped = f"error {errno.errorcode.get(e.errno, e.errno)}"
            break
        try:
            sent = s.send(chunk[total % len(chunk):])  # resume a partly sent chunk
            total += sent
        except BlockingIOError:
            time.sleep(0.01)
        except OSError as e:
            stopped = f"send error {errno.errorcode.get(e.errno, e.errno)}"
            break
    s.close()
    assert stopped is not None and total < limit, f"sent {total} bytes without an answer"
    if answer:
        assert b" 413 " in answer.split(b"\r\n", 1)[0], answer[:200]
    print(f"chunked body over the cap: {stopped} after {total / 1048576:.2f} MiB of 32 MiB sent"
          + (" (413)" if answer else ""))


def main():
    g = Group("sl", min_size=1, max_size=2, load=40)
    g.use_token(TOKEN)
    attack = None
    try:
        p = g.start()
        wait_until(lambda: len(g.healthy()) == 1, 30, what="1 healthy")
        port = g.api_port

        check_chunked_413(port)
        check_per_ip(port)

        attack = slowloris(port)
        stop, thread, stats, idle, trickle = attack
        print(f"slowloris: {stats['open']} connections open from {len(SOURCES)} addresses")
        worst, n = 0.0, 0
        end = time.monotonic() + SLOW_S
        while time.monotonic() < end:
            for path in ("/healthz", "/api/v1/group", "/", "/api/v1/instances"):
                st, dt = get(port, path)
                assert st == 200, f"GET {path} -> {st} during the attack"
                assert dt < 1.0, f"GET {path} took {dt:.2f}s during the attack"
                worst = max(worst, dt)
                n += 1
            time.sleep(0.3)
        stop.set()
        thread.join(10)
        print(f"normal client: {n} requests, all 200, slowest {worst * 1000:.0f} ms; "
              f"trickling connections closed by the server: {stats['trickle_closed']}, "
              f"reconnects {stats['reconnects']}")
        assert stats["trickle_closed"] >= N_TRICKLE // 2, \
            f"only {stats['trickle_closed']} trickling connections were closed in {SLOW_S}s"
        for s in idle + trickle:
            s.close()
        g.stop(p)
        print("ok")
    finally:
        if attack:
            attack[0].set()
        g.cleanup()


if __name__ == "__main__":
    sys.exit(main())
