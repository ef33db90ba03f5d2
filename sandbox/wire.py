"""HTTP/1.1 on a gevent socket: read requests, write responses, keep connections alive.

A lean server loop rather than a WSGI stack, for three reasons: it is several times
cheaper per request (the sandbox must never be what limits a replay), it answers 413 from
the ``Content-Length`` header before reading a body, and the fault injector needs the raw
socket (a TCP reset, a connection held open and never answered).

Supported: keep-alive (HTTP/1.1 default, HTTP/1.0 on request), pipelining, bodies by
``Content-Length`` or ``Transfer-Encoding: chunked``, ``Expect: 100-continue``, HEAD.
A malformed request gets 400 (431 for oversized headers, 413 for an oversized body, 505 for
another protocol version, 408 when its head and body take longer than ``request_timeout``)
and the connection is closed after the answer; nothing a client sends raises out of
:func:`serve`. A connection beyond ``max_connections`` is answered 503 and closed.

The parser is hand-written and strict where HTTP/1.1 is: tokens for the method and header
names, no control characters (bare CR, LF, NUL) in a target or header value, ASCII digits
only in Content-Length and hex digits only in a chunk size. tests/sandbox/test_http_parsing.py
checks its verdicts against llhttp's (through httptools); bench/sandbox.py --parser says why
it is kept rather than replaced.
"""

from __future__ import annotations

import contextlib
import logging
import re
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
_CTL_IN_VALUE = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
"""Bytes a header value may not hold: controls other than HTAB (so no bare CR, LF or NUL)."""
_NOT_IN_TARGET = re.compile(rb"[^\x21-\x7e]")
"""A request target is printable ASCII: no space, control or non-ASCII byte."""
_DIGITS = re.compile(rb"[0-9]{1,18}")
_CHUNK_SIZE = re.compile(rb"[0-9A-Fa-f]{1,16}")
"""A chunk size is hex digits only: no sign, no 0x, no underscore, no whitespace."""
_TCHAR = rb"[-!#$%&'*+.^_`|~0-9A-Za-z]"
_QUOTED = rb'"(?:[^"\\\x00-\x08\x0a-\x1f\x7f]|\\[^\x00-\x08\x0a-\x1f\x7f])*"'
_CHUNK_EXTENSIONS = re.compile(
    rb"(?:[ \t]*;[ \t]*" + _TCHAR + rb"+(?:[ \t]*=[ \t]*(?:" + _TCHAR + rb"+|" + _QUOTED + rb"))?)*"
)
"""Chunk extensions (RFC 9112 7.1.1): ``;name`` or ``;name=value``, value a token or quoted."""
_TOKEN_RE = re.compile(rb"[-!#$%&'*+.^_`|~0-9A-Za-z]+")


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


class _Deadline:
    """Receives for one request: idle_timeout until its first byte, then whatever is left
    of request_timeout, so a client trickling a byte at a time cannot hold a connection."""

    __slots__ = ("at", "idle", "limit", "sock")

    def __init__(self, sock: Any, limits: Limits) -> None:
        self.sock = sock
        self.idle = limits.idle_timeout
        self.limit = limits.request_timeout
        self.at = 0.0

    def begin(self) -> None:
        """The request has begun (its first byte is here): start its clock."""
        if not self.at:
            self.at = time.monotonic() + self.limit

    def recv(self, size: int) -> bytes:
        if not self.at:
            self.sock.settimeout(self.idle)
            return bytes(self.sock.recv(size))
        left = self.at - time.monotonic()
        if left <= 0:
            raise _BadRequest(408, f"request not received within {self.limit:g}s")
        self.sock.settimeout(left)
        try:
            return bytes(self.sock.recv(size))
        except TimeoutError:
            raise _BadRequest(408, f"request not received within {self.limit:g}s") from None


class _BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class Limits:
    max_body: int = 4_500_000
    idle_timeout: float = 75.0
    """Seconds a keep-alive connection may sit idle before a request begins."""
    request_timeout: float = 30.0
    """Seconds a request's head and body may take to arrive, from its first byte (408)."""
    max_connections: int = 1024
    """Open connections one server holds; one more is answered 503 and closed."""


class Connections:
    """The open connections of one server, so a shutdown can close the idle ones."""

    def __init__(self) -> None:
        self.idle: set[Any] = set()
        self.open = 0
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
                    request = read_request(sock, buf, limits, connections, current)
                finally:
                    connections.idle.discard(current)
                if request is None:
                    return
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


def read_request(
    sock: Any,
    buf: bytearray,
    limits: Limits,
    connections: Connections | None = None,
    current: Any = None,
) -> Request | None:
    """The next request on ``sock`` (``buf`` holds bytes already received); None when the
    peer closed cleanly between requests. Raises ``_BadRequest`` (status and message) for
    anything malformed, oversized or late. Idle only until the head's first byte arrives."""
    clock = _Deadline(sock, limits)
    head = _read_head(clock, buf)
    if head is None:
        return None
    if connections is not None:
        connections.idle.discard(current)
    request = _parse_head(head)
    request.body = _read_body(clock, buf, request, limits.max_body)
    return request


