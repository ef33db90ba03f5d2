"""The wire: targets, heads, the response parser, and each failure as an outcome."""

from __future__ import annotations

import socket
import ssl
import struct
import subprocess
import time
from collections.abc import Callable, Iterator
from typing import Any

import gevent
import gevent.event
import gevent.ssl
import pytest
from gevent.server import StreamServer
from hypothesis import given, settings
from hypothesis import strategies as st

from replay import address, encoder, outcomes
from replay.address import Target
from replay.response import MORE, OTHER, ResponseParser, parse_head
from replay.wire import Connection

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
REQUEST = b"GET /x HTTP/1.1\r\nHost: t\r\n\r\n"
CLOSE = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\nx"


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
    enc = encoder.Encoder(Target.parse("http://h:81/base"), "KEY", "ua/1")
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
    p = ResponseParser()
    stream = OK + b"HTTP/1.1 503 X\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n0\r\n\r\n"
    codes = []
    for i in range(len(stream)):
        p.feed(stream[i : i + 1])
        if p.done:
            codes.append(p.get_code())
            p.done = False
    assert codes == [200, 503]


# --- the fast path against llhttp -----------------------------------------------------------


@pytest.mark.parametrize(
    ("response", "head", "expected"),
    [
        (OK, False, (200, len(OK), True)),  # the common case
        (b"HTTP/1.1 201 Created\r\ncontent-length: 0\r\n\r\n", False, (201, 43, True)),
        (
            b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\nx",
            False,
            (200, len(CLOSE), False),
        ),
        (b"HTTP/1.1 204 No\r\n\r\n", False, (204, 19, True)),  # 204: no body, no length
        (b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n", True, (200, 38, True)),  # HEAD
        (b"HTTP/1.1 200 OK\r\nContent-Le", False, MORE),  # the head is not complete
        (b"HTTP/1.", False, MORE),
        (b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", False, OTHER),  # llhttp
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", False, OTHER),
        (b"HTTP/1.1 100 Continue\r\n\r\n", False, OTHER),  # 1xx
        (b"HTTP/1.1 200 OK\r\n\r\n", False, OTHER),  # no length: until close
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n",
            False,
            OTHER,
        ),
        (b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", False, OTHER),
        (b"SPDY/9 what\r\n\r\n", False, OTHER),  # not HTTP: llhttp says malformed
    ],
)
def test_parse_head(response: bytes, head: bool, expected: object) -> None:
    assert parse_head(response, head) == expected


_NAMES = ["Content-Length", "Transfer-Encoding", "Connection", "Server", "Date", "X-A"]


@st.composite
def _responses(draw: st.DrawFn) -> tuple[bytes, bool]:
    """A well-formed response (any case of header names, sized or chunked, kept alive or
    not) and whether it answers a HEAD request."""
    version = draw(st.sampled_from([b"1.1", b"1.1", b"1.0"]))
    status = draw(st.sampled_from([200, 201, 204, 301, 304, 404, 500, 503, 599, 101]))
    head = draw(st.booleans())
    body = draw(st.binary(max_size=40))
    chunked = draw(st.booleans())
    lines = [b"HTTP/%s %d %s" % (version, status, draw(st.sampled_from([b"OK", b"", b"X Y"])))]
    names = draw(st.lists(st.sampled_from(_NAMES[2:]), max_size=3))
    names.append("Transfer-Encoding" if chunked else "Content-Length")
    for name in draw(st.permutations(names)):
        name = "".join(c.upper() if draw(st.booleans()) else c.lower() for c in name)
        low = name.lower()
        if low == "content-length":
            value = b"%d" % len(body)
        elif low == "transfer-encoding":
            value = b"chunked"
        elif low == "connection":
            value = draw(st.sampled_from([b"close", b"keep-alive", b"Keep-Alive", b"close"]))
        else:
            value = b"v"
        spaces = draw(st.sampled_from([b"", b" ", b"  "]))
        lines.append(name.encode() + b":" + spaces + value)
    message = b"\r\n".join(lines) + b"\r\n\r\n"
    if not head and status not in (204, 304) and status >= 200:
        if chunked:
            message += (b"%x\r\n%s\r\n" % (len(body), body) if body else b"") + b"0\r\n\r\n"
        else:
            message += body
    return message, head


@settings(max_examples=400, deadline=None)
@given(_responses())
def test_fast_path_agrees_with_llhttp(case: tuple[bytes, bool]) -> None:
    # whatever the fast path accepts, llhttp reads the same: status, end, keep-alive
    message, head = case
    fast = parse_head(message, head)
    assert fast != MORE
    if fast == OTHER:
        return
    assert isinstance(fast, tuple)
    p = ResponseParser()
    p.head = head
    p.feed(message[:-1])
    assert not p.done  # llhttp needs the last byte too: the message ends where we say
    p.feed(message[-1:])
    assert p.done
    assert fast == (p.get_code(), len(message), bool(p.should_keep_alive()))


# --- connections against in-process servers ----------------------------------------------


class Client:
    """A Connection driven from a test: `outcome()` sends and waits for `on_done`."""

    def __init__(self, target: Target) -> None:
        family, addr = address.resolve(target)
        self.outcomes: list[str] = []
        self.event = gevent.event.Event()
        self.conn = Connection(target, addr, family, self._done)

    def _done(self, conn: Connection, outcome: str, done: int) -> None:
        assert conn is self.conn and not conn.busy and done > 0
        self.outcomes.append(outcome)
        self.event.set()

    def outcome(self, request: bytes = REQUEST, head: bool = False) -> str:
        self.event.clear()
        self.conn.send(request, time.monotonic_ns(), head)
        assert self.event.wait(10), "no outcome"
        return self.outcomes[-1]


@pytest.fixture
def serve() -> Iterator[Callable[[Callable[[Any], None]], Client]]:
    servers: list[StreamServer] = []
    clients: list[Client] = []

    def start(handler: Callable[[Any], None]) -> Client:
        server = StreamServer(("127.0.0.1", 0), lambda sock, _addr: handler(sock))
        server.start()
        servers.append(server)
        clients.append(Client(Target.parse(f"http://127.0.0.1:{server.server_port}")))
        return clients[-1]

    yield start
    for client in clients:
        client.conn.close()
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


def test_keep_alive_reuses_one_connection(serve: Any) -> None:
    accepted = []

    def handler(sock: Any) -> None:
        accepted.append(1)
        while _read_request(sock):
            sock.sendall(OK)

    client = serve(handler)
    assert [client.outcome() for _ in range(5)] == ["200"] * 5
    assert len(accepted) == 1 and client.conn.uses == 5


def test_connection_close_is_honoured(serve: Any) -> None:
    accepted = []

    def handler(sock: Any) -> None:
        accepted.append(1)
        _read_request(sock)
        sock.sendall(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")

    client = serve(handler)
    assert [client.outcome() for _ in range(3)] == ["200"] * 3
    assert len(accepted) == 3


@pytest.mark.parametrize(
    "response",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",  # the fast path
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\nx",  # llhttp
    ],
)
def test_responses_arriving_byte_by_byte(serve: Any, response: bytes) -> None:
    # each response trickles in one byte at a time, twice on one connection
    def handler(sock: Any) -> None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        while _read_request(sock):
            for i in range(len(response)):
                sock.sendall(response[i : i + 1])
                gevent.sleep(0.0005)

    client = serve(handler)
    assert [client.outcome(), client.outcome()] == ["200", "200"]
    assert client.conn.sock is not None  # kept alive


def test_a_large_request_is_written_whole(serve: Any) -> None:
    # 8 MB does not fit a socket buffer: the rest is written as the server reads
    size = 8 << 20
    got = []

    def handler(sock: Any) -> None:
        buf = b""
        while len(buf) < size + 64:
            data = sock.recv(1 << 20)
            if not data:
                break
            buf += data
            if buf.endswith(b"x" * 16) and len(buf) >= size:
                break
        got.append(len(buf))
        sock.sendall(OK)

    client = serve(handler)
    request = b"POST / HTTP/1.1\r\nContent-Length: %d\r\n\r\n" % size + b"x" * size
    assert client.outcome(request) == "200"
    assert got == [len(request)]


def test_a_connection_closed_while_idle_is_renewed(serve: Any) -> None:
    # the server closes each connection after one response without saying so: before the
    # next request the idle connection is found closed and replaced, nothing is retried
    def handler(sock: Any) -> None:
        _read_request(sock)
        sock.sendall(OK)
        gevent.sleep(0.01)
        sock.close()

    client = serve(handler)
    outcomes = []
    for _ in range(3):
        outcomes.append(client.outcome())
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

    assert serve(handler).outcome() == outcome


def test_refused() -> None:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()  # nothing listens there now
    target = Target.parse(f"http://127.0.0.1:{port}")
    client = Client(target)
    assert client.outcome() == "refused"
    assert client.outcome() == "refused"  # and again: a failure never poisons the connection
    client.conn.close()
    assert address.probe(target) == "connection refused"


def test_a_stalled_exchange_expired_by_the_watchdog_is_a_timeout(serve: Any) -> None:
    def handler(sock: Any) -> None:
        _read_request(sock)
        gevent.sleep(10)

    client = serve(handler)

    def watchdog() -> None:
        gevent.sleep(0.05)
        client.conn.expire()

    gevent.spawn(watchdog)
    assert client.outcome() == "timeout"
    assert client.conn.sock is None


def test_tls(tmp_path: Any) -> None:
    # https: the handshake and the exchange run on the loop like plain TCP
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    made = subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        capture_output=True, check=False,
    )  # fmt: skip
    if made.returncode != 0:
        pytest.skip("openssl cannot make a certificate here")

    def handler(sock: Any) -> None:
        while _read_request(sock):
            sock.sendall(OK)

    served = gevent.ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)  # the server side is gevent's
    served.load_cert_chain(str(cert), str(key))
    server = StreamServer(("127.0.0.1", 0), lambda s, _a: handler(s), ssl_context=served)
    server.start()
    try:
        target = Target.parse(f"https://127.0.0.1:{server.server_port}")
        trusted = ssl.create_default_context(cafile=str(cert))
        family, addr = address.resolve(target)
        client = Client(target)
        client.conn = Connection(target, addr, family, client._done, context=trusted)
        assert [client.outcome() for _ in range(3)] == ["200"] * 3
        untrusted = Client(target)  # the default context does not know this certificate
        assert untrusted.outcome() == "other"
        client.conn.close()
        untrusted.conn.close()
    finally:
        server.stop(timeout=1)


