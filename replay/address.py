"""Where requests go: the --target URL parsed, resolved once, probed at start."""

from __future__ import annotations

import socket
from typing import Any

from capture.base_url import BaseURL
from capture.base_url import probe as probe_address


class Target(BaseURL):
    """Where requests go: scheme, host, port and an optional base path from --target."""

    @classmethod
    def parse(cls, url: str) -> Target:
        """Parse --target; raises ValueError with a message fit for the user."""
        base = BaseURL.from_url(url, "--target")
        return cls(base.url, base.scheme, base.host, base.port, base.base_path)


def resolve(target: Target) -> tuple[int, tuple[Any, ...]]:
    """(family, sockaddr) of the target: resolved once per worker, not per connection."""
    infos = socket.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
    if not infos:
        raise OSError(f"cannot resolve {target.host}")
    family, _type, _proto, _name, addr = infos[0]
    return family, addr


def probe(target: Target, timeout: float = 3.0) -> str | None:
    """Check at start that the target accepts connections: None, or why it does not."""
    return probe_address(target.host, target.port, timeout)
