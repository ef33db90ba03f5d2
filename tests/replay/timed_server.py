"""A loopback HTTP/1.1 server whose latency is a known function of time, for the report's
tests; its own process (gevent, 127.0.0.1), printing ``PORT <n>`` once listening.

    python timed_server.py fifo --capacity C --base-ms B
        One FIFO queue served at C requests/s: a request that arrives at a starts service
        at s = max(a, when the previous one finished), finishes at f = s + 1/C, and is
        answered at f + B ms (the base latency does not occupy the server). Capacity is
        kept in time arithmetic, not CPU, so it is exact while the process keeps up.

    python timed_server.py drift --base-ms B --ms-per-s K
        Answers a request that arrives t seconds after the first one after B + K·t ms.
"""

from __future__ import annotations

import argparse
import signal
import socket
import sys
import time

import gevent
from gevent.server import StreamServer

_RESPONSE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 21\r\n\r\n"
    b'{"status":"accepted"}'
)


def _requests(sock: socket.socket):  # type: ignore[no-untyped-def]
    """Yield once per complete request read from ``sock`` (head and body)."""
    buf = b""
    while True:
        end = buf.find(b"\r\n\r\n")
        while end < 0:
            data = sock.recv(65536)
            if not data:
                return
            buf += data
            end = buf.find(b"\r\n\r\n")
        length = 0
        for line in buf[:end].split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip())
        while len(buf) < end + 4 + length:
            data = sock.recv(65536)
            if not data:
                return
            buf += data
        buf = buf[end + 4 + length :]
        yield


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=("fifo", "drift"))
    parser.add_argument("--capacity", type=float, default=100.0)
    parser.add_argument("--base-ms", type=float, default=0.0)
    parser.add_argument("--ms-per-s", type=float, default=0.0)
    args = parser.parse_args()
    state = {"free": 0.0, "first": None}

    def due(now: float) -> float:
        if args.mode == "fifo":
            start = max(now, state["free"] or 0.0)
            state["free"] = start + 1.0 / args.capacity
            return state["free"] + args.base_ms / 1000
        first = state["first"]
        if first is None:
            first = state["first"] = now
        return now + (args.base_ms + args.ms_per_s * (now - first)) / 1000

    def handle(sock: socket.socket, _addr: object) -> None:
        try:
            for _ in _requests(sock):
                answer_at = due(time.monotonic())
                gevent.sleep(max(answer_at - time.monotonic(), 0.0))
                sock.sendall(_RESPONSE)
        except OSError:
            return

    server = StreamServer(("127.0.0.1", 0), handle, backlog=2048)
    server.init_socket()
    server.start()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(f"PORT {server.server_port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
