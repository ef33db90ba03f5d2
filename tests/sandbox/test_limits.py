"""Slow and numerous clients: a deadline for a request's whole head and body, and a limit on
the connections one API process holds, both configurable."""

from __future__ import annotations

import select
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest

from sandbox.config import SandboxConfig
from sandbox.process import SandboxProcess, start_sandbox

from .conftest import ADMIN, KEYS
from .test_errors import _raw


def _read_all(sock: socket.socket) -> bytes:
    chunks = []
    while True:
        try:
            chunk = sock.recv(65536)
        except OSError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


@pytest.fixture(scope="module")
def limited() -> Iterator[SandboxProcess]:
    """One sandbox with a 1 s request deadline and three connections per pod."""
    with start_sandbox(
        api_keys=KEYS, admin_token=ADMIN, request_timeout=1.0, max_connections=3
    ) as sb:
        yield sb


def test_a_trickling_request_gets_408_at_its_deadline(limited: Any, connect: Any) -> None:
    sb = limited
    head = b"POST /api/public/traces HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n"
    with socket.create_connection((sb.host, sb.port), timeout=30) as raw:
        started = time.monotonic()
        # one byte every 0.2 s (the client under test): each read is quick, the request is not
        for byte in head + b"x" * 100:
            if _peek(raw):
                break  # the server has answered (or closed)
            try:
                raw.sendall(bytes([byte]))
            except OSError:
                break
            time.sleep(0.2)
            assert time.monotonic() - started < 20, "no answer long past the 1 s deadline"
        answer = _read_all(raw)
        elapsed = time.monotonic() - started
    assert elapsed >= 0.9  # not before the deadline
    assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
    assert connect(sb).get("/health", key=None).status == 200


def _peek(sock: socket.socket) -> bool:
    """Whether the server has answered or closed (without waiting)."""
    readable, _, _ = select.select([sock], [], [], 0)
    return bool(readable)


def test_an_idle_keep_alive_connection_is_not_held_to_the_request_deadline(
    limited: Any,
) -> None:
    # the deadline starts with a request's first byte, not when the connection opened
    sb = limited
    request = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
    with socket.create_connection((sb.host, sb.port), timeout=30) as raw:
        raw.sendall(request)
        first = raw.recv(65536)
        assert first.startswith(b"HTTP/1.1 200 ")
        time.sleep(1.5)  # idle longer than the request deadline
        raw.sendall(request)
        assert raw.recv(65536).startswith(b"HTTP/1.1 200 ")


def test_connections_beyond_the_limit_get_503(limited: Any, connect: Any) -> None:
    sb = limited
    held: list[socket.socket] = []
    try:
        while len(held) < 3:  # each is being served: a request answered on it
            held.append(_served(sb))
        answer = _raw(sb, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 503 "), answer[:200]
        assert b"Retry-After: 1" in answer
    finally:
        for sock in held:
            sock.close()
    # once they are closed, a connection is served again (the server notices the closes)
    deadline = time.monotonic() + 30
    while connect(sb).get("/health", key=None).status != 200:
        assert time.monotonic() < deadline
        time.sleep(0.05)


def _served(sb: Any) -> socket.socket:
    """A connection the server is serving (earlier tests' connections may still be closing
    on its side for a moment, so a 503 here is retried)."""
    deadline = time.monotonic() + 30
    while True:
        sock = socket.create_connection((sb.host, sb.port), timeout=30)
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        if sock.recv(65536).startswith(b"HTTP/1.1 200 "):
            return sock
        sock.close()
        assert time.monotonic() < deadline, "no connection served"
        time.sleep(0.05)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("request_timeout", 0.0, "--request-timeout must be positive"),
        ("max_connections", 0, "--max-connections must be at least 1"),
        ("max_db_size", 1000, "--max-db-size must be at least 64KiB"),
    ],
)
def test_limits_are_checked(field: str, value: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SandboxConfig(**{field: value})
