"""Where requests go: the --target URL parsed, resolved once, probed at start."""

from __future__ import annotations

import socket
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit


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
