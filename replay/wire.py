"""The wire: the target's address, request heads encoded once, responses parsed cheaply.

Requests are whole byte strings before they reach a socket (see rewrite.py): this module
encodes the parts of the head that replay adds (Host, Authorization, Content-Length; the
recorded headers minus hop-by-hop and credential headers, each header set once) and runs
exchanges on keep-alive connections driven by the event loop: a `Connection` is a raw
non-blocking socket with a read watcher that stays on, so a response is read, parsed and
handed to its owner in the loop's callback, with no greenlet per request and no switch.

Parsing: `parse_head` reads the common response (HTTP/1.1, one Content-Length, no
Transfer-Encoding) with a handful of bytes operations, and whole small responses already
seen are recognised by one dict lookup (a target repeats itself: nginx's answers differ
only in a Date header). Anything else (chunked, 1xx, HTTP/1.0, odd or broken heads) is
parsed from its first byte by geventhttpclient's C parser, llhttp, which also decides what
is malformed; tests/replay/test_wire.py checks with hypothesis that the two agree.

Every way a request can fail is an outcome string, like a status code (`classify`):

    refused    the connection was refused (nothing listening)
    reset      the peer reset the connection (RST, broken pipe)
    timeout    no complete response within --timeout of the send (connect included)
    malformed  bytes that are not an HTTP response
    closed     the peer closed the connection before a complete response
    other      anything else (unreachable host, TLS failure, ...)

A keep-alive connection closed by the server while idle is noticed by its read watcher and
dropped; one that sat idle for more than 20 ms is also checked before reuse (one
zero-timeout select), in case the close has not been read yet. A request that has been sent
is never retried: a reset or close after the send is the target's answer and is counted as
such. A response followed by bytes nobody asked for is counted, and its connection closed.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import ssl
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from gevent import monkey
from geventhttpclient._parser import HTTPParseError, HTTPResponseParser

OUTCOMES = ("refused", "reset", "timeout", "malformed", "closed", "other")
STATUS = tuple(str(code) for code in range(1000))  # "200" without formatting per request

# Headers replay writes itself, or that describe the recorded connection, not the request.
_DROPPED = frozenset(
    {
        "host",
        "content-length",
        "connection",
        "keep-alive",
        "transfer-encoding",
        "te",
        "upgrade",
        "expect",
        "proxy-connection",
        "authorization",
        "proxy-authorization",
        "cookie",
        "x-api-key",
        "api-key",
    }
)
RECV_SIZE = 65536
IDLE_CHECK_NS = 20_000_000  # a connection idle longer than this is checked before reuse


_SOCKET = monkey.get_original("socket", "socket")  # not gevent's: the loop drives it
SELECT = monkey.get_original("select", "select")  # the real, blocking select


def _readable(sock: Any) -> bool:
    """Whether an idle connection has something to read (EOF, when the server closed it)."""
    try:
        return bool(SELECT([sock], [], [], 0)[0])
    except (OSError, ValueError):
        return True


@dataclass(frozen=True)
class Target:
    """Where requests go: scheme, host, port and an optional base path from --target."""

    url: str
    scheme: str
    host: str
    port: int
    base_path: str

    @classmethod
    def parse(cls, url: str) -> Target:
        """Parse --target; raises ValueError with a message fit for the user."""
        parts = urlsplit(url.strip())
        if parts.scheme not in ("http", "https"):
            raise ValueError(f"--target {url!r}: use an http:// or https:// URL")
        if not parts.hostname:
            raise ValueError(f"--target {url!r} names no host")
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            raise ValueError(f"--target {url!r} has an invalid port") from None
        return cls(url.strip(), parts.scheme, parts.hostname, port, parts.path.rstrip("/"))

    @property
    def tls(self) -> bool:
        return self.scheme == "https"

    @property
    def host_header(self) -> str:
        default = 443 if self.tls else 80
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == default else f"{host}:{self.port}"


class Encoder:
    """The constant parts of request heads for one target and API key."""

    def __init__(self, target: Target, api_key: str | None, user_agent: str) -> None:
        self.target = target
        common = [f"Host: {target.host_header}", f"User-Agent: {user_agent}"]
        if api_key:
            common.append(f"Authorization: Bearer {api_key}")
        self._common = "".join(f"{line}\r\n" for line in common).encode("latin-1")
        self._base = target.base_path.encode("utf-8")
        self._heads: dict[tuple[Any, int | None], bytes] = {}

    def request_start(self, method: str) -> bytes:
        """b'METHOD /base' - the record's path follows."""
        return method.encode("ascii") + b" " + self._base

    def head_end(self, headers: Iterable[tuple[str, str]], content_length: int | None) -> bytes:
        """From after the path to the end of the head (see rewrite.build_template); records
        repeat the same few header sets, so each (headers, length) is encoded once."""
        try:
            key = (headers, content_length)
            cached = self._heads.get(key)
        except TypeError:  # headers given as lists: not hashable, not cached
            return self._head_end(headers, content_length)
        if cached is None:
            if len(self._heads) >= 4096:
                self._heads.clear()
            cached = self._heads[key] = self._head_end(headers, content_length)
        return cached

    def _head_end(self, headers: Iterable[tuple[str, str]], content_length: int | None) -> bytes:
        kept = "".join(f"{k}: {v}\r\n" for k, v in headers if k.lower() not in _DROPPED)
        out = b" HTTP/1.1\r\n" + self._common + kept.encode("latin-1")
        if content_length is None:
            return out + b"Content-Length: "
        if content_length < 0:
            return out + b"\r\n"
        return out + b"Content-Length: %d\r\n\r\n" % content_length


