"""The sandbox's request reader against llhttp (httptools) on the same requests, in process.

Both turn the bytes of the benchmark's ingestion request (the guide's payload with five
observations, the headers a load tool sends) into the same thing: method, path, query,
lower-cased headers and body. Ours is :func:`sandbox.wire.read_request` reading from an
in-memory "socket" (the same path the server takes, minus the kernel); llhttp's is
httptools' ``HttpRequestParser`` with the callbacks that build the request, one parser per
connection as a server keeps it. Keep-alive: every request arrives on its own ``recv``.

    .venv/bin/python bench/sandbox.py --parser           # or: bench/request_parsers.py
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sandbox import wire  # noqa: E402


def sample_request() -> bytes:
    """One ingestion request as the benchmark's wrk script sends it."""
    trace_id = uuid.uuid4().hex
    body = json.dumps(
        {
            "id": trace_id,
            "name": "load-test-trace",
            "timestamp": "2026-11-29T05:00:00.000Z",
            "input": {"query": "What is the weather?"},
            "output": {"response": "The weather is sunny."},
            "metadata": {"model": "gpt-4o", "tokens": {"input": 10, "output": 20}},
            "observations": [
                {"id": f"{trace_id}-{i}", "type": "GENERATION", "name": f"step-{i}"}
                for i in range(5)
            ],
        }
    ).encode()
    head = (
        "POST /api/public/traces HTTP/1.1\r\n"
        "Host: 127.0.0.1:8080\r\n"
        "User-Agent: wrk\r\n"
        "Authorization: Bearer sk-sandbox-0123456789abcdef01234567\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    return head + body


class _Feed:
    """A socket whose every recv returns the next request."""

    def __init__(self, data: bytes, count: int) -> None:
        self._data = data
        self._left = count

    def settimeout(self, _seconds: float) -> None:
        pass

    def recv(self, _size: int) -> bytes:
        if not self._left:
            return b""
        self._left -= 1
        return self._data


def ours(data: bytes, count: int) -> float:
    """Seconds per request for :func:`sandbox.wire.read_request`."""
    feed = _Feed(data, count)
    buf = bytearray()
    limits = wire.Limits()
    start = time.perf_counter()
    for _ in range(count):
        request = wire.read_request(feed, buf, limits)
        assert request is not None and request.body
    return (time.perf_counter() - start) / count


class _Builder:
    """httptools callbacks that build what the sandbox's App needs."""

    def __init__(self) -> None:
        self.url = b""
        self.headers: dict[str, str] = {}
        self.body = bytearray()
        self.done: list[wire.Request] = []

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_body(self, body: bytes) -> None:
        self.body += body

    def on_message_complete(self) -> None:
        path, _, query = self.url.decode("latin-1").partition("?")
        self.done.append(wire.Request("POST", path, query, self.headers, bytes(self.body)))
        self.url, self.headers, self.body = b"", {}, bytearray()


def llhttp(data: bytes, count: int) -> float:
    """Seconds per request for llhttp through httptools, building the same request."""
    import httptools

    builder = _Builder()
    parser: Any = httptools.HttpRequestParser(builder)
    start = time.perf_counter()
    for _ in range(count):
        parser.feed_data(data)
        request = builder.done.pop()
        request.method = parser.get_method().decode()
        assert request.body
    return (time.perf_counter() - start) / count


def main(count: int = 200_000) -> None:
    data = sample_request()
    print(f"# request parsers, {count} keep-alive requests of {len(data)} bytes, in process")
    for name, fn in (("sandbox.wire", ours), ("llhttp (httptools)", llhttp)):
        best = min(fn(data, count) for _ in range(3))
        print(f"{name:>20}: {best * 1e6:6.2f} us/request  ({1 / best:,.0f} requests/s)")


if __name__ == "__main__":
    main()
