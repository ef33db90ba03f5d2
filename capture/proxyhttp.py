"""The HTTP/1.x pieces the recording proxy reads and writes itself: where the upstream is,
what a request head says (parsed strictly: a head this refuses is answered, never
forwarded), and the short answers the proxy gives on its own (400, 413, 431, 501, 502, 504).
"""

from __future__ import annotations

import socket
import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit

from capture.base_url import BaseURL, probe


class Upstream(BaseURL):
    """Where requests go: from --upstream URL (http or https, optional base path)."""

    @classmethod
    def parse(cls, url: str) -> Upstream:
        """Raises ValueError with a message fit for the user."""
        base = BaseURL.from_url(url, "--upstream")
        parts = urlsplit(url.strip())
        if parts.username is not None or parts.password is not None:
            raise ValueError(
                f"--upstream {parts.scheme}://...@{parts.hostname}: credentials in the URL are "
                "not supported (they would be recorded); clients send their own"
            )
        if parts.query or parts.fragment:
            raise ValueError(f"--upstream {url!r}: a base URL has no query or fragment")
        return cls(base.url, base.scheme, base.host, base.port, base.base_path)

    def probe(self, timeout: float = 5.0) -> str | None:
        """Whether the upstream accepts connections now (for https, TLS connections the
        proxy trusts): None, or why it does not."""
        problem = probe(self.host, self.port, timeout)
        if problem is None and self.tls:
            problem = _tls_problem(self.host, self.port, timeout)
        return problem


def _tls_problem(host: str, port: int, timeout: float) -> str | None:
    """Why a TLS handshake with (host, port), trusting what the proxy trusts, fails; None
    when it succeeds."""
    context = ssl.create_default_context()
    try:
        with (
            socket.create_connection((host, port), timeout=timeout) as raw,
            context.wrap_socket(raw, server_hostname=host),
        ):
            return None
    except ssl.SSLCertVerificationError as exc:
        return f"TLS: its certificate is not trusted: {exc.verify_message}"
    except ssl.SSLError as exc:
        return f"TLS handshake failed: {exc.reason or exc}"
    except TimeoutError:
        return f"no TLS handshake within {timeout:g}s"
    except OSError as exc:
        return exc.strerror or str(exc)


class BadRequest(Exception):
    """A request the proxy answers itself (400, 413, 431, 501) and then closes."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


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
    # The header lines as they go upstream, each after its CRLF: as received, less Host,
    # Expect and Transfer-Encoding (the proxy sends its own Host; a chunked body goes whole).
    forward: bytes = b""


_REASONS = {
    400: b"Bad Request",
    408: b"Request Timeout",
    413: b"Content Too Large",
    431: b"Request Header Fields Too Large",
    501: b"Not Implemented",
    502: b"Bad Gateway",
    504: b"Gateway Timeout",
}
_TOKEN_CHARS = frozenset(
    b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
)
_TOKEN_BYTES = bytes(sorted(_TOKEN_CHARS))  # deleted from a token, they leave nothing
# Header names the parser reads; of these, Host, Expect and Transfer-Encoding are not forwarded.
_FRAMING = frozenset({b"content-length", b"transfer-encoding", b"connection", b"expect", b"host"})


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
        try:
            split = urlsplit(target.decode("latin-1"))
        except ValueError:
            raise BadRequest(400, "malformed request target") from None
        if split.scheme not in ("http", "https") or not split.netloc:
            raise BadRequest(400, "request target is neither a path nor an absolute URL")
        target = (split.path or "/").encode("latin-1") + (
            b"?" + split.query.encode("latin-1") if split.query else b""
        )
    headers: list[tuple[str, str]] = []
    forward: list[bytes] = [b""]
    length = -1
    chunked = False
    connection = b""
    expects = False
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        if not colon or not name or name.translate(None, _TOKEN_BYTES):
            raise BadRequest(400, "malformed header line")
        value = value.strip(b" \t")
        lower = name.lower()
        if lower not in _FRAMING:
            forward.append(line)
        elif lower == b"content-length":
            if not value.isdigit() or (length >= 0 and int(value) != length):
                raise BadRequest(400, "bad Content-Length")
            length = int(value)
            forward.append(line)
        elif lower == b"transfer-encoding":
            if value.lower() != b"chunked" or chunked:
                raise BadRequest(501, "unsupported Transfer-Encoding")
            chunked = True
        elif lower == b"connection":
            connection = value.lower()
            forward.append(line)
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
        b"\r\n".join(forward) if len(forward) > 1 else b"",
    )


def answer(status: int, reason: str) -> bytes:
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