class ResponseParser(HTTPResponseParser):
    """llhttp with the least Python per message: status and completion only. Used for the
    responses the fast path (`parse_head`) hands over: chunked, 1xx, HTTP/1.0, odd heads."""

    def __init__(self) -> None:
        super().__init__()
        self.done = False
        self.head = False

    def _on_message_begin(self) -> None:
        pass

    def _on_status(self, _status: Any) -> None:
        pass

    def _on_header_field(self, _name: Any) -> None:
        pass

    def _on_header_value(self, _value: Any) -> None:
        pass

    def _on_headers_complete(self) -> bool:
        return self.head  # True: the message ends with its head (HEAD requests)

    def _on_body(self, _data: Any) -> None:
        pass

    def _on_message_complete(self) -> None:
        self.done = True


MORE = 0  # parse_head: the head is not complete yet
OTHER = -1  # parse_head: not a response the fast path handles; llhttp takes it
_MAX_HEAD = 65536


def parse_head(buf: bytes, head: bool) -> tuple[int, int, bool] | int:
    """The fast path for the common response: `(status, message length, keep-alive)`.

    Handles an HTTP/1.1 response with a status of 200-999 and exactly one Content-Length
    (none needed for 204, 304 or the answer to HEAD), no Transfer-Encoding and at most one
    Connection header (close, keep-alive). Returns MORE while the head is incomplete and
    OTHER for anything else (chunked bodies, 1xx, HTTP/1.0, duplicate or unreadable
    lengths, bytes that are not HTTP): llhttp then parses that response from its first
    byte, and decides what is malformed. tests/replay/test_wire.py checks both agree.
    """
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return MORE if len(buf) < _MAX_HEAD and buf[:9] in _PREFIXES else OTHER
    code = buf[9:12]
    if buf[:9] != b"HTTP/1.1 " or not code.isdigit() or buf[12:13] not in (b" ", b"\r"):
        return OTHER
    status = int(code)
    if status < 200:
        return OTHER
    lower = buf[12:end].lower()
    if b"\r\ntransfer-encoding:" in lower:
        return OTHER
    keep = True
    at = lower.find(b"\r\nconnection:")
    if at >= 0:
        if lower.find(b"\r\nconnection:", at + 13) >= 0:
            return OTHER
        eol = lower.find(b"\r\n", at + 13)
        value = lower[at + 13 : eol if eol >= 0 else len(lower)].strip()
        if value == b"close":
            keep = False
        elif value != b"keep-alive":
            return OTHER
    at = lower.find(b"\r\ncontent-length:")
    if head or status == 204 or status == 304:
        return status, end + 4, keep
    if at < 0 or lower.find(b"\r\ncontent-length:", at + 17) >= 0:
        return OTHER
    eol = lower.find(b"\r\n", at + 17)
    value = lower[at + 17 : eol if eol >= 0 else len(lower)].strip(b" \t")
    if not value.isdigit() or len(value) > 15:
        return OTHER
    return status, end + 4 + int(value), keep


