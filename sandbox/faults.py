"""Fault injection: a spec a user writes, and a seeded decision per request.

Spec syntax (``--faults``), comma-separated ``kind=rate[:args]``, rates as fractions or
percentages, each at most once, summing to at most 1::

    error=0.01          answer 500 (``error=0.01:503`` for another 5xx status)
    reset=0.005         close the connection with a TCP reset, no answer
    slow=0.02:200ms     delay the answer; delay ~ lognormal with that median
    slow=2%:200ms:1.0   ... and shape sigma 1.0 (default 0.5: p99 ~ 3.2x the median)
    stall=0.001         hold the connection open and never answer

Per request, one uniform draw picks at most one fault (stall, reset, error, slow, in that
order of bands). Faulted requests are not processed: a reset, stall or injected error never
stores the trace, as a proxy failing in front of the API would (a slow request is processed
after its delay). Faults apply to the API routes (``/api/...`` and ``/graphql``), never to
``/health``, ``/ready``, ``/metrics`` or ``/admin``. With ``--seed`` each API process draws
from its own reproducible stream (seeded by seed and process index), so one process's
sequence of decisions is the same on every run.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from capture.units import parse_positive_duration_ns

KINDS = ("stall", "reset", "error", "slow")
SLOW_DEFAULT_SIGMA = 0.5


@dataclass(frozen=True)
class FaultSpec:
    error: float = 0.0
    error_status: int = 500
    reset: float = 0.0
    slow: float = 0.0
    slow_median: float = 0.2
    slow_sigma: float = SLOW_DEFAULT_SIGMA
    stall: float = 0.0

    @property
    def total(self) -> float:
        return self.error + self.reset + self.slow + self.stall

    def __bool__(self) -> bool:
        return self.total > 0

    def describe(self) -> str:
        """The spec written back in ``--faults`` syntax."""
        parts = []
        if self.error:
            status = "" if self.error_status == 500 else f":{self.error_status}"
            parts.append(f"error={self.error:g}{status}")
        if self.reset:
            parts.append(f"reset={self.reset:g}")
        if self.slow:
            sigma = "" if self.slow_sigma == SLOW_DEFAULT_SIGMA else f":{self.slow_sigma:g}"
            parts.append(f"slow={self.slow:g}:{self.slow_median * 1000:g}ms{sigma}")
        if self.stall:
            parts.append(f"stall={self.stall:g}")
        return ",".join(parts) or "none"


@dataclass(frozen=True)
class Fault:
    """One decision: ``kind`` in KINDS; ``delay`` seconds for slow; ``status`` for error."""

    kind: str
    delay: float = 0.0
    status: int = 500


def parse_faults(text: str) -> FaultSpec:
    """Parse a ``--faults`` spec; raises ValueError with a message fit for the user."""
    values: dict[str, object] = {}
    text = text.strip()
    if not text or text == "none":
        return FaultSpec()
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        kind, sep, rest = part.partition("=")
        kind = kind.strip().lower()
        if not sep or kind not in KINDS:
            raise ValueError(
                f"{part!r}: expected kind=rate with kind one of error, reset, slow, stall "
                "(example: error=0.01,reset=0.005,slow=0.02:200ms,stall=0.001)"
            )
        if kind in values:
            raise ValueError(f"{kind} is given twice")
        args = rest.split(":")
        values[kind] = _rate(args[0], kind)
        if kind == "error":
            values["error_status"] = _status(args[1:], part)
        elif kind == "slow":
            median, sigma = _slow(args[1:], part)
            values["slow_median"], values["slow_sigma"] = median, sigma
        elif len(args) > 1:
            raise ValueError(f"{part!r}: {kind} takes only a rate")
    spec = FaultSpec(**values)  # type: ignore[arg-type]
    if spec.total > 1 + 1e-9:
        raise ValueError(f"fault rates add up to {spec.total:g}; they must not exceed 1")
    return spec


def _rate(text: str, kind: str) -> float:
    s = text.strip()
    try:
        value = float(s[:-1]) / 100 if s.endswith("%") else float(s)
    except ValueError:
        raise ValueError(f"{kind}={text}: the rate must be a number such as 0.01 or 1%") from None
    if not (0 <= value <= 1) or not math.isfinite(value):
        raise ValueError(f"{kind}={text}: the rate must be from 0 to 1")
    return value


def _status(args: list[str], part: str) -> int:
    if not args:
        return 500
    if len(args) > 1 or not args[0].isdigit() or not 500 <= int(args[0]) <= 599:
        raise ValueError(f"{part!r}: the error status must be a 5xx code, e.g. error=0.01:503")
    return int(args[0])


def _slow(args: list[str], part: str) -> tuple[float, float]:
    if not args or len(args) > 2:
        raise ValueError(f"{part!r}: write slow=RATE:MEDIAN[:SIGMA], e.g. slow=0.02:200ms")
    try:
        median = parse_positive_duration_ns(args[0]) / 1e9
    except ValueError as exc:
        raise ValueError(f"{part!r}: {exc}") from None
    sigma = SLOW_DEFAULT_SIGMA
    if len(args) == 2:
        try:
            sigma = float(args[1])
        except ValueError:
            raise ValueError(f"{part!r}: sigma must be a number such as 0.5") from None
        if not 0 <= sigma <= 5:
            raise ValueError(f"{part!r}: sigma must be from 0 to 5")
    return median, sigma


class FaultInjector:
    """Draws one decision per request from a stream seeded by (seed, process index)."""

    def __init__(self, spec: FaultSpec, seed: int | None = None, stream: int = 0) -> None:
        self.spec = spec
        self._rng = random.Random(None if seed is None else f"{seed}:{stream}")
        self._bands = (
            ("stall", spec.stall),
            ("reset", spec.reset),
            ("error", spec.error),
            ("slow", spec.slow),
        )

    def decide(self) -> Fault | None:
        if not self.spec:
            return None
        u = self._rng.random()
        # A second draw for the delay is taken every time, so the decision sequence does not
        # depend on which requests happened to be slow.
        z = self._rng.gauss(0.0, 1.0)
        edge = 0.0
        for kind, rate in self._bands:
            edge += rate
            if u < edge:
                if kind == "slow":
                    delay = self.spec.slow_median * math.exp(self.spec.slow_sigma * z)
                    return Fault("slow", delay=delay)
                if kind == "error":
                    return Fault("error", status=self.spec.error_status)
                return Fault(kind)
        return None
