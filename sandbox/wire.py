"""HTTP/1.1 on a gevent socket: read requests, write responses, keep connections alive.

A lean server loop rather than a WSGI stack, for three reasons: it is several times
cheaper per request (the sandbox must never be what limits a replay), it answers 413 from
the ``Content-Length`` header before reading a body, and the fault injector needs the raw
socket (a TCP reset, a connection held open and never answered).

Supported: keep-alive (HTTP/1.1 default, HTTP/1.0 on request), pipelining, bodies by
``Content-Length`` or ``Transfer-Encoding: chunked``, ``Expect: 100-continue``, HEAD.
A malformed request gets 400 (431 for oversized headers, 413 for an oversized body, 505 for
another protocol version) and the connection is closed after the answer; nothing a client
sends raises out of :func:`serve`.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, Protocol

import gevent

log = logging.getLogger("sandbox.wire")

MAX_HEAD = 64 * 1024
MAX_HEADERS = 100
_RECV = 65536
_REASONS = {status.value: status.phrase for status in HTTPStatus}
_TOKEN = frozenset(b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")


@dataclass(slots=True)
class Request:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes
    received_at: float = 0.0
    version: str = "HTTP/1.1"


@dataclass(slots=True)
class Response:
    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: list[tuple[str, str]] = field(default_factory=list)
    close: bool = False
    hold_until: float = 0.0
    """Monotonic time before which the answer must not be written (emulated service)."""
    action: str = ""
    """``reset`` or ``stall`` (fault injection): no answer is written at all."""
    route: str = ""
    tag: str = ""
    """Why the app answered as it did, for metrics: ``shed``, ``rate_limited``, a fault."""


class Endpoint(Protocol):
    def handle(self, request: Request) -> Response: ...

    def finished(self, request: Request, response: Response, seconds: float) -> None: ...


class _BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class Limits:
    max_body: int = 4_500_000
    idle_timeout: float = 75.0
    """Seconds a keep-alive connection may sit idle (or a request take to arrive)."""


class Connections:
    """The open connections of one server, so a shutdown can close the idle ones."""

    def __init__(self) -> None:
        self.idle: set[Any] = set()
        self.draining = False

    def close_idle(self) -> None:
        self.draining = True
        for glet in list(self.idle):
            glet.kill(block=False)


def serve(
    sock: Any,
    endpoint: Endpoint,
    limits: Limits,
    connections: Connections,
    extra_headers: bytes = b"",
) -> None:
    """Serve one connection until it closes; the StreamServer's handler."""
    current = gevent.getcurrent()
    buf = bytearray()
    sock.settimeout(limits.idle_timeout)
    try:
        while not connections.draining:
            try:
                connections.idle.add(current)
                try:
                    head = _read_head(sock, buf)
                finally:
                    connections.idle.discard(current)
                if head is None:
                    return
                request = _parse_head(head)
                request.body = _read_body(sock, buf, request, limits.max_body)
            except _BadRequest as exc:
                _reject(sock, exc.status, exc.message, extra_headers)
                return
            request.received_at = time.monotonic()
            try:
                response = endpoint.handle(request)
            except Exception:
                log.exception("unhandled error answering %s %s", request.method, request.path)
                response = Response(500, b'{"error":"internal","message":"internal error"}')
            if response.action:
                _act(sock, response.action, connections)
                endpoint.finished(request, response, time.monotonic() - request.received_at)
                return
            delay = response.hold_until - time.monotonic()
            if delay > 0:
                gevent.sleep(delay)
            keep = _keep_alive(request) and not response.close and not connections.draining
            sock.sendall(_encode(request, response, keep, extra_headers))
            endpoint.finished(request, response, time.monotonic() - request.received_at)
            if not keep:
                return
    except (OSError, TimeoutError):
        return
    finally:
        with contextlib.suppress(OSError):
            sock.close()


def _read_head(sock: Any, buf: bytearray) -> bytes | None:
    """Bytes up to the blank line ending the head; None when the peer closed cleanly."""
    while buf[:2] == b"\r\n":  # tolerate stray CRLF between requests (RFC 9112 2.2)
        del buf[:2]
    start = 0
    while True:
        end = buf.find(b"\r\n\r\n", start)
        if end > MAX_HEAD:
            raise _BadRequest(431, f"request head exceeds {MAX_HEAD} bytes")
        if end >= 0:
            head = bytes(buf[:end])
            del buf[: end + 4]
            return head
        if len(buf) > MAX_HEAD:
            raise _BadRequest(431, f"request head exceeds {MAX_HEAD} bytes")
        start = max(0, len(buf) - 3)
        data = sock.recv(_RECV)
        if not data:
            return None
        buf += data
        while buf[:2] == b"\r\n":
            del buf[:2]


def _parse_head(head: bytes) -> Request:
    lines = head.split(b"\r\n")
    parts = lines[0].split(b" ")
    if len(parts) != 3:
        raise _BadRequest(400, "malformed request line")
    method_b, target_b, version_b = parts
    if not method_b or not all(c in _TOKEN for c in method_b):
        raise _BadRequest(400, "malformed method")
    if version_b not in (b"HTTP/1.1", b"HTTP/1.0"):
        if version_b.startswith(b"HTTP/"):
            raise _BadRequest(505, "only HTTP/1.0 and HTTP/1.1 are supported")
        raise _BadRequest(400, "malformed request line")
    if len(lines) - 1 > MAX_HEADERS:
        raise _BadRequest(431, f"more than {MAX_HEADERS} header fields")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if not sep or not name or not all(c in _TOKEN for c in name):
            raise _BadRequest(400, "malformed header field")
        key = name.decode("latin-1").lower()
        text = value.strip(b" \t").decode("latin-1")
        if key in headers:
            if key in ("content-length", "host", "authorization"):
                if headers[key] != text:
                    raise _BadRequest(400, f"conflicting {key} header fields")
                continue
            text = f"{headers[key]}, {text}"
        headers[key] = text
    target = target_b.decode("latin-1")
    if not target.startswith("/"):
        if target.startswith(("http://", "https://")):
            target = "/" + target.split("/", 3)[3] if target.count("/") >= 3 else "/"
        else:
            raise _BadRequest(400, "malformed request target")
    path, _, query = target.partition("?")
    return Request(
        method=method_b.decode("ascii"),
        path=path,
        query=query,
        headers=headers,
        body=b"",
        version=version_b.decode("ascii"),
    )