_PREFIXES = frozenset(b"HTTP/1.1 "[:n] for n in range(10))

# Whole small responses already parsed, by their exact bytes. A target answers with the same
# bytes again and again (nginx's differ only in a Date header that changes once a second),
# and one dict lookup is ten times cheaper than parse_head, whose result is a function of
# the bytes alone.
_SEEN: dict[bytes, tuple[int, int, bool]] = {}
_SEEN_BYTES = 1024
_SEEN_MAX = 256


class ClosedError(Exception):
    """The peer closed the connection before a complete response."""

    def __init__(self, received: int) -> None:
        super().__init__(f"connection closed after {received} bytes of a response")
        self.received = received


_AGAIN = (BlockingIOError, InterruptedError, ssl.SSLWantReadError, ssl.SSLWantWriteError)
_READ, _WRITE = 1, 2
Done = Callable[["Connection", str, int], None]


class Connection:
    """One keep-alive connection on a raw non-blocking socket, driven by the event loop.

    `send(request)` starts an exchange and returns at once; when it ends, however it ends,
    `on_done(conn, outcome, done_ns)` is called once from the loop (never from inside
    `send`), with the status (`"200"`) or an error kind (see `classify`). A read watcher
    stays on while the socket is open, so a response is parsed and handed on in the
    callback that receives it, without a greenlet switch; a close by the server while the
    connection is idle is noticed the same way. A write watcher is used only while a
    connect, a TLS handshake or a partial write is pending.

    The owner keeps its per-request state on the connection: `tpl`, `tag`, `due`, `sent`
    and `deadline` (monotonic ns after which the watchdog calls `expire`; 0 when idle).
    """

    __slots__ = (
        "addr",
        "busy",
        "connecting",
        "context",
        "deadline",
        "due",
        "family",
        "handshaking",
        "head",
        "idle_since",
        "keep",
        "loop",
        "need",
        "on_done",
        "out",
        "parser",
        "pending",
        "reader",
        "sent",
        "sock",
        "status",
        "tag",
        "target",
        "tpl",
        "uses",
        "writer",
    )

    def __init__(
        self,
        target: Target,
        addr: tuple[Any, ...],
        family: int,
        on_done: Done,
        loop: Any = None,
        context: ssl.SSLContext | None = None,
    ) -> None:
        self.target = target
        self.addr = addr
        self.family = family
        self.on_done = on_done
        self.loop = loop if loop is not None else _hub_loop()
        self.context = context
        self.sock: Any = None
        self.reader: Any = None
        self.writer: Any = None
        self.busy = False
        self.connecting = self.handshaking = False
        self.head = False
        self.out: bytes | memoryview = b""
        self.pending = b""  # the start of a response whose head is not complete
        self.need = 0  # bytes of the response still to come, once its head is parsed
        self.status = 0
        self.keep = True
        self.parser: ResponseParser | None = None
        self.uses = 0  # exchanges started (on any socket of this connection)
        self.deadline = 0
        self.idle_since = 0
        self.tpl: Any = None
        self.tag = b""
        self.due = 0
        self.sent = 0

    # --- an exchange ---------------------------------------------------------------------

    def send(self, request: bytes, now: int, head: bool = False) -> None:
        """Start sending `request` (whole bytes); `now` is the caller's monotonic ns."""
        self.busy = True
        self.head = head
        self.uses += 1
        sock = self.sock
        if sock is not None and now - self.idle_since > IDLE_CHECK_NS and _readable(sock):
            self.close()  # the server closed it while it sat idle (or sent junk): renew
            sock = None
        if sock is None:
            self.out = request
            self._connect()
            return
        try:
            sent = sock.send(request)
        except _AGAIN:
            sent = 0
        except OSError as exc:
            self._later(exc)
            return
        if sent < len(request):  # rare: a full socket buffer
            self.out = memoryview(request)[sent:]
            self.writer.start(self._on_writable)

    def connect(self) -> None:
        """Open the connection ahead of its first request (a failure is not an outcome)."""
        if self.sock is None and not self.busy:
            self.out = b""
            self._connect()

    @property
    def ready(self) -> bool:
        """Connected (or given up on): no connect or handshake pending."""
        return not (self.connecting or self.handshaking)

    def expire(self) -> None:
        """The watchdog's verdict: the exchange outlived --timeout."""
        if self.busy:
            self.close()
            self._finish("timeout")

    def abandon(self) -> None:
        """Close without an outcome (a stop cut the run off: not the target's doing)."""
        self.busy = False
        self.deadline = 0
        self.close()

    def close(self) -> None:
        sock, self.sock = self.sock, None
        if sock is None:
            return
        for watcher in (self.reader, self.writer):
            watcher.stop()
            watcher.close()
        self.reader = self.writer = None
        self.connecting = self.handshaking = False
        self.out = self.pending = b""
        self.need = 0
        self.parser = None
        with contextlib.suppress(OSError):
            sock.close()

    # --- the loop's callbacks -------------------------------------------------------------

    def _connect(self) -> None:
        try:
            sock = _SOCKET(self.family, socket.SOCK_STREAM)
        except OSError as exc:
            self._later(exc)
            return
        sock.setblocking(False)
        if self.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        err = sock.connect_ex(self.addr)
        if err not in (0, errno.EINPROGRESS, errno.EAGAIN, errno.EWOULDBLOCK):
            sock.close()
            self._later(OSError(err, os.strerror(err)))
            return
        self.sock = sock
        self.reader = self.loop.io(sock.fileno(), _READ)
        self.writer = self.loop.io(sock.fileno(), _WRITE)
        self.connecting = True
        self.pending = b""
        self.need = 0
        self.parser = None
        self.writer.start(self._on_writable)  # connected (or failed) when writable

    def _on_writable(self) -> None:
        sock = self.sock
        if sock is None:
            return
        if self.connecting:
            self.connecting = False
            err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                self._failed(OSError(err, os.strerror(err)))
                return
            self.reader.start(self._on_readable)
            if self.target.tls:
                self._start_tls()
                return
        elif self.handshaking:
            self._handshake()
            return
        out = self.out
        try:
            sent = sock.send(out)
        except _AGAIN:
            return
        except OSError as exc:
            self._failed(exc)
            return
        if sent < len(out):
            self.out = memoryview(out)[sent:]
            self.writer.start(self._on_writable)
        else:
            self.out = b""
            self.writer.stop()

    def _start_tls(self) -> None:
        context = self.context
        if context is None:
            context = self.context = _tls_context()
        try:
            self.sock = context.wrap_socket(
                self.sock, server_hostname=self.target.host, do_handshake_on_connect=False
            )
        except OSError as exc:
            self._failed(exc)
            return
        self.handshaking = True
        self._handshake()

    def _handshake(self) -> None:
        try:
            self.sock.do_handshake()
        except ssl.SSLWantReadError:
            self.writer.stop()  # the read watcher calls back
            return
        except ssl.SSLWantWriteError:
            self.writer.start(self._on_writable)
            return
        except OSError as exc:
            self._failed(exc)
            return
        self.handshaking = False
        self.writer.start(self._on_writable)  # now send the request

    def _on_readable(self) -> None:
        sock = self.sock
        if sock is None:
            return
        if self.handshaking:
            self._handshake()
            return
        try:
            data = sock.recv(RECV_SIZE)
            if self.target.tls:
                while data and sock.pending():
                    data += sock.recv(RECV_SIZE)
        except _AGAIN:
            return
        except OSError as exc:
            if self.busy:
                self._failed(exc)
            else:
                self.close()
            return
        if not self.busy:  # idle: the server closed it (or sent junk): renew on next use
            self.close()
            return
        if not data:
            self._failed(ClosedError(len(self.pending)))
            return
        need = self.need
        if need:  # the rest of a body whose length is known
            need -= len(data)
            if need > 0:
                self.need = need
                return
            self.need = 0
            self._complete(self.status, self.keep and need == 0)  # extra bytes: not reused
            return
        parser = self.parser
        if parser is None:
            if self.pending:
                data = self.pending + data
                self.pending = b""
            parsed: tuple[int, int, bool] | int | None = _SEEN.get(data) if not self.head else None
            if parsed is None:
                parsed = parse_head(data, self.head)
                if (
                    isinstance(parsed, tuple)
                    and parsed[1] == len(data) <= _SEEN_BYTES
                    and not self.head
                ):
                    if len(_SEEN) >= _SEEN_MAX:
                        _SEEN.clear()
                    _SEEN[data] = parsed
            if isinstance(parsed, tuple):
                status, length, keep = parsed
                rest = length - len(data)
                if rest > 0:
                    self.status, self.keep, self.need = status, keep, rest
                    return
                self._complete(status, keep and rest == 0)  # extra bytes: do not reuse
                return
            if parsed == MORE:
                self.pending = data
                return
            parser = self.parser = ResponseParser()
            parser.head = self.head
        try:
            parser.feed(data)
        except HTTPParseError as exc:
            self._failed(exc)
            return
        if parser.done:
            status = parser.get_code()
            keep = bool(parser.should_keep_alive())
            self.parser = None
            self._complete(status, keep)

    # --- endings ---------------------------------------------------------------------------

    def _complete(self, status: int, keep: bool) -> None:
        if not keep:
            self.close()
        self._finish(STATUS[status] if 0 <= status < 1000 else "malformed")

    def _failed(self, exc: BaseException) -> None:
        self.close()
        if self.busy:
            self._finish(classify(exc, False))

    def _finish(self, outcome: str) -> None:
        self.busy = False
        self.deadline = 0
        done = time.monotonic_ns()
        self.idle_since = done
        self.on_done(self, outcome, done)

    def _later(self, exc: BaseException) -> None:
        """A failure found inside `send`: reported from the loop, so that an owner that
        sends again from `on_done` never recurses."""
        self.close()
        if self.busy:
            self.loop.run_callback(self._failed_later, exc, self.uses)

    def _failed_later(self, exc: BaseException, uses: int) -> None:
        if self.busy and self.uses == uses:
            self._finish(classify(exc, False))


