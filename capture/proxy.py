"""A reverse proxy that hands each request it forwards to a tap: the engine of `capture record`.

One gevent greenlet per client connection, paired with one upstream connection (opened on
the first request, kept alive while both sides keep it). Per request:

    read the head (and the body: Content-Length, or chunked, which is decoded), answering
    ``100 Continue`` itself when the client expects it; give the request to the tap; send it
    upstream with ``Host`` set to the upstream's (a chunked body goes with Content-Length);
    relay the response's bytes to the client as they arrive, unchanged (status, headers,
    body, chunked or gzip); tell the tap the status.

The end of a response is found by replay/wire.py's fast head parser for the common response
(one Content-Length) and by llhttp for the rest (chunked, close-delimited, 1xx first). A kept-
alive upstream connection closed or reset before any answer (the upstream timed it out as the
request went out) is replaced and the request sent once more; otherwise an upstream that
cannot be reached, resets or closes before answering gives the client a 502
(and the tap `failed`); one that does not answer within the timeout a 504. A request head
that is not HTTP gets a 400, a head over 64 KiB a 431, a body over `max_body` a 413, and one
that does not arrive whole within `client_timeout` of its last bytes a 408; the connection
is closed after each of these. A kept-alive client connection that sends no new request
within `client_timeout` is closed, as a server's keep-alive timeout closes it: a client
cannot hold a connection (and its greenlet) for ever by saying nothing. The sockets are read
and written, and these timeouts kept, by capture/proxyio.py. The tap is called from the
proxy's greenlets and must return at once: recording never holds up forwarding.
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Callable
from typing import Any, Protocol

import gevent
from gevent import monkey
from gevent import socket as gsocket
from gevent import ssl as gssl
from gevent.pool import Pool
from gevent.server import StreamServer
from geventhttpclient._parser import HTTPParseError, HTTPResponseParser

from capture.answerpoll import AnswerPoll
from capture.proxyhttp import BadRequest, RequestHead, Upstream, answer, parse_request_head
from capture.proxyio import Conn, Deadlines, TLSConn, plain, tick_for
from capture.response_head import MORE, parse_head

RECV_SIZE = 65536
MAX_HEAD = 64 * 1024
MAX_BODY = 64 * 1024 * 1024
IDLE_CHECK_NS = 2_000_000_000  # an upstream connection idle this long is checked before reuse
BUSY_POLL_NS = 200_000  # poll for answers that lately came back this soon (capture/answerpoll.py)
CLIENT_TIMEOUT = 60.0  # s a client may keep silent: idle between requests, or inside one
_HEX = frozenset(b"0123456789abcdefABCDEF")
_SELECT = monkey.get_original("select", "select")  # a real zero-timeout select, not gevent's


class Tap(Protocol):
    """What the proxy tells about each request; every call must return at once."""

    def request(self, method: str, target: str, headers: list[tuple[str, str]], body: bytes) -> Any:
        """A whole request has arrived (before it is forwarded): a token, or None to ignore it."""

    def answered(self, token: Any, status: int, latency_ns: int) -> None:
        """The upstream answered the request with `status`."""

    def failed(self, token: Any) -> None:
        """The upstream never answered (refused, reset, closed, timed out)."""


class UpstreamError(Exception):
    """The upstream failed before its answer began: the client gets `status` (502 or 504)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


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
        client_timeout: float = CLIENT_TIMEOUT,
        max_body: int = MAX_BODY,
        busy_poll_ns: int = BUSY_POLL_NS,
        clock: Callable[[], int] = time.monotonic_ns,
    ) -> None:
        self.upstream = upstream
        self.tap: Tap = tap if tap is not None else _NoTap()
        self.timeout = timeout
        self.client_timeout = client_timeout
        self.max_body = max_body
        self.clock = clock
        self._host_line = f"Host: {upstream.host_header}".encode("latin-1")
        self._base = upstream.base_path.encode("latin-1")
        self._tls = gssl.create_default_context() if upstream.tls else None
        # A pool, even unbounded, is what makes stop() wait for the handlers in flight.
        self._server = StreamServer((host, port), self._handle, spawn=Pool())
        self._idle: set[Any] = set()  # handlers waiting for a request on a kept-alive connection
        self._deadlines = Deadlines(tick_for(timeout, client_timeout))
        self._poll = AnswerPoll(busy_poll_ns, clock)
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
        self._deadlines.start()
        self._server.start()

    def close(self, grace: float = 5.0) -> None:
        """Stop accepting, end idle connections, give exchanges in flight up to `grace`
        seconds to finish, then cut them."""
        self._server.close()
        gevent.killall(list(self._idle))
        self._server.stop(timeout=grace)
        self._deadlines.stop()
        self._poll.close()

    # --- one client connection -----------------------------------------------------------

    def _handle(self, gclient: Any, _address: Any) -> None:
        self.connections += 1
        gclient.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        client = plain(gclient)
        up: list[Any] = [None, 0]  # the upstream connection and when it was last used
        me = gevent.getcurrent()
        # When this connection must give up, and how: silent past client_timeout (waiting
        # for or inside a request), or no whole answer within timeout (exchanging).
        due = self._deadlines.slot(me)
        silent, late = TimeoutError("client silent"), UpstreamError(504, "upstream timed out")
        buf = b""
        exchanging = False  # forwarding a request and relaying its answer
        answered = False  # a request was answered on this connection: the next comes later
        idle = self._idle
        try:
            while True:
                due[0], due[1] = time.monotonic() + self.client_timeout, silent
                end = buf.find(b"\r\n\r\n")
                while end < 0:
                    if len(buf) > MAX_HEAD:
                        raise BadRequest(431, "request head too large")
                    if buf:
                        data = client.recv(RECV_SIZE)
                    else:  # between requests: the connection may be ended at once on close
                        idle.add(me)
                        try:
                            data = (client.recv_ready if answered else client.recv)(RECV_SIZE)
                        except TimeoutError:
                            return  # silent past client_timeout between requests: closed
                        finally:
                            idle.discard(me)
                    if not data:
                        return
                    buf += data
                    due[0] = time.monotonic() + self.client_timeout  # from its last bytes
                    end = buf.find(b"\r\n\r\n")
                if end > MAX_HEAD:
                    raise BadRequest(431, "request head too large")
                req = parse_request_head(buf[:end])
                buf = buf[end + 4 :]
                if req.chunked:
                    body, buf = self._chunked(client, buf, req, due)
                else:
                    if req.length > self.max_body:
                        raise BadRequest(413, "body too large")
                    if req.expects_continue and len(buf) < req.length:
                        client.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
                    if len(buf) < req.length:
                        buf, _ = self._more(client, buf, 0, due, req.length - len(buf))
                    body, buf = buf[: req.length], buf[req.length :]
                self.requests += 1
                exchanging = True
                due[0], due[1] = time.monotonic() + self.timeout, late
                if not self._exchange(client, up, req, body, due) or not req.keep_alive:
                    return
                exchanging = False
                answered = True
        except TimeoutError:  # silent past client_timeout inside a request
            if not exchanging:
                self._last_words(client, due, answer(408, "request not received in time"))
        except BadRequest as exc:
            self._last_words(client, due, answer(exc.status, exc.reason))
        except (OSError, UpstreamError, gevent.GreenletExit):
            pass
        finally:
            self._deadlines.release(me)
            _close(up[0])
            client.close()

    def _last_words(self, client: Conn, due: list[Any], data: bytes) -> None:
        """The proxy's own answer before it closes, if the client takes it in time."""
        due[0], due[1] = time.monotonic() + self.client_timeout, TimeoutError("client silent")
        with contextlib.suppress(OSError):
            client.sendall(data)

    def _chunked(
        self, client: Conn, buf: bytes, req: RequestHead, due: list[Any]
    ) -> tuple[bytes, bytes]:
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
                buf, pos = self._more(client, buf, pos, due)
                eol = buf.find(b"\r\n", pos)
            line = buf[pos:eol].split(b";", 1)[0].strip(b" \t")
            if not line or len(line) > 16 or not _HEX.issuperset(line):
                raise BadRequest(400, "malformed chunk size")
            n = int(line, 16)
            pos = eol + 2
            if n == 0:
                break
            size += n
            if size > self.max_body:
                raise BadRequest(413, "body too large")
            if len(buf) < pos + n + 2:
                buf, pos = self._more(client, buf, pos, due, pos + n + 2 - len(buf))
            if buf[pos + n : pos + n + 2] != b"\r\n":
                raise BadRequest(400, "chunk not followed by CRLF")
            pieces.append(buf[pos : pos + n])
            pos += n + 2
        while True:  # trailer fields, up to the empty line
            eol = buf.find(b"\r\n", pos)
            while eol < 0:
                if len(buf) - pos > MAX_HEAD:
                    raise BadRequest(431, "trailers too large")
                buf, pos = self._more(client, buf, pos, due)
                eol = buf.find(b"\r\n", pos)
            if eol == pos:
                return b"".join(pieces), buf[pos + 2 :]
            pos = eol + 2

    def _more(
        self, client: Conn, buf: bytes, pos: int, due: list[Any], need: int = 1
    ) -> tuple[bytes, int]:
        """`buf` from `pos` and at least `need` more bytes from the client: (bytes, 0).
        The reads are joined once, so a body of many reads is copied a bounded number of
        times, not once per read."""
        pieces = [buf[pos:] if pos else buf]
        while need > 0:
            data = client.recv(RECV_SIZE)
            if not data:
                raise OSError("client closed inside a request body")
            due[0] = time.monotonic() + self.client_timeout
            pieces.append(data)
            need -= len(data)
        return b"".join(pieces), 0

    def _request_bytes(self, req: RequestHead, body: bytes) -> bytes:
        head = req.forward
        if req.chunked:
            head += b"\r\nContent-Length: %d" % len(body)
        return b"%s %s%s %s\r\n%s%s\r\n\r\n%s" % (
            req.method.encode("ascii"),
            self._base,
            req.target.encode("latin-1"),
            req.version,
            self._host_line,
            head,
            body,
        )

    def _exchange(
        self, client: Conn, up: list[Any], req: RequestHead, body: bytes, due: list[Any]
    ) -> bool:
        """Forward one request and relay its answer (before `due`, the connection's
        deadline, throws 504 into it); whether both connections may go on."""
        token = self.tap.request(req.method, req.target, req.headers, body)
        sent_ns = self.clock()
        relayed = False
        try:
            data = self._request_bytes(req, body)
            reused = up[0] is not None
            sock, first = self._send_first(up, sent_ns, data)
            if not first and reused:
                # A kept-alive connection the upstream closed as the request went out: it
                # never read it, so it goes once more on a new connection.
                _close(up[0])
                up[0] = None
                sock, first = self._send_first(up, sent_ns, data)
            if not first:
                raise UpstreamError(502, "upstream closed without answering")
            relayed = True
            status, keep = self._relay(sock, client, first, req.method == "HEAD")
        except UpstreamError as failure:
            _close(up[0])
            up[0] = None
            if token is not None:
                self.tap.failed(token)
            if not relayed:  # once the answer has begun, ending the connection is all we can
                self.failures += 1
                self._last_words(client, due, answer(failure.status, str(failure)))
            return False
        up[1] = self.clock()
        if token is not None:
            self.tap.answered(token, status, up[1] - sent_ns)
        if not keep:
            _close(up[0])
            up[0] = None
        return keep

    def _send_first(self, up: list[Any], now: int, data: bytes) -> tuple[Any, bytes]:
        """Send a request; the first bytes of its answer (b"" when the connection was closed
        or reset before any)."""
        sock = self._upstream(up, now)
        try:
            sock.sendall(data)
            sent = self._poll.sent()
            try:
                return sock, sock.recv_ready(RECV_SIZE)  # an answer takes the upstream a while
            finally:
                self._poll.answered(sent)
        except (ConnectionResetError, BrokenPipeError):
            return sock, b""
        except OSError as exc:
            raise UpstreamError(502, f"upstream failed: {exc}") from None

    def _upstream(self, up: list[Any], now: int) -> Conn | TLSConn:
        sock = up[0]
        if sock is not None and now - up[1] > IDLE_CHECK_NS and _closed_while_idle(sock):
            _close(sock)
            sock = up[0] = None
        if sock is None:
            try:
                raw = gsocket.create_connection((self.upstream.host, self.upstream.port))
                raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                if self._tls is not None:
                    host = self.upstream.host
                    sock = TLSConn(self._tls.wrap_socket(raw, server_hostname=host))
                else:
                    sock = plain(raw)
            except OSError as exc:
                raise UpstreamError(502, f"cannot reach the upstream: {exc}") from None
            up[0] = sock
        return sock

    def _relay(self, sock: Any, client: Conn, data: bytes, head: bool) -> tuple[int, bool]:
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
                client.sendall(buf[:length] if len(buf) > length else buf)
                return status, keep and len(buf) == length
            client.sendall(buf)
            rest = length - len(buf)
            while rest > 0:
                more = sock.recv(min(RECV_SIZE, rest))
                if not more:
                    raise UpstreamError(502, "upstream closed inside its answer")
                client.sendall(more)
                rest -= len(more)
            return status, keep
        parser = _Response(head)  # chunked, close-delimited, 1xx first: llhttp decides
        while True:
            try:
                parser.feed(buf)
            except HTTPParseError:
                raise UpstreamError(502, "malformed answer from the upstream") from None
            client.sendall(buf)
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


def _closed_while_idle(sock: Any) -> bool:
    """Whether an idle upstream connection has something to read: its close, usually."""
    try:
        return bool(_SELECT([sock.fileno()], [], [], 0)[0])
    except (OSError, ValueError):
        return True


def _close(sock: Conn | TLSConn | None) -> None:
    if sock is not None:
        sock.close()
