"""The fast path for the common HTTP/1.1 response head: status, message length, keep-alive.

Shared by replay's connections and capture's recording proxy, which both read responses
from a raw socket; what it does not handle (chunked bodies, 1xx, HTTP/1.0, odd heads) each
hands to llhttp.
"""

from __future__ import annotations

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