def _hub_loop() -> Any:
    import gevent

    return gevent.get_hub().loop


def _tls_context() -> ssl.SSLContext:
    from gevent import monkey

    context_class = monkey.get_original("ssl", "SSLContext")  # the real, non-blocking one
    context: ssl.SSLContext = context_class(ssl.PROTOCOL_TLS_CLIENT)
    context.load_default_certs()
    return context


def classify(exc: BaseException, expired: bool) -> str:
    """The outcome string for a failed exchange (`expired`: the watchdog timed it out)."""
    if expired:
        return "timeout"
    if isinstance(exc, ConnectionRefusedError):
        return "refused"
    if isinstance(exc, (ConnectionResetError, BrokenPipeError, ConnectionAbortedError)):
        return "reset"
    if isinstance(exc, HTTPParseError):
        return "malformed"
    if isinstance(exc, ClosedError):
        return "closed"
    if isinstance(exc, (TimeoutError, socket.timeout)):
        return "timeout"
    if isinstance(exc, OSError) and exc.errno in (errno.ECONNRESET, errno.EPIPE):
        return "reset"
    if isinstance(exc, OSError) and exc.errno == errno.ECONNREFUSED:
        return "refused"
    return "other"


def resolve(target: Target) -> tuple[int, tuple[Any, ...]]:
    """(family, sockaddr) of the target: resolved once per worker, not per connection."""
    infos = socket.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
    if not infos:
        raise OSError(f"cannot resolve {target.host}")
    family, _type, _proto, _name, addr = infos[0]
    return family, addr


def probe(target: Target, timeout: float = 3.0) -> str | None:
    """Check at start that the target accepts connections: None, or why it does not."""
    try:
        with socket.create_connection((target.host, target.port), timeout=timeout):
            return None
    except ConnectionRefusedError:
        return "connection refused"
    except TimeoutError:
        return f"no answer within {timeout:g}s"
    except OSError as exc:
        return exc.strerror or str(exc)
