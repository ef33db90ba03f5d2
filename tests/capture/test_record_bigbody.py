"""`capture record` with large request bodies and stopped with requests in flight: the proxy
as its own process (the `proxy` fixture of test_record.py) in front of the canned-bytes
upstream (`raw`, conftest.py), real clients on loopback."""

from __future__ import annotations

import contextlib
import json
import random
import signal
import socket
import threading
import time
from pathlib import Path
from typing import Any

import production as prod
from test_import import capture, records
from test_record import meta_extra, proxy, read_all

__all__ = ["proxy"]  # the fixture, shared with test_record.py

MIB = 1 << 20


def _chunked(body: bytes, sizes: list[int]) -> bytes:
    """`body` in chunks of the given sizes (the last one takes the rest)."""
    out, pos = [], 0
    for size in [*sizes, len(body)]:
        piece = body[pos : pos + size]
        if piece:
            out.append(b"%x\r\n%s\r\n" % (len(piece), piece))
        pos += len(piece)
    return b"".join(out) + b"0\r\n\r\n"


def _answer(sock: socket.socket) -> bytes:
    """One answer of the raw upstream's default kind (Content-Length: 21) from `sock`."""
    got = b""
    while not got.endswith(b'{"status":"accepted"}'):
        data = sock.recv(65536)
        assert data, f"closed after {got!r}"
        got += data
    return got


def test_multi_mib_bodies_are_forwarded_byte_for_byte(proxy: Any, raw: Any) -> None:
    # Bodies of many reads, Content-Length and chunked (chunks smaller and larger than one
    # read, some split across reads), arrive upstream exactly as sent, on one connection.
    rng = random.Random(7)
    plain = rng.randbytes(9 * MIB + 123)
    chunked = rng.randbytes(7 * MIB + 45)
    sizes = [1, 5000, 3 * MIB, 70_000, 17, 2 * MIB + 1]
    p = proxy(raw.url, "--path", "/")
    with socket.create_connection((p.host, p.port), timeout=30) as sock:
        head = b"POST /upload HTTP/1.1\r\nHost: c\r\nContent-Length: %d\r\n\r\n" % len(plain)
        sock.sendall(head + plain)
        _answer(sock)
        head = b"POST /upload2 HTTP/1.1\r\nHost: c\r\nTransfer-Encoding: chunked\r\n\r\n"
        sock.sendall(head + _chunked(chunked, sizes))
        _answer(sock)
    assert [(r.target, len(r.body)) for r in raw.received] == [
        ("/upload", len(plain)),
        ("/upload2", len(chunked)),
    ]
    assert raw.received[0].body == plain
    assert raw.received[1].body == chunked
    assert raw.received[1].headers["content-length"] == str(len(chunked))
    code, err = p.finish()
    assert code == 0, err
    assert [len(r.body) for r in read_all(p.output)] == [len(plain), len(chunked)]


class HeldUpstream:
    """A loopback upstream that answers each request only once `release` is set; `arrived`
    is set when a whole request has come in."""

    ANSWER = b'HTTP/1.1 201 Created\r\nContent-Length: 21\r\n\r\n{"status":"accepted"}'

    def __init__(self) -> None:
        self.arrived = threading.Event()
        self.release = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                conn, _ = self.listener.accept()
                threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError):
            buf = b""
            while not buf.endswith(b'{"id":"held"}'):
                data = conn.recv(65536)
                if not data:
                    return  # the start's probe
                buf += data
            self.arrived.set()
            self.release.wait(30)
            conn.sendall(self.ANSWER)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()


def _refused(host: str, port: int) -> bool:
    """Whether the proxy no longer accepts: refused, or reset when the listener closed with
    this connection still in its backlog."""
    try:
        socket.create_connection((host, port), timeout=5).close()
    except (ConnectionRefusedError, ConnectionResetError):
        return True
    return False


def test_sigterm_lets_an_exchange_in_flight_finish_and_records_it(proxy: Any) -> None:
    upstream = HeldUpstream()
    try:
        p = proxy(upstream.url)
        got: list[tuple[int, bytes]] = []

        def client() -> None:
            conn = p.connection()
            conn.request("POST", "/api/public/traces", body=b'{"id":"held"}')
            response = conn.getresponse()
            got.append((response.status, response.read()))
            conn.close()

        thread = threading.Thread(target=client)
        thread.start()
        assert upstream.arrived.wait(30)  # the request is with the upstream: in flight
        p.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 30  # the proxy stops accepting: it is stopping
        while not _refused(p.host, p.port) and time.monotonic() < deadline:
            time.sleep(0.005)
        upstream.release.set()
        thread.join(30)
        _, err = p.proc.communicate(timeout=60)
    finally:
        upstream.release.set()
        upstream.close()
    assert got == [(201, b'{"status":"accepted"}')]
    assert p.proc.returncode == 0, err
    [record] = read_all(p.output)
    assert (record.body, record.status) == (b'{"id":"held"}', 201)


def test_a_body_over_the_corpus_limit_is_forwarded_counted_and_recording_goes_on(
    proxy: Any, raw: Any
) -> None:
    # The proxy forwards bodies up to 64 MiB, a corpus holds one of at most 32 MiB: such a
    # request is forwarded, not recorded, counted, and the requests after it are recorded.
    big = b'{"id":"big","pad":"' + b"x" * (33 * MIB) + b'"}'
    p = proxy(raw.url)
    conn = p.connection()
    for body in (b'{"id":"before"}', big, b'{"id":"after1"}', b'{"id":"after2"}'):
        conn.request("POST", "/api/public/traces", body=body)
        response = conn.getresponse()
        assert (response.status, response.read()) == (201, b'{"status":"accepted"}')
    conn.close()
    assert [len(r.body) for r in raw.received][1] == len(big)
    code, err = p.finish()
    assert code == 0, err
    assert "3 of 4 requests recorded" in err
    assert "1 body over a corpus's 32 MiB" in err
    assert [r.body for r in read_all(p.output)] == [
        b'{"id":"before"}',
        b'{"id":"after1"}',
        b'{"id":"after2"}',
    ]
    counts = meta_extra(p.output)["recording"]
    assert isinstance(counts, dict)
    assert (counts["requests"], counts["recorded"], counts["body_too_large"]) == (4, 3, 1)


def test_import_har_skips_and_counts_a_body_over_the_corpus_limit(tmp_path: Path) -> None:
    big = prod.Request(prod.EPOCH_NS, "POST", "/api/public/traces", (), b"y" * (33 * MIB))
    ok = prod.Request(prod.EPOCH_NS + 1, "POST", "/api/public/traces", (), b'{"id":"ok"}')
    har = tmp_path / "big.har"
    har.write_text(json.dumps(prod.har([prod.har_entry(big), prod.har_entry(ok)])))
    out = tmp_path / "big.atc"
    result = capture("import", "har", str(har), "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert "1 of 2 requests written" in result.stderr
    assert "skipped 1 bodies over 32 MiB" in result.stderr
    assert [bytes(r.body) for r in records(out)] == [b'{"id":"ok"}']
