"""Responses parsed cheaply: a fast path for the common response, llhttp for the rest.

`parse_head` reads an HTTP/1.1 response with one Content-Length and no Transfer-Encoding
with a few bytes operations; anything else is parsed from its first byte by llhttp
(`ResponseParser`), which also decides what is malformed. tests/replay/test_wire.py checks
with hypothesis that the two agree. A `ResponseCache` recognises whole small responses
already seen by their exact bytes: a target repeats itself.
"""

from __future__ import annotations

from typing import Any

from geventhttpclient._parser import HTTPResponseParser


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


class ResponseCache(dict[bytes, tuple[int, int, bool]]):
    """`parse_head`'s result for whole small responses already parsed, by their exact
    bytes (the result is a function of the bytes alone). One per worker, shared by its
    connections; emptied when full."""

    BYTES = 1024  # responses longer than this are not kept
    MAX = 256  # entries

    def remember(self, data: bytes, parsed: tuple[int, int, bool]) -> None:
        if parsed[1] == len(data) <= self.BYTES:
            if len(self) >= self.MAX:
                self.clear()
            self[data] = parsed