@pytest.mark.parametrize(
    ("exc", "outcome"),
    [
        (ConnectionRefusedError(), "refused"),
        (ConnectionResetError(), "reset"),
        (BrokenPipeError(), "reset"),
        (outcomes.ClosedError(0), "closed"),
        (TimeoutError(), "timeout"),
        (OSError(113, "no route to host"), "other"),
        (ValueError("?"), "other"),
    ],
)
def test_classify(exc: BaseException, outcome: str) -> None:
    assert outcomes.classify(exc) == outcome


def test_a_connection_opened_ahead_fails_silently() -> None:
    # connect() before any request: a refusal is no outcome; the first request reports it
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    client = Client(Target.parse(f"http://127.0.0.1:{port}"))
    client.conn.connect()
    gevent.sleep(0.05)
    assert client.conn.ready and client.outcomes == []
    assert client.outcome() == "refused"


def test_a_connection_opened_ahead_is_used(serve: Any) -> None:
    accepted = []

    def handler(sock: Any) -> None:
        accepted.append(1)
        while _read_request(sock):
            sock.sendall(OK)

    client = serve(handler)
    client.conn.connect()
    while not client.conn.ready:
        gevent.sleep(0.001)
    assert client.conn.sock is not None and client.outcomes == []
    assert [client.outcome(), client.outcome()] == ["200", "200"]
    assert len(accepted) == 1
