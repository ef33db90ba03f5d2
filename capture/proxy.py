"""A reverse proxy that hands each request it forwards to a tap: the engine of `capture record`.

One gevent greenlet per client connection, paired with one upstream connection (opened on
the first request, kept alive while both sides keep it). Per request:

    read the head (and the body: Content-Length, or chunked, which is decoded), answering
    ``100 Continue`` itself when the client expects it; give the request to the tap; send it
    upstream with ``Host`` set to the upstream's (a chunked body goes with Content-Length);
    relay the response's bytes to the client as they arrive, unchanged (status, headers,
    body, chunked or gzip); tell the tap the status.

The end of a response is found by replay/wire.py's fast head parser for the common response
(one Content-Length) and by llhttp for the rest (chunked, close-delimited, 1xx first). An
upstream that cannot be reached, resets or closes before answering gives the client a 502
(and the tap `failed`); one that does not answer within the timeout a 504. A request head
that is not HTTP gets a 400, a head over 64 KiB a 431, a body over `max_body` a 413; the
connection is closed after each of these. The tap is called from the proxy's greenlets and
must return at once: recording never holds up forwarding.
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

import gevent
from gevent import monkey
from gevent import socket as gsocket
from gevent import ssl as gssl
from gevent.server import StreamServer
from geventhttpclient._parser import HTTPParseError, HTTPResponseParser

from replay.wire import MORE, parse_head

RECV_SIZE = 65536
MAX_HEAD = 64 * 1024
MAX_BODY = 64 * 1024 * 1024
IDLE_CHECK_NS = 2_000_000_000  # an upstream connection idle this long is checked before reuse
_SELECT = monkey.get_original("select", "select")  # a real zero-timeout select, not gevent's


class Tap(Protocol):
    """What the proxy tells about each request; every call must return at once."""

    def request(self, method: str, target: str, headers: list[tuple[str, str]], body: bytes) -> Any:
        """A whole request has arrived (before it is forwarded): a token, or None to ignore it."""

    def answered(self, token: Any, status: int, latency_ns: int) -> None:
        """The upstream answered the request with `status`."""

    def failed(self, token: Any) -> None:
        """The upstream never answered (refused, reset, closed, timed out)."""


@dataclass(frozen=True)
class Upstream:
    """Where requests go: from --upstream URL (http or https, optional base path)."""

    url: str
    scheme: str
    host: str
    port: int
    base_path: str

    @classmethod
    def parse(cls, url: str) -> Upstream:
        """Raises ValueError with a message fit for the user."""
        parts = urlsplit(url.strip())
        if parts.scheme not in ("http", "https"):
            raise ValueError(f"--upstream {url!r}: use an http:// or https:// URL")
        if not parts.hostname:
            raise ValueError(f"--upstream {url!r} names no host")
        if parts.username is not None or parts.password is not None:
            raise ValueError(
                f"--upstream {parts.scheme}://...@{parts.hostname}: credentials in the URL are "
                "not supported (they would be recorded); clients send their own"
            )
        if parts.query or parts.fragment:
            raise ValueError(f"--upstream {url!r}: a base URL has no query or fragment")
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            raise ValueError(f"--upstream {url!r} has an invalid port") from None
        return cls(url.strip(), parts.scheme, parts.hostname, port, parts.path.rstrip("/"))

    @property
    def tls(self) -> bool:
        return self.scheme == "https"

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == (443 if self.tls else 80) else f"{host}:{self.port}"

    def probe(self, timeout: float = 5.0) -> str | None:
        """Whether the upstream accepts connections now: None, or why it does not."""
        try:
            with socket.create_connection((self.host, self.port), timeout=timeout):
                return None
        except ConnectionRefusedError:
            return "connection refused"
        except TimeoutError:
            return f"no answer within {timeout:g}s"
        except OSError as exc:
            return exc.strerror or str(exc)


class BadRequest(Exception):
    """A request the proxy answers itself (400, 413, 431, 501) and then closes."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class UpstreamError(Exception):
    """The upstream failed before its answer began: the client gets `status` (502 or 504)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


@dataclass
class RequestHead:
    method: str
    target: str  # origin form: /path?query
    version: bytes
    headers: list[tuple[str, str]]
    length: int  # Content-Length, 0 without one
    chunked: bool
    keep_alive: bool
    expects_continue: bool


_REASONS = {
    400: b"Bad Request",
    413: b"Content Too Large",
    431: b"Request Header Fields Too Large",
    501: b"Not Implemented",
    502: b"Bad Gateway",
    504: b"Gateway Timeout",
}
_TOKEN_CHARS = frozenset(
    b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
)


def parse_request_head(head: bytes) -> RequestHead:
    """A request head without its final CRLF CRLF; raises BadRequest."""
    lines = head.split(b"\r\n")
    parts = lines[0].split(b" ")
    if len(parts) != 3 or not parts[0] or not _TOKEN_CHARS.issuperset(parts[0]):
        raise BadRequest(400, "malformed request line")
    method, target, version = parts
    if version not in (b"HTTP/1.1", b"HTTP/1.0"):
        raise BadRequest(400 if not version.startswith(b"HTTP/") else 501, "unsupported version")
    if target[:1] != b"/":
        split = urlsplit(target.decode("latin-1"))
        if split.scheme not in ("http", "https") or not split.netloc:
            raise BadRequest(400, "request target is neither a path nor an absolute URL")
        target = (split.path or "/").encode("latin-1") + (
            b"?" + split.query.encode("latin-1") if split.query else b""
        )
    headers: list[tuple[str, str]] = []
    length = -1
    chunked = False
    connection = b""
    expects = False
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        if not colon or not name or not _TOKEN_CHARS.issuperset(name):
            raise BadRequest(400, "malformed header line")
        value = value.strip(b" \t")
        lower = name.lower()
        if lower == b"content-length":
            if not value.isdigit() or (length >= 0 and int(value) != length):
                raise BadRequest(400, "bad Content-Length")
            length = int(value)
        elif lower == b"transfer-encoding":
            if value.lower() != b"chunked" or chunked:
                raise BadRequest(501, "unsupported Transfer-Encoding")
            chunked = True
        elif lower == b"connection":
            connection = value.lower()
        elif lower == b"expect" and value.lower() == b"100-continue":
            expects = True
        headers.append((name.decode("latin-1"), value.decode("latin-1")))
    if chunked and length >= 0:
        raise BadRequest(400, "both Content-Length and Transfer-Encoding")
    keep = b"close" not in connection if version == b"HTTP/1.1" else b"keep-alive" in connection
    return RequestHead(
        method.decode("ascii"),
        target.decode("latin-1"),
        version,
        headers,
        max(length, 0),
        chunked,
        keep,
        expects,
    )


class _Response(HTTPResponseParser):
    """llhttp, told only where the final (non-1xx) response ends."""

    def __init__(self, head: bool) -> None:
        super().__init__()
        self.head = head
        self.done = False

    def _on_message_begin(self) -> None:
        pass

    def _on_status(self, _status: Any) -> None:
        pass

    def _on_header_field(self, _name: Any) -> None:
        pass

    def _on_header_value(self, _value: Any) -> None:
        pass

    def _on_headers_complete(self) -> bool:
        return self.head and self.get_code() >= 200

    def _on_body(self, _data: Any) -> None:
        pass

    def _on_message_complete(self) -> None:
        code = self.get_code()
        if code >= 200 or code == 101:
            self.done = True


class ReverseProxy:
    """Listens on (host, port), forwards to `upstream`, tells `tap` about every request."""

    def __init__(
        self,
        host: str,
        port: int,
        upstream: Upstream,
        tap: Tap | None = None,
        *,
        timeout: float = 60.0,
        max_body: int = MAX_BODY,
        clock: Callable[[], int] = time.monotonic_ns,
    ) -> None:
        self.upstream = upstream
        self.tap: Tap = tap if tap is not None else _NoTap()
        self.timeout = timeout
        self.max_body = max_body
        self.clock = clock
        self._host_line = f"Host: {upstream.host_header}\r\n".encode("latin-1")
        self._base = upstream.base_path.encode("latin-1")
        self._tls = gssl.create_default_context() if upstream.tls else None
        self._server = StreamServer((host, port), self._handle)
        self._idle: set[Any] = set()  # handlers waiting for a request on a kept-alive connection
        self.connections = 0
        self.requests = 0
        self.failures = 0  # answered by the proxy with 502 or 504

    def bind(self) -> tuple[str, int]:
        """Bind the listening socket (OSError: the address is in use); the bound address."""
        self._server.init_socket()
        address: tuple[str, int] = self._server.address[:2]
        return address

    def start(self) -> None:
        """Start accepting (binding first if `bind` was not called)."""
        self._server.start()

    def close(self, grace: float = 5.0) -> None:
        """Stop accepting, end idle connections, give exchanges in flight up to `grace`
        seconds to finish, then cut them."""
        self._server.close()
        gevent.killall(list(self._idle))
        self._server.stop(timeout=grace)

    # --- one client connection -----------------------------------------------------------

    def _handle(self, client: Any, _address: Any) -> None:
        self.connections += 1
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        up: list[Any] = [None, 0]  # the upstream socket and when it was last used
        buf = b""
        idle, me = self._idle, gevent.getcurrent()
        try:
            while True:
                end = buf.find(b"\r\n\r\n")
                while end < 0:
                    if len(buf) > MAX_HEAD:
                        raise BadRequest(431, "request head too large")
                    if buf:
                        data = client.recv(RECV_SIZE)
                    else:  # between requests: the connection may be ended at once on close
                        idle.add(me)
                        try:
                            data = client.recv(RECV_SIZE)
                        finally:
                            idle.discard(me)
                    if not data:
                        return
                    buf += data
                    end = buf.find(b"\r\n\r\n")
                if end > MAX_HEAD:
                    raise BadRequest(431, "request head too large")
                req = parse_request_head(buf[:end])
                buf = buf[end + 4 :]
                if req.chunked:
                    body, buf = self._chunked(client, buf, req)
                else:
                    if req.length > self.max_body:
                        raise BadRequest(413, "body too large")
                    if req.expects_continue and len(buf) < req.length:
                        client.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
                    while len(buf) < req.length:
                        data = client.recv(RECV_SIZE)
                        if not data:
                            return
                        buf += data
                    body, buf = buf[: req.length], buf[req.length :]
                self.requests += 1
                if not self._exchange(client, up, req, body) or not req.keep_alive:
                    return
        except BadRequest as exc:
            with contextlib.suppress(OSError):
                client.sendall(_answer(exc.status, exc.reason))
        except (OSError, gevent.Timeout, gevent.GreenletExit):
            pass
        finally:
            _close(up[0])
            with contextlib.suppress(OSError):
                client.close()

    def _chunked(self, client: Any, buf: bytes, req: RequestHead) -> tuple[bytes, bytes]:
        """Decode a chunked body from `buf` and the socket: (body, bytes after it)."""
        if req.expects_continue and not buf:
            client.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        pieces: list[bytes] = []
        size = 0
        pos = 0
        while True:
            eol = buf.find(b"\r\n", pos)
            while eol < 0:
                if len(buf) - pos > 4096:
                    raise BadRequest(400, "malformed chunk size line")
                buf, pos = self._more(client, buf, pos)
                eol = buf.find(b"\r\n", pos)
            line = buf[pos:eol].split(b";", 1)[0].strip(b" \t")
            try:
                n = int(line, 16)
            except ValueError:
                raise BadRequest(400, "malformed chunk size") from None
            if n < 0:
                raise BadRequest(400, "malformed chunk size")
            pos = eol + 2
            if n == 0:
                break
            size += n
            if size > self.max_body:
                raise BadRequest(413, "body too large")
            while len(buf) < pos + n + 2:
                buf, pos = self._more(client, buf, pos)
            if buf[pos + n : pos + n + 2] != b"\r\n":
                raise BadRequest(400, "chunk not followed by CRLF")
            pieces.append(buf[pos : pos + n])
            pos += n + 2
        while True:  # trailer fields, up to the empty line
            eol = buf.find(b"\r\n", pos)
            while eol < 0:
                if len(buf) - pos > MAX_HEAD:
                    raise BadRequest(431, "trailers too large")
                buf, pos = self._more(client, buf, pos)
                eol = buf.find(b"\r\n", pos)
            if eol == pos:
                return b"".join(pieces), buf[pos + 2 :]
            pos = eol + 2

    @staticmethod
    def _more(client: Any, buf: bytes, pos: int) -> tuple[bytes, int]:
        data = client.recv(RECV_SIZE)
        if not data:
            raise OSError("client closed inside a chunked body")
        return buf[pos:] + data, 0

    def _request_bytes(self, req: RequestHead, body: bytes) -> bytes:
        lines = [
            f"{k}: {v}\r\n"
            for k, v in req.headers
            if (lower := k.lower()) != "host"
            and lower != "expect"
            and not (req.chunked and lower == "transfer-encoding")
        ]
        head = "".join(lines).encode("latin-1")
        if req.chunked:
            head += b"Content-Length: %d\r\n" % len(body)
        return b"%s %s%s %s\r\n%s%s\r\n%s" % (
            req.method.encode("ascii"),
            self._base,
            req.target.encode("latin-1"),
            req.version,
            self._host_line,
            head,
            body,
        )

    def _exchange(self, client: Any, up: list[Any], req: RequestHead, body: bytes) -> bool:
        """Forward one request and relay its answer; whether both connections may go on."""
        token = self.tap.request(req.method, req.target, req.headers, body)
        sent_ns = self.clock()
        relayed = False
        try:
            with gevent.Timeout(self.timeout, UpstreamError(504, "upstream timed out")):
                sock = self._upstream(up, sent_ns)
                try:
                    _send(sock, self._request_bytes(req, body))
                    first = sock.recv(RECV_SIZE)
                except OSError as exc:
                    raise UpstreamError(502, f"upstream failed: {exc}") from None
                if not first:
                    raise UpstreamError(502, "upstream closed without answering")
                relayed = True
                status, keep = self._relay(sock, client, first, req.method == "HEAD")
        except UpstreamError as exc:
            _close(up[0])
            up[0] = None
            if relayed:  # the answer had begun: the client's connection is all we can end
                if token is not None:
                    self.tap.failed(token)
                return False
            self.failures += 1
            if token is not None:
                self.tap.failed(token)
            client.sendall(_answer(exc.status, str(exc)))
            return False
        up[1] = self.clock()
        if token is not None:
            self.tap.answered(token, status, up[1] - sent_ns)
        if not keep:
            _close(up[0])
            up[0] = None
        return keep

    def _upstream(self, up: list[Any], now: int) -> Any:
        sock = up[0]
        if sock is not None and now - up[1] > IDLE_CHECK_NS and _closed_while_idle(sock):
            _close(sock)
            sock = up[0] = None
        if sock is None:
            try:
                sock = gsocket.create_connection((self.upstream.host, self.upstream.port))
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                if self._tls is not None:
                    sock = self._tls.wrap_socket(sock, server_hostname=self.upstream.host)
            except OSError as exc:
                raise UpstreamError(502, f"cannot reach the upstream: {exc}") from None
            up[0] = sock
        return sock

    def _relay(self, sock: Any, client: Any, data: bytes, head: bool) -> tuple[int, bool]:
        """Relay one response from its first bytes: (status, keep-alive), or UpstreamError."""
        buf = data
        while True:
            parsed = parse_head(buf, head)
            if parsed != MORE:
                break
            more = sock.recv(RECV_SIZE)
            if not more:
                raise UpstreamError(502, "upstream closed inside its answer's head")
            buf += more
        if isinstance(parsed, tuple):  # one Content-Length: count the bytes through
            status, length, keep = parsed
            if len(buf) >= length:
                _send(client, buf[:length] if len(buf) > length else buf)
                return status, keep and len(buf) == length
            _send(client, buf)
            rest = length - len(buf)
            while rest > 0:
                more = sock.recv(min(RECV_SIZE, rest))
                if not more:
                    raise UpstreamError(502, "upstream closed inside its answer")
                _send(client, more)
                rest -= len(more)
            return status, keep
        parser = _Response(head)  # chunked, close-delimited, 1xx first: llhttp decides
        while True:
            try:
                parser.feed(buf)
            except HTTPParseError:
                raise UpstreamError(502, "malformed answer from the upstream") from None
            _send(client, buf)
            if parser.done:
                return parser.get_code(), bool(parser.should_keep_alive())
            buf = sock.recv(RECV_SIZE)
            if not buf:
                with contextlib.suppress(HTTPParseError):
                    parser.feed(b"")
                if parser.done:  # a body delimited by the close
                    return parser.get_code(), False
                raise UpstreamError(502, "upstream closed inside its answer")


class _NoTap:
    """Forward only."""

    def request(self, method: str, target: str, headers: list[tuple[str, str]], body: bytes) -> Any:
        return None

    def answered(self, token: Any, status: int, latency_ns: int) -> None:
        pass

    def failed(self, token: Any) -> None:
        pass


def _answer(status: int, reason: str) -> bytes:
    body = (reason.replace("\r", " ").replace("\n", " ") + "\n").encode("latin-1", "replace")
    return (
        b"HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n"
        % (
            status,
            _REASONS.get(status, b"Error"),
            len(body),
        )
        + b"Connection: close\r\n\r\n"
        + body
    )


def _closed_while_idle(sock: Any) -> bool:
    """Whether an idle upstream connection has something to read: its close, usually."""
    try:
        return bool(_SELECT([sock.fileno()], [], [], 0)[0])
    except (OSError, ValueError):
        return True


def _send(sock: Any, data: bytes) -> None:
    """sendall, but one send() when the socket takes it all (the usual case): gevent's
    sendall asks the kernel for the buffer size and chunks first, twice per request."""
    sent = sock.send(data)
    if sent < len(data):
        sock.sendall(memoryview(data)[sent:])


def _close(sock: Any) -> None:
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.close()
