"""Exchanges on keep-alive connections driven by the event loop, one `Connection` each.

Requests are whole byte strings before they reach a socket (replay/rewrite.py). A
`Connection` is a raw non-blocking socket with a read watcher that stays on, so a response
is read, parsed (replay/response.py) and handed to its owner in the loop's callback, with
no greenlet per request and no switch. Each exchange ends in one outcome
(replay/outcomes.py).

A keep-alive connection closed by the server while idle is noticed by its read watcher and
dropped; one that sat idle for more than IDLE_CHECK_NS is also checked before reuse (one
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
from collections.abc import Callable
from typing import Any

import gevent
from gevent import monkey
from geventhttpclient._parser import HTTPParseError

from replay.address import Target
from replay.outcomes import STATUS, ClosedError, classify
from replay.response import MORE, ResponseCache, ResponseParser, parse_head

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
        "cache",
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
        cache: ResponseCache | None = None,
    ) -> None:
        self.target = target
        self.cache = cache if cache is not None else ResponseCache()
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
            cache = self.cache
            parsed: tuple[int, int, bool] | int | None = cache.get(data) if not self.head else None
            if parsed is None:
                parsed = parse_head(data, self.head)
                if isinstance(parsed, tuple) and not self.head:
                    cache.remember(data, parsed)
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
            self._finish(classify(exc))

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
            self._finish(classify(exc))


def _hub_loop() -> Any:
    return gevent.get_hub().loop


def _tls_context() -> ssl.SSLContext:
    context_class = monkey.get_original("ssl", "SSLContext")  # the real, non-blocking one
    context: ssl.SSLContext = context_class(ssl.PROTOCOL_TLS_CLIENT)
    context.load_default_certs()
    return context
