"""The recording proxy's socket I/O and deadlines (capture/proxyio.py), and what it sends
upstream of a request head (capture/proxyhttp.py's `forward`): the deadlines driven
directly on gevent's hub, a trickled request through a real proxy process, and the
forwarded head checked against the header lines the test wrote."""

from __future__ import annotations

import http.client
import socket
import subprocess
import sys
import time
from typing import Any

import gevent
import gevent.event
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from capture.proxyhttp import BadRequest, parse_request_head
from capture.proxyio import Conn, Deadlines, tick_for

PATH = "/api/public/traces"


@pytest.mark.parametrize(
    ("timeouts", "tick"),
    [
        ((60.0, 60.0), 1.0),  # the defaults: checked once a second
        ((0.5, 30.0), 0.0625),  # an eighth of the shortest
        ((0.01,), 0.01),  # never more often than every 10 ms
        ((30.0, 0.8), 0.1),
    ],
)
def test_the_tick_is_an_eighth_of_the_shortest_timeout_within_10_ms_and_1_s(
    timeouts: tuple[float, ...], tick: float
) -> None:
    assert tick_for(*timeouts) == pytest.approx(tick)


class Late(Exception):
    pass


def test_a_greenlet_past_its_deadline_gets_its_exception_and_the_others_go_on() -> None:
    deadlines = Deadlines(0.01)
    deadlines.start()
    never = gevent.event.Event()
    slots: dict[str, list[Any]] = {}

    def waiter(name: str, due: float, release: bool) -> str:
        me = gevent.getcurrent()
        slot = slots[name] = deadlines.slot(me)
        slot[0], slot[1] = due, Late(name)
        if release:
            deadlines.release(me)
        try:
            never.wait(30)
        finally:
            deadlines.release(me)
        return "woken"

    now = time.monotonic()
    late = gevent.spawn(waiter, "late", now + 0.05, False)
    moved = gevent.spawn(waiter, "moved", now + 0.05, False)
    released = gevent.spawn(waiter, "released", now + 0.05, True)
    gevent.sleep(0)  # all three registered and waiting
    slots["moved"][0] = float("inf")  # its phase changed: no deadline now
    late.join(30)
    try:
        assert isinstance(late.exception, Late) and str(late.exception) == "late"
        # The sweep that found "late" looked at every slot: the others are still waiting.
        assert not moved.dead and not released.dead
    finally:
        never.set()
        gevent.joinall([moved, released], timeout=30)
        deadlines.stop()
    assert (moved.value, released.value) == ("woken", "woken")


def test_a_conn_reads_what_comes_while_it_waits_and_while_it_does_not() -> None:
    # Real connected sockets on gevent's hub: a read that waits first gets bytes sent while
    # it waits; bytes that arrive while no one waits (the read watcher left started fires
    # and is stopped) are read by the next wait; an end of stream reads as b"".
    ours, theirs = socket.socketpair()
    conn = Conn(ours)
    theirs.setblocking(False)
    try:
        reader = gevent.spawn(conn.recv_ready, 100)
        gevent.sleep(0)  # the reader waits
        theirs.send(b"first")
        assert reader.get(timeout=30) == b"first"
        theirs.send(b"second")
        gevent.sleep(0.01)  # a turn of the loop with the watcher started and no one waiting
        assert gevent.spawn(conn.recv_ready, 100).get(timeout=30) == b"second"
        sender = gevent.spawn(conn.sendall, b"x" * 300_000)  # more than the socket buffer:
        got = b""  # its send waits for room, made as this reads
        while len(got) < 300_000:
            try:
                got += theirs.recv(65536)
            except BlockingIOError:
                gevent.sleep(0.001)
        assert got == b"x" * 300_000
        sender.get(timeout=30)
        theirs.close()
        assert gevent.spawn(conn.recv, 100).get(timeout=30) == b""
    finally:
        conn.close()
        theirs.close()


def test_a_conn_read_interrupted_by_its_deadline_can_wait_again() -> None:
    ours, theirs = socket.socketpair()
    conn = Conn(ours)
    deadlines = Deadlines(0.01)
    deadlines.start()

    def read_twice() -> tuple[str, bytes]:
        me = gevent.getcurrent()
        slot = deadlines.slot(me)
        slot[0], slot[1] = time.monotonic() + 0.02, Late("read")
        try:
            conn.recv_ready(100)
        except Late as exc:
            first = str(exc)
        theirs.send(b"after")
        deadlines.release(me)
        return first, conn.recv_ready(100)

    try:
        assert gevent.spawn(read_twice).get(timeout=30) == ("read", b"after")
    finally:
        deadlines.stop()
        conn.close()
        theirs.close()


TRICKLE_PROXY = """
import sys
import gevent
from capture.proxy import ReverseProxy
from capture.proxyhttp import Upstream

proxy = ReverseProxy("127.0.0.1", 0, Upstream.parse(sys.argv[1]), client_timeout=1.0)
host, port = proxy.bind()
proxy.start()
print(port, flush=True)
gevent.wait()
"""


def test_a_request_trickling_in_longer_than_the_client_timeout_is_forwarded(raw: Any) -> None:
    # client_timeout 1 s runs from the request's last bytes, not from its first: a request
    # sent in 12 pieces 0.1 s apart takes 1.2 s and is still forwarded whole.
    proc = subprocess.Popen(
        [sys.executable, "-c", TRICKLE_PROXY, raw.url], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())  # printed once it listens
        body = b'{"id":"trace-0001-000000000001","name":"' + b"x" * 100 + b'"}'
        request = b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (
            PATH.encode(),
            len(body),
            body,
        )
        step = -(-len(request) // 12)
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            for at in range(0, len(request), step):
                sock.sendall(request[at : at + step])
                time.sleep(0.1)
            response = http.client.HTTPResponse(sock)
            response.begin()
            assert response.status == 201  # the raw upstream's answer to a POST
            response.read()
        assert [(r.target, r.body) for r in raw.received] == [(PATH, body)]
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()  # type: ignore[union-attr]


_TOKEN = st.text("!#$%&'*+-.^_`|~0123456789abcdefXYZ", min_size=1, max_size=12)
_NAME = st.sampled_from(["Host", "HOST", "Expect", "Content-Type", "Connection", "X-Id"]) | _TOKEN
_VALUE = st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF), max_size=20)
_SPECIAL = st.sampled_from(
    [
        ("Expect", "100-continue"),
        ("transfer-encoding", "chunked"),
        ("Content-Length", "0"),
        ("Connection", "close"),
    ]
)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(_SPECIAL | st.tuples(_NAME, _VALUE), max_size=8),
    st.sampled_from(["", " ", "\t "]),
)
def test_the_forwarded_head_is_the_received_lines_less_host_expect_and_transfer_encoding(
    fields: list[tuple[str, str]], pad: str
) -> None:
    lines = [f"{name}:{pad}{value}".encode("latin-1") for name, value in fields]
    head = b"\r\n".join([b"POST /p?q=1 HTTP/1.1", *lines])
    try:
        parsed = parse_request_head(head)
    except BadRequest:
        return  # refused heads are answered by the proxy, never forwarded
    dropped = {"host", "expect", "transfer-encoding"}
    kept = [
        line for (name, _), line in zip(fields, lines, strict=True) if name.lower() not in dropped
    ]
    assert parsed.forward == b"".join(b"\r\n" + line for line in kept)
    again = parse_request_head(b"POST /p?q=1 HTTP/1.1" + parsed.forward)
    assert again.headers == [(n, v) for n, v in parsed.headers if n.lower() not in dropped]
