"""The parts of a request head replay writes itself, encoded once per target and header set.

Replay adds Host, User-Agent, Authorization and Content-Length; of the recorded headers it
keeps all but the hop-by-hop and credential ones (`_DROPPED`), each header set once.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from replay.address import Target

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
