"""Per-key rate limiting (``--rate-limit N/s``), global across API processes.

GCRA, the generic cell rate algorithm: a token bucket kept as one number per key, its
*theoretical arrival time* (TAT). With emission interval ``T = 1/rate`` and a burst of
``B`` requests, a request at ``now`` is allowed when::

    new_tat = max(tat, now) + T        and        new_tat - now <= B * T

Allowed, the key's TAT becomes ``new_tat``; refused, nothing changes and the client may
retry after ``new_tat - now - B*T`` seconds. ``remaining`` is how many more requests fit
right now; ``reset`` is how long until the bucket is full again (``new_tat - now``).
:func:`decide` is pure; :class:`SharedRateLimiter` keeps one TAT per key in shared memory.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from pathlib import Path

from sandbox.shm import SharedBlock

_SLOT = struct.Struct("<d")


@dataclass(frozen=True)
class Decision:
    allowed: bool
    tat: float
    limit: int
    remaining: int
    reset: float
    retry_after: float

    def headers(self) -> list[tuple[str, str]]:
        """``X-RateLimit-*`` (and ``Retry-After`` when refused); times in whole seconds."""
        headers = [
            ("X-RateLimit-Limit", str(self.limit)),
            ("X-RateLimit-Remaining", str(self.remaining)),
            ("X-RateLimit-Reset", str(max(0, math.ceil(self.reset)))),
        ]
        if not self.allowed:
            headers.append(("Retry-After", str(max(1, math.ceil(self.retry_after)))))
        return headers


def decide(tat: float, now: float, rate: float, burst: int) -> Decision:
    """The GCRA decision for one request at ``now`` given the key's stored ``tat``."""
    interval = 1.0 / rate
    tolerance = burst * interval
    new_tat = max(tat, now) + interval
    limit = max(1, round(rate))
    if new_tat - now > tolerance + 1e-9:
        return Decision(
            allowed=False,
            tat=tat,
            limit=limit,
            remaining=0,
            reset=max(tat, now) - now,
            retry_after=new_tat - now - tolerance,
        )
    remaining = int((tolerance - (new_tat - now)) / interval + 1e-9)
    return Decision(True, new_tat, limit, remaining, new_tat - now, 0.0)


class SharedRateLimiter:
    """One TAT per API key index, in shared memory."""

    def __init__(
        self, path: str | Path, keys: int, rate: float, burst: int, *, create: bool = False
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be positive and burst at least 1")
        self._block = SharedBlock(path, max(1, keys) * _SLOT.size, create=create)
        self.rate = rate
        self.burst = burst

    def check(self, key_index: int, now: float) -> Decision:
        offset = key_index * _SLOT.size
        with self._block.locked() as buf:
            (tat,) = _SLOT.unpack_from(buf, offset)
            decision = decide(tat, now, self.rate, self.burst)
            if decision.allowed:
                _SLOT.pack_into(buf, offset, decision.tat)
        return decision

    def close(self) -> None:
        self._block.close()
