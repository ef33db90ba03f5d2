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

from capture.response_head import MORE, OTHER, parse_head

__all__ = ["MORE", "OTHER", "ResponseCache", "ResponseParser", "parse_head"]


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
