"""A fixed-rate latency probe: POSTs one body to a loopback URL at a steady rate over one
kept-alive connection and prints the latency percentiles as JSON.

    python bench/paced_latency.py URL BODY_FILE --rate 1000 --duration 5

Each request is due at start + i / rate. `service` latency runs from when the request was
actually sent to the last byte of its answer; `intended` latency from when it was due, so
a stall that delays later sends counts for each of them (coordinated omission). At a rate
the target keeps up with, both agree and measure what one request costs without queueing;
bench/record.py runs this against nginx directly and through the proxy and takes the
difference. Answers are read with capture/response_head.py's fast path (one
Content-Length, as nginx answers). Only 127.0.0.1 / localhost / [::1] are accepted.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from capture.response_head import MORE, parse_head

LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})


def percentile(sorted_values: list[int], q: float) -> float:
    """The nearest-rank percentile (q in 0-100) of sorted values."""
    if not sorted_values:
        return float("nan")
    rank = max(1, -(-len(sorted_values) * q // 100))
    return float(sorted_values[int(rank) - 1])


def probe(url: str, body: bytes, rate: float, duration: float) -> dict[str, float]:
    parts = urlsplit(url)
    host = parts.hostname or ""
    if host not in LOOPBACK:
        raise SystemExit(f"paced_latency: {host!r} is not a loopback address")
    port = parts.port or 80
    path = parts.path or "/"
    request = (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer sk-bench-not-a-secret\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    sock = socket.create_connection((host, port), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    service: list[int] = []
    intended: list[int] = []
    errors = 0
    interval = 1e9 / rate
    total = int(rate * duration)
    start = time.monotonic_ns() + 10_000_000
    for i in range(total):
        due = start + int(i * interval)
        wait = due - time.monotonic_ns()
        if wait > 0:
            time.sleep(wait / 1e9)
        sent = time.monotonic_ns()
        sock.sendall(request)
        buf = b""
        while True:
            parsed = parse_head(buf, False)
            if isinstance(parsed, tuple) and len(buf) >= parsed[1]:
                break
            if parsed != MORE and not isinstance(parsed, tuple):
                raise SystemExit(
                    f"paced_latency: an answer the fast path does not read: {buf[:80]!r}"
                )
            data = sock.recv(65536)
            if not data:
                raise SystemExit("paced_latency: the connection closed")
            buf += data
        done = time.monotonic_ns()
        if parsed[0] >= 300:
            errors += 1
        service.append(done - sent)
        intended.append(done - due)
    sock.close()
    service.sort()
    intended.sort()
    return {
        "requests": total,
        "errors": errors,
        "rate": rate,
        "service_p50_us": percentile(service, 50) / 1e3,
        "service_p99_us": percentile(service, 99) / 1e3,
        "intended_p50_us": percentile(intended, 50) / 1e3,
        "intended_p99_us": percentile(intended, 99) / 1e3,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("body", type=Path)
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--duration", type=float, default=5.0)
    args = parser.parse_args()
    print(json.dumps(probe(args.url, args.body.read_bytes(), args.rate, args.duration)))


if __name__ == "__main__":
    main()