def _read_head(clock: _Deadline, buf: bytearray) -> bytes | None:
    """Bytes up to the blank line ending the head; None when the peer closed cleanly."""
    while buf[:2] == b"\r\n":  # tolerate stray CRLF between requests (RFC 9112 2.2)
        del buf[:2]
    start = 0
    while True:
        if buf:
            clock.begin()
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
        data = clock.recv(_RECV)
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
    if not _TOKEN_RE.fullmatch(method_b):
        raise _BadRequest(400, "malformed method")
    if not target_b or _NOT_IN_TARGET.search(target_b):
        raise _BadRequest(400, "malformed request target")
    if version_b not in (b"HTTP/1.1", b"HTTP/1.0"):
        if version_b.startswith(b"HTTP/"):
            raise _BadRequest(505, "only HTTP/1.0 and HTTP/1.1 are supported")
        raise _BadRequest(400, "malformed request line")
    if len(lines) - 1 > MAX_HEADERS:
        raise _BadRequest(431, f"more than {MAX_HEADERS} header fields")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, value = _field(line)
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
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


def _field(line: bytes) -> tuple[bytes, bytes]:
    """A header (or trailer) field's name and its value without surrounding whitespace."""
    name, sep, value = line.partition(b":")
    if not sep or not _TOKEN_RE.fullmatch(name):
        raise _BadRequest(400, "malformed header field")
    if _CTL_IN_VALUE.search(value):
        raise _BadRequest(400, f"control character in the value of header {name[:64]!r}")
    return name, value.strip(b" \t")


def _read_body(clock: _Deadline, buf: bytearray, request: Request, max_body: int) -> bytes:
    headers = request.headers
    encoding = headers.get("transfer-encoding")
    length_text = headers.get("content-length")
    if encoding is not None:
        if length_text is not None:
            raise _BadRequest(400, "both Content-Length and Transfer-Encoding given")
        if encoding.strip().lower() != "chunked":
            raise _BadRequest(400, f"unsupported Transfer-Encoding {encoding!r}")
        _continue(clock.sock, headers)
        return _read_chunked(clock, buf, max_body)
    if length_text is None:
        return b""
    if not _DIGITS.fullmatch(length_text.encode("latin-1")):
        raise _BadRequest(400, "malformed Content-Length")
    length = int(length_text)
    if length > max_body:
        raise _BadRequest(413, f"body of {length} bytes exceeds the limit of {max_body} bytes")
    if length and len(buf) < length:
        _continue(clock.sock, headers)
    _fill(clock, buf, length)
    body = bytes(buf[:length])
    del buf[:length]
    return body


def _continue(sock: Any, headers: dict[str, str]) -> None:
    if headers.get("expect", "").lower() == "100-continue":
        sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")


def _fill(clock: _Deadline, buf: bytearray, size: int) -> None:
    while len(buf) < size:
        data = clock.recv(max(_RECV, size - len(buf)))
        if not data:
            raise _BadRequest(400, "connection closed before the body was complete")
        buf += data


def _read_chunked(clock: _Deadline, buf: bytearray, max_body: int) -> bytes:
    body = bytearray()
    while True:
        line = _read_line(clock, buf)
        at = line.find(b";")
        size_text, extensions = (line, b"") if at < 0 else (line[:at], line[at:])
        if not _CHUNK_SIZE.fullmatch(size_text.rstrip(b" \t") if at >= 0 else size_text):
            raise _BadRequest(400, "malformed chunk size")
        if extensions and not _CHUNK_EXTENSIONS.fullmatch(extensions):
            raise _BadRequest(400, "malformed chunk extension")
        size = int(size_text, 16)
        if size == 0:
            while trailer := _read_line(clock, buf):  # trailer fields, checked and ignored
                _field(trailer)
            return bytes(body)
        if len(body) + size > max_body:
            raise _BadRequest(413, f"body exceeds the limit of {max_body} bytes")
        _fill(clock, buf, size + 2)
        if buf[size : size + 2] != b"\r\n":
            raise _BadRequest(400, "malformed chunk")
        body += buf[:size]
        del buf[: size + 2]


def _read_line(clock: _Deadline, buf: bytearray) -> bytes:
    while True:
        end = buf.find(b"\r\n")
        if end >= 0:
            line = bytes(buf[:end])
            del buf[: end + 2]
            return line
        if len(buf) > MAX_HEAD:
            raise _BadRequest(400, "chunk line too long")
        data = clock.recv(_RECV)
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


def _refuse(sock: Any, limit: int, extra: bytes) -> None:
    """Answer a connection beyond the limit with 503 and close it, without reading."""
    import json

    message = f"this server holds at most {limit} connections; retry shortly"
    body = json.dumps({"error": "unavailable", "message": message}).encode()
    request = Request("GET", "/", "", {}, b"", version="HTTP/1.1")
    response = Response(503, body, headers=[("Retry-After", "1")])
    try:
        sock.settimeout(1.0)
        sock.sendall(_encode(request, response, keep=False, extra=extra))
        sock.shutdown(socket.SHUT_WR)
        deadline = time.monotonic() + 1.0  # a short lingering close, as in _reject
        while time.monotonic() < deadline and sock.recv(_RECV):
            pass
    except (OSError, TimeoutError):
        pass
    finally:
        with contextlib.suppress(OSError):
            sock.close()


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
        if connections.open >= limits.max_connections:
            _refuse(sock, limits.max_connections, extra_headers)
            return
        connections.open += 1
        try:
            serve(sock, endpoint, limits, connections, extra_headers)
        finally:
            connections.open -= 1

    return handle
