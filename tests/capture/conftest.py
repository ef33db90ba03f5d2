"""Fixtures of the capture tests (which also share `production.py`, a synthetic production
fleet, by plain import): `raw`, an upstream for the recording proxy that answers with
exact, canned bytes.

A thread per connection on 127.0.0.1 (real sockets): it reads each request (Content-Length
bodies only: the proxy never forwards chunked), keeps what it received, and answers by path:

    /chunked   a chunked, gzip-encoded JSON answer, in three chunks
    /close     an HTTP/1.0-style answer delimited by closing the connection
    /head      (for HEAD) a Content-Length with no body
    anything   a small JSON answer with Content-Length

so a test can compare the bytes its client gets through the proxy with `ANSWERS`.
"""

from __future__ import annotations

import contextlib
import gzip
import socket
import ssl
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

GZIPPED = gzip.compress(b'{"status":"accepted","note":"' + b"gzip " * 200 + b'"}', mtime=0)
_PIECES = (GZIPPED[:10], GZIPPED[10:50], GZIPPED[50:])
ANSWERS = {
    "/chunked": (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\n"
        b"Transfer-Encoding: chunked\r\nX-Upstream: raw\r\n\r\n"
        + b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in _PIECES)
        + b"0\r\n\r\n"
    ),
    "/close": (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\nuntil the end"
    ),
    "/head": b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 1234\r\n\r\n",
    "": (
        b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nX-Upstream: raw\r\n"
        b'Content-Length: 21\r\n\r\n{"status":"accepted"}'
    ),
}


@dataclass
class Received:
    method: str
    target: str
    headers: dict[str, str]
    body: bytes
    connection: int  # which accepted connection it came on


@dataclass
class RawUpstream:
    """Start with `start()`, stop with `stop()`; `received` lists every request seen."""

    received: list[Received] = field(default_factory=list)
    connections: int = 0
    port: int = 0
    answers: dict[str, bytes] = field(default_factory=lambda: dict(ANSWERS))

    tls: ssl.SSLContext | None = None  # serve HTTPS with this context
    close_after: int = 0  # close each connection after this many answers, without saying so

    def start(self) -> RawUpstream:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()
        return self

    @property
    def url(self) -> str:
        if self.tls is not None:
            return f"https://localhost:{self.port}"
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the accepting thread
        self._listener.close()
        self._thread.join(timeout=5)

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn, self.connections), daemon=True).start()

    def _serve(self, conn: socket.socket, number: int) -> None:
        with contextlib.suppress(OSError):  # a proxy killed mid-request resets
            if self.tls is not None:
                conn = self.tls.wrap_socket(conn, server_side=True)
            with conn:
                self._exchanges(conn, number)

    def _exchanges(self, conn: socket.socket, number: int) -> None:
        buf = b""
        while True:
            while b"\r\n\r\n" not in buf:
                data = conn.recv(65536)
                if not data:
                    return
                buf += data
            head, buf = buf.split(b"\r\n\r\n", 1)
            lines = head.decode("latin-1").split("\r\n")
            method, target, _version = lines[0].split(" ")
            headers = {
                k.strip().lower(): v.strip() for k, v in (x.split(":", 1) for x in lines[1:])
            }
            length = int(headers.get("content-length", "0"))
            pieces, have = [buf], len(buf)  # joined once: a body of many MiB in linear time
            while have < length:
                data = conn.recv(65536)
                if not data:
                    return
                pieces.append(data)
                have += len(data)
            buf = b"".join(pieces)
            body, buf = buf[:length], buf[length:]
            self.received.append(Received(method, target, headers, body, number))
            path = target.split("?")[0]
            answer = ANSWERS.get(path, ANSWERS[""])
            conn.sendall(answer)
            answered = sum(r.connection == number for r in self.received)
            if path == "/close" or answered == self.close_after:
                return


@pytest.fixture
def raw() -> Iterator[RawUpstream]:
    upstream = RawUpstream().start()
    yield upstream
    upstream.stop()


@pytest.fixture
def raw_tls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RawUpstream, Path]]:
    """An HTTPS RawUpstream for `localhost`, and the CA file that trusts it."""
    import trustme

    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(context)
    ca_file = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    upstream = RawUpstream(tls=context).start()
    yield upstream, ca_file
    upstream.stop()