def _read_body(sock: Any, buf: bytearray, request: Request, max_body: int) -> bytes:
    headers = request.headers
    encoding = headers.get("transfer-encoding")
    length_text = headers.get("content-length")
    if encoding is not None:
        if length_text is not None:
            raise _BadRequest(400, "both Content-Length and Transfer-Encoding given")
        if encoding.strip().lower() != "chunked":
            raise _BadRequest(400, f"unsupported Transfer-Encoding {encoding!r}")
        _continue(sock, headers)
        return _read_chunked(sock, buf, max_body)
    if length_text is None:
        return b""
    if not length_text.isdigit() or len(length_text) > 18:
        raise _BadRequest(400, "malformed Content-Length")
    length = int(length_text)
    if length > max_body:
        raise _BadRequest(413, f"body of {length} bytes exceeds the limit of {max_body} bytes")
    if length and len(buf) < length:
        _continue(sock, headers)
    _fill(sock, buf, length)
    body = bytes(buf[:length])
    del buf[:length]
    return body


def _continue(sock: Any, headers: dict[str, str]) -> None:
    if headers.get("expect", "").lower() == "100-continue":
        sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")


def _fill(sock: Any, buf: bytearray, size: int) -> None:
    while len(buf) < size:
        data = sock.recv(max(_RECV, size - len(buf)))
        if not data:
            raise _BadRequest(400, "connection closed before the body was complete")
        buf += data


def _read_chunked(sock: Any, buf: bytearray, max_body: int) -> bytes:
    body = bytearray()
    while True:
        line = _read_line(sock, buf)
        size_text = line.split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise _BadRequest(400, "malformed chunk size") from None
        if size < 0:
            raise _BadRequest(400, "malformed chunk size")
        if size == 0:
            while _read_line(sock, buf):  # trailer fields, ignored
                pass
            return bytes(body)
        if len(body) + size > max_body:
            raise _BadRequest(413, f"body exceeds the limit of {max_body} bytes")
        _fill(sock, buf, size + 2)
        if buf[size : size + 2] != b"\r\n":
            raise _BadRequest(400, "malformed chunk")
        body += buf[:size]
        del buf[: size + 2]


def _read_line(sock: Any, buf: bytearray) -> bytes:
    while True:
        end = buf.find(b"\r\n")
        if end >= 0:
            line = bytes(buf[:end])
            del buf[: end + 2]
            return line
        if len(buf) > MAX_HEAD:
            raise _BadRequest(400, "chunk line too long")
        data = sock.recv(_RECV)
        if not data:
            raise _BadRequest(400, "connection closed inside a chunked body")
        buf += data


def _keep_alive(request: Request) -> bool:
    connection = request.headers.get("connection", "").lower()
    if request.version == "HTTP/1.1":
        return "close" not in connection
    return "keep-alive" in connection


def _encode(request: Request, response: Response, keep: bool, extra: bytes) -> bytes:
    body = b"" if request.method == "HEAD" else response.body
    lines = [
        f"HTTP/1.1 {response.status} {_REASONS.get(response.status, 'Unknown')}\r\n"
        f"Content-Type: {response.content_type}\r\n"
        f"Content-Length: {len(response.body)}\r\n"
    ]
    for name, value in response.headers:
        lines.append(f"{name}: {value}\r\n")
    if not keep:
        lines.append("Connection: close\r\n")
    elif request.version == "HTTP/1.0":
        lines.append("Connection: keep-alive\r\n")
    return "".join(lines).encode("latin-1") + extra + b"\r\n" + body


def _reject(sock: Any, status: int, message: str, extra: bytes) -> None:
    """Answer a request we could not read, then close gracefully (lingering close)."""
    import json

    body = json.dumps({"error": _REASONS.get(status, "error"), "message": message}).encode()
    request = Request("GET", "/", "", {}, b"", version="HTTP/1.1")
    sock.sendall(_encode(request, Response(status, body), keep=False, extra=extra))
    # Read and discard what the client is still sending for a moment, so that closing with
    # unread data does not turn into a reset that hides the answer from the client.
    try:
        sock.shutdown(socket.SHUT_WR)
        sock.settimeout(1.0)
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline and sock.recv(_RECV):
            pass
    except (OSError, TimeoutError):
        pass


def _act(sock: Any, action: str, connections: Connections) -> None:
    if action == "reset":
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        return  # the caller's close() now sends RST
    if action == "stall":
        # Hold the connection open and never answer: read and discard until the client
        # gives up or the server shuts down (stalled connections count as idle).
        current = gevent.getcurrent()
        connections.idle.add(current)
        sock.settimeout(None)
        try:
            while sock.recv(_RECV):
                pass
        finally:
            connections.idle.discard(current)


def bound_handler(
    endpoint: Endpoint,
    limits: Limits,
    connections: Connections,
    extra_headers: bytes = b"",
) -> Callable[[Any, Any], None]:
    """A StreamServer handler serving ``endpoint``."""

    def handle(sock: Any, _address: Any) -> None:
        serve(sock, endpoint, limits, connections, extra_headers)

    return handle
