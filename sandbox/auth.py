"""Who a request is: its bearer key's project, or the admin, decided in constant time.

The admin token is compared with :func:`hmac.compare_digest`. An API key is looked up by its
SHA-256 digest (a dict lookup's time then says nothing about how much of a guessed key
matches a real one) and the key found is compared with :func:`hmac.compare_digest` too.
"""

from __future__ import annotations

import hashlib
import hmac


def _utf8(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def _digest(key: str) -> bytes:
    return hashlib.sha256(_utf8(key)).digest()


class Credentials:
    """API keys (key -> project) and the admin token, for checking bearer tokens."""

    def __init__(self, api_keys: dict[str, str], admin_token: str) -> None:
        self._by_digest = {_digest(key): (key, project) for key, project in api_keys.items()}
        self._admin = _utf8(admin_token)

    def project_of(self, key: str) -> str | None:
        """The key's project, or None for an unknown key."""
        found = self._by_digest.get(_digest(key))
        if found is None or not hmac.compare_digest(_utf8(found[0]), _utf8(key)):
            return None
        return found[1]

    def is_admin(self, token: str | None) -> bool:
        return token is not None and hmac.compare_digest(_utf8(token), self._admin)
