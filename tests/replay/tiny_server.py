"""A small HTTP/1.1 server for replay's tests, run as its own process (gevent, 127.0.0.1).

    python tiny_server.py [--status 200] [--delay-ms 0] [--fault none|reset|close|garbage|stall]
                          [--fault-every N] [--close-after N]

prints ``PORT <n>`` once listening. Every request is answered with a small JSON body after
--delay-ms, except every Nth (--fault-every) gets --fault: reset (RST), close (FIN, no
response), garbage (bytes that are not HTTP) or stall (never answers). --close-after N
closes each connection after N responses (an idle keep-alive close). ``GET /__stats``
returns JSON counts: requests, distinct trace ids seen in POST bodies ("id" of the top-level
object), paths by prefix, and the Authorization headers seen.
"""

from __future__ import annotations

import argparse
import json
import signal
import socket
import struct
import sys

import gevent
from gevent.server import StreamServer

STATS: dict[str, object] = {}
TRACES: set[str] = set()
AUTH: set[str] = set()
COUNTS = {"requests": 0, "posts": 0, "gets": 0}
PATHS: dict[str, int] = {}


def _respond(status: int, body: bytes, keep: bool = True) -> bytes:
    reason = {200: "OK", 404: "Not Found", 503: "Service Unavailable"}.get(status, "X")
    conn = b"" if keep else b"Connection: close\r\n"
    return b"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n%s\r\n%s" % (
        status,
        reason.encode(),
        len(body),
        conn,
        body,
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--status", type=int, default=200)
    parser.add_argument("--delay-ms", type=float, default=0.0)
    parser.add_argument("--fault", default="none")
    parser.add_argument("--fault-every", type=int, default=0)
    parser.add_argument("--close-after", type=int, default=0)
    args = parser.parse_args()
    seen = [0]

    def handle(sock: socket.socket, _addr: object) -> None:
        buf = b""
        answered = 0
        while True:
            end = buf.find(b"\r\n\r\n")
            while end < 0:
                try:
                    data = sock.recv(65536)
                except OSError:
                    return
                if not data:
                    return
                buf += data
                end = buf.find(b"\r\n\r\n")
            head = buf[:end].decode("latin-1")
            lines = head.split("\r\n")
            method, path, _ = lines[0].split(" ", 2)
            headers = {}
            for line in lines[1:]:
                k, _, v = line.partition(":")
                headers[k.strip().lower()] = v.strip()
            length = int(headers.get("content-length", "0"))
            while len(buf) < end + 4 + length:
                data = sock.recv(65536)
                if not data:
                    return
                buf += data
            body = buf[end + 4 : end + 4 + length]
            buf = buf[end + 4 + length :]
            seen[0] += 1
            if path == "/__stats":
                stats = {
                    **COUNTS,
                    "traces": len(TRACES),
                    "paths": PATHS,
                    "auth": sorted(AUTH),
                }
                sock.sendall(_respond(200, json.dumps(stats).encode()))
                continue
            COUNTS["requests"] += 1
            prefix = path.split("?")[0].rsplit("/", 1)[0] if path.count("/") > 3 else path
            PATHS[prefix] = PATHS.get(prefix, 0) + 1
            if "authorization" in headers:
                AUTH.add(headers["authorization"])
            if method == "POST":
                COUNTS["posts"] += 1
                try:
                    obj = json.loads(body)
                    if isinstance(obj, dict) and "id" in obj:
                        TRACES.add(str(obj["id"]))
                except ValueError:
                    pass
            else:
                COUNTS["gets"] += 1
            if args.fault_every and seen[0] % args.fault_every == 0 and args.fault != "none":
                if args.fault == "reset":
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    sock.close()
                    return
                if args.fault == "close":
                    sock.shutdown(socket.SHUT_RDWR)
                    sock.close()
                    return
                if args.fault == "garbage":
                    sock.sendall(b"this is not http\r\n\r\n")
                    sock.close()
                    return
                if args.fault == "stall":
                    gevent.sleep(3600)
                    return
            if args.delay_ms:
                gevent.sleep(args.delay_ms / 1000)
            answered += 1
            keep = not (args.close_after and answered >= args.close_after)
            sock.sendall(_respond(args.status, b'{"status":"accepted"}', keep))
            if not keep:
                sock.close()
                return

    server = StreamServer(("127.0.0.1", 0), handle, backlog=1024)
    server.init_socket()
    server.start()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(f"PORT {server.server_port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
