"""The wire: the target's address, request heads encoded once, and responses parsed cheaply.

Requests are whole byte strings before they reach a socket (see rewrite.py): this module
encodes the parts of the head that replay adds (Host, Authorization, Content-Length; the
recorded headers minus hop-by-hop and credential headers) and, per connection, writes a
request and reads one response with geventhttpclient's C parser (llhttp), fed straight from
the socket. The parser calls back into Python only where it must (headers are not collected:
replay needs the status and where the message ends).

Every way a request can fail is an outcome string, like a status code (`classify`):

    refused    the connection was refused (nothing listening)
    reset      the peer reset the connection (RST, broken pipe)
    timeout    no complete response within --timeout of the send (connect included)
    malformed  bytes that are not an HTTP response
    closed     the peer closed the connection before a complete response
    other      anything else (unreachable host, TLS failure, ...)

A keep-alive connection that sat idle for more than 20 ms is checked before reuse (one
zero-timeout select): if the server closed it meanwhile, a new one is opened. A request that
has been sent is never retried: a reset or close after the send is the target's answer and
is counted as such.
"""

from __future__ import annotations

import contextlib
import errno
import socket
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

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


def _readable(fd: int) -> bool:
    """Whether an idle connection has something to read (EOF, when the server closed it)."""
    from gevent import monkey

    select = monkey.get_original("select", "select")  # the real, non-blocking call
    try:
        return bool(select([fd], [], [], 0)[0])
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

    def request_start(self, method: str) -> bytes:
        """b'METHOD /base' - the record's path follows."""
        return method.encode("ascii") + b" " + self._base

    def head_end(self, headers: Iterable[tuple[str, str]], content_length: int | None) -> bytes:
        """From after the path to the end of the head (see rewrite.build_template)."""
        kept = "".join(f"{k}: {v}\r\n" for k, v in headers if k.lower() not in _DROPPED)
        out = b" HTTP/1.1\r\n" + self._common + kept.encode("latin-1")
        if content_length is None:
            return out + b"Content-Length: "
        if content_length < 0:
            return out + b"\r\n"
        return out + b"Content-Length: %d\r\n\r\n" % content_length


class ResponseParser(HTTPResponseParser):
    """llhttp with the least Python per message: status and completion only."""

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


class ClosedError(Exception):
    """The peer closed the connection before a complete response."""

    def __init__(self, received: int) -> None:
        super().__init__(f"connection closed after {received} bytes of a response")
        self.received = received


class Connection:
    """One keep-alive connection: connect on first use, one request at a time."""

    __slots__ = (
        "addr",
        "deadline",
        "expired",
        "family",
        "idle_since",
        "parser",
        "sock",
        "target",
        "uses",
    )

    def __init__(self, target: Target, addr: tuple[Any, ...], family: int) -> None:
        self.target = target
        self.addr = addr
        self.family = family
        self.sock: Any = None
        self.parser = ResponseParser()
        self.uses = 0
        self.deadline = 0  # monotonic ns after which the watchdog closes it; 0 when idle
        self.expired = False
        self.idle_since = 0

    def _open(self) -> Any:
        from gevent import socket as gsocket

        sock = gsocket.socket(self.family, socket.SOCK_STREAM)
        self.sock = sock  # visible to the watchdog during connect
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.connect(self.addr)
        if self.target.tls:
            from gevent import ssl as gssl

            context = gssl.create_default_context()
            sock = context.wrap_socket(sock, server_hostname=self.target.host)
            self.sock = sock
        self.parser = ResponseParser()
        self.uses = 0
        return sock

    def close(self) -> None:
        sock, self.sock = self.sock, None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()

    def exchange(self, request: bytes, head: bool = False) -> int:
        """Send one request, read its response; returns the status. Raises on failure."""
        sock = self.sock
        idle = time.monotonic_ns() - self.idle_since > IDLE_CHECK_NS
        if sock is not None and idle and _readable(sock.fileno()):
            self.close()  # the server closed it while it sat idle (or sent junk): renew
        return self._exchange(request, head)

    def _exchange(self, request: bytes, head: bool) -> int:
        sock = self.sock
        if sock is None:
            sock = self._open()
        self.uses += 1
        parser = self.parser
        parser.done = False
        parser.head = head
        sent = sock.send(request)
        if sent < len(request):  # rare: a full socket buffer
            sock.sendall(memoryview(request)[sent:])
        received = 0
        while not parser.done:
            data = sock.recv(RECV_SIZE)
            if not data:
                raise ClosedError(received)
            received += len(data)
            parser.feed(data)
        status: int = parser.get_code()
        if not parser.should_keep_alive():
            self.close()
        self.idle_since = time.monotonic_ns()
        return status


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
