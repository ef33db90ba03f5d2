"""A base URL that requests go to (`replay run --target`, `capture record --upstream`):
scheme, host, port and an optional base path, checked once with messages naming the option."""

from __future__ import annotations

import socket
from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass(frozen=True)
class BaseURL:
    """Where requests go: scheme, host, port and an optional base path."""

    url: str
    scheme: str
    host: str
    port: int
    base_path: str

    @classmethod
    def from_url(cls, url: str, option: str) -> BaseURL:
        """Parse `url` given as `option`; ValueError with a message fit for the user."""
        parts = urlsplit(url.strip())
        if parts.scheme not in ("http", "https"):
            raise ValueError(f"{option} {url!r}: use an http:// or https:// URL")
        if not parts.hostname:
            raise ValueError(f"{option} {url!r} names no host")
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            raise ValueError(f"{option} {url!r} has an invalid port") from None
        return cls(url.strip(), parts.scheme, parts.hostname, port, parts.path.rstrip("/"))

    @property
    def tls(self) -> bool:
        return self.scheme == "https"

    @property
    def host_header(self) -> str:
        default = 443 if self.tls else 80
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == default else f"{host}:{self.port}"


def probe(host: str, port: int, timeout: float) -> str | None:
    """Whether (host, port) accepts connections now: None, or why it does not."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except ConnectionRefusedError:
        return "connection refused"
    except TimeoutError:
        return f"no answer within {timeout:g}s"
    except OSError as exc:
        return exc.strerror or str(exc)
