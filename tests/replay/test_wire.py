"""The wire: targets, heads, the response parser, and each failure as an outcome."""

from __future__ import annotations

import socket
import struct
from collections.abc import Callable, Iterator
from typing import Any

import gevent
import pytest
from gevent.server import StreamServer

from replay import wire
from replay.wire import Connection, Target

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
REQUEST = b"GET /x HTTP/1.1\r\nHost: t\r\n\r\n"


@pytest.mark.parametrize(
    ("url", "host", "port", "base", "host_header"),
    [
        ("http://127.0.0.1:8080", "127.0.0.1", 8080, "", "127.0.0.1:8080"),  # explicit port
        ("https://api.example.com/", "api.example.com", 443, "", "api.example.com"),  # default
        ("http://h/agenttrace/", "h", 80, "/agenttrace", "h"),  # a base path is kept, no slash
        ("http://[::1]:9000", "::1", 9000, "", "[::1]:9000"),  # IPv6 literal
    ],
)
def test_target_parse(url: str, host: str, port: int, base: str, host_header: str) -> None:
    t = Target.parse(url)
    assert (t.host, t.port, t.base_path, t.host_header) == (host, port, base, host_header)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://h", "http:// or https://"),  # not HTTP
        ("127.0.0.1:8080", "http:// or https://"),  # no scheme
        ("http://", "names no host"),  # no host
        ("http://h:99999", "invalid port"),  # port out of range
    ],
)
def test_target_parse_errors(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Target.parse(url)


def test_head_end_adds_ours_and_drops_theirs() -> None:
    enc = wire.Encoder(Target.parse("http://h:81/base"), "KEY", "ua/1")
    recorded = (("Authorization", "Bearer old"), ("Host", "x"), ("Connection", "close"), ("A", "b"))
    head = enc.request_start("POST") + b"/p" + enc.head_end(recorded, 5)
    assert head == (
        b"POST /base/p HTTP/1.1\r\nHost: h:81\r\nUser-Agent: ua/1\r\n"
        b"Authorization: Bearer KEY\r\nA: b\r\nContent-Length: 5\r\n\r\n"
    )
    assert enc.head_end((), -1).endswith(b"ua/1\r\nAuthorization: Bearer KEY\r\n\r\n")
    assert enc.head_end((), None).endswith(b"Content-Length: ")


def test_parser_reads_successive_responses_in_pieces() -> None:
    # split at every byte, a keep-alive stream of a sized and a chunked response parses
    p = wire.ResponseParser()
    stream = OK + b"HTTP/1.1 503 X\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n0\r\n\r\n"
    codes = []
    for i in range(len(stream)):
        p.feed(stream[i : i + 1])
        if p.done:
            codes.append(p.get_code())
            p.done = False
    assert codes == [200, 503]


# --- connections against in-process servers ----------------------------------------------


@pytest.fixture
def serve() -> Iterator[Callable[[Callable[[Any], None]], Connection]]:
    servers: list[StreamServer] = []
    conns: list[Connection] = []

    def start(handler: Callable[[Any], None]) -> Connection:
        server = StreamServer(("127.0.0.1", 0), lambda sock, _addr: handler(sock))
        server.start()
        servers.append(server)
        target = Target.parse(f"http://127.0.0.1:{server.server_port}")
        family, addr = wire.resolve(target)
        conns.append(Connection(target, addr, family))
        return conns[-1]

    yield start
    for conn in conns:
        conn.close()
    for server in servers:
        server.stop(timeout=1)


def _read_request(sock: Any) -> bool:
    buf = b""
    while b"\r\n\r\n" not in buf:
        data = sock.recv(65536)
        if not data:
            return False
        buf += data
    return True


def _outcome(conn: Connection, request: bytes = REQUEST) -> str:
    try:
        return str(conn.exchange(request))
    except Exception as exc:
        return wire.classify(exc, conn.expired)


def test_keep_alive_reuses_one_connection(serve: Any) -> None:
    accepted = []

    def handler(sock: Any) -> None:
        accepted.append(1)
        while _read_request(sock):
            sock.sendall(OK)

    conn = serve(handler)
    assert [_outcome(conn) for _ in range(5)] == ["200"] * 5
    assert len(accepted) == 1 and conn.uses == 5


def test_connection_close_is_honoured(serve: Any) -> None:
    accepted = []

    def handler(sock: Any) -> None:
        accepted.append(1)
        _read_request(sock)
        sock.sendall(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")

    conn = serve(handler)
    assert [_outcome(conn) for _ in range(3)] == ["200"] * 3
    assert len(accepted) == 3


def test_a_connection_closed_while_idle_is_renewed(serve: Any) -> None:
    # the server closes each connection after one response without saying so: before the
    # next request the idle connection is found closed and replaced, nothing is retried
    def handler(sock: Any) -> None:
        _read_request(sock)
        sock.sendall(OK)
        gevent.sleep(0.01)
        sock.close()

    conn = serve(handler)
    outcomes = []
    for _ in range(3):
        outcomes.append(_outcome(conn))
        gevent.sleep(0.05)
    assert outcomes == ["200", "200", "200"]


@pytest.mark.parametrize(
    ("behaviour", "outcome"),
    [
        ("reset", "reset"),  # RST instead of a response
        ("close", "closed"),  # FIN before any response, on a fresh connection
        ("garbage", "malformed"),  # bytes that are not HTTP
        ("half", "closed"),  # half a response, then FIN
        ("status", "503"),  # a status is an outcome, not an error
    ],
)
def test_failures_are_outcomes(serve: Any, behaviour: str, outcome: str) -> None:
    def handler(sock: Any) -> None:
        _read_request(sock)
        if behaviour == "reset":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        elif behaviour == "garbage":
            sock.sendall(b"SPDY/9 what\r\n\r\n")
        elif behaviour == "half":
            sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nabc")
        elif behaviour == "status":
            sock.sendall(b"HTTP/1.1 503 Busy\r\nContent-Length: 0\r\n\r\n")
            _read_request(sock)
        sock.close()

    assert _outcome(serve(handler)) == outcome


def test_refused() -> None:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()  # nothing listens there now
    target = Target.parse(f"http://127.0.0.1:{port}")
    family, addr = wire.resolve(target)
    conn = Connection(target, addr, family)
    assert _outcome(conn) == "refused"
    conn.close()
    assert wire.probe(target) == "connection refused"


def test_a_stalled_exchange_closed_by_the_watchdog_is_a_timeout(serve: Any) -> None:
    def handler(sock: Any) -> None:
        _read_request(sock)
        gevent.sleep(10)

    conn = serve(handler)

    def watchdog() -> None:
        gevent.sleep(0.05)
        conn.expired = True
        conn.close()

    gevent.spawn(watchdog)
    assert _outcome(conn) == "timeout"


@pytest.mark.parametrize(
    ("exc", "expired", "outcome"),
    [
        (ConnectionRefusedError(), False, "refused"),
        (ConnectionResetError(), False, "reset"),
        (BrokenPipeError(), False, "reset"),
        (wire.ClosedError(0), False, "closed"),
        (OSError(9, "closed in another greenlet"), True, "timeout"),  # the watchdog's doing
        (TimeoutError(), False, "timeout"),
        (OSError(113, "no route to host"), False, "other"),
        (ValueError("?"), False, "other"),
    ],
)
def test_classify(exc: BaseException, expired: bool, outcome: str) -> None:
    assert wire.classify(exc, expired) == outcome
