"""The ladder of offered rates at one pod count: a pure function of the steps run so far.

`planner sweep` holds each offered rate for one step and judges it against the SLO (p99,
error rate, achieved ≥ 99% of offered). Which rate comes next depends only on those
verdicts, so `Ladder.next_rate(history)` reads no clock and sends nothing: it is tested
exhaustively from tables (tests/planner/test_sweep.py).

With ``history`` the (offered rate, passed) pairs so far, in any order:

    hi = the lowest rate that failed                      (none: no failure yet)
    lo = the highest rate that passed below hi            (none: no pass below hi)

    no step yet            -> start
    no failure yet         -> lo × factor                 ramp up (capped at max_rate)
    failures, no pass      -> hi / factor                 ramp down (floored at min_rate)
    hi − lo ≤ precision × lo -> None                      bracketed: done
    otherwise              -> (lo + hi) / 2               bisect

and None once ``max_steps`` steps have run, when a ramp up has already reached
``max_rate`` (capacity there is at least that: the report says "not bracketed"), or when a
ramp down would go below ``min_rate`` (nothing met the SLO). From a coarse ramp with
factor f, bisection needs ⌈log₂((f − 1) / precision)⌉ steps: 5 for f = 2 and 5%, 3 for
f = 1.25. A pass above a failure (noise near the knee) does not move ``lo`` past ``hi``:
the bracket always lies below the lowest failure, the conservative side.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

BLIND_FACTOR = 2.0
"""Ramp factor when nothing is known about the capacity (the first pod count)."""
HINTED_FACTOR = 1.25
"""Ramp factor from a start derived from a pod count already measured."""
HINT_SHARE = 0.85
"""A hinted start is this share of linear scaling from the nearest measured pod count."""


@dataclass(frozen=True)
class Ladder:
    """How one pod count's ladder climbs: where it starts and when it stops."""

    start: float
    factor: float = BLIND_FACTOR
    precision: float = 0.05
    max_steps: int = 12
    min_rate: float = 1.0
    max_rate: float | None = None

    def __post_init__(self) -> None:
        if not self.start > 0:
            raise ValueError(f"the start rate must be positive, got {self.start}")
        if not self.factor > 1:
            raise ValueError(f"the ramp factor must be above 1, got {self.factor}")
        if not 0 < self.precision < 1:
            raise ValueError(f"the precision must be between 0 and 1, got {self.precision}")
        if self.max_steps < 1:
            raise ValueError(f"the step budget must be at least 1, got {self.max_steps}")

    def next_rate(self, history: Sequence[tuple[float, bool]]) -> float | None:
        """The next offered rate, or None when the ladder is done (see the module docstring)."""
        if len(history) >= self.max_steps:
            return None
        if not history:
            return self._clamp_start()
        failed = [rate for rate, passed in history if not passed]
        hi = min(failed) if failed else None
        below = [rate for rate, passed in history if passed and (hi is None or rate < hi)]
        lo = max(below) if below else None
        if hi is None:
            assert lo is not None
            if self.max_rate is not None and lo >= self.max_rate:
                return None
            up = lo * self.factor
            return up if self.max_rate is None else min(up, self.max_rate)
        if lo is None:
            down = hi / self.factor
            return down if down >= self.min_rate else None
        if hi - lo <= self.precision * lo * (1 + 1e-9):  # within precision, rounding forgiven
            return None
        return (lo + hi) / 2

    def _clamp_start(self) -> float:
        start = max(self.start, self.min_rate)
        return start if self.max_rate is None else min(start, self.max_rate)


def hinted_start(measured: Sequence[tuple[int, float]], pods: int) -> float | None:
    """Where a pod count's ladder starts, from pod counts already measured: (pods, x_slo).

    From the nearest measured count N' (preferring one below ``pods``): HINT_SHARE × x_slo(N')
    × N / N'. Above N' that is 85% of linear scaling, which the USL never exceeds; below it,
    85% of a lower bound (per-pod throughput never rises with N). None without a measurement.
    """
    below = [(n, x) for n, x in measured if n < pods and x > 0]
    above = [(n, x) for n, x in measured if n > pods and x > 0]
    if below:
        n, x = max(below)
    elif above:
        n, x = min(above)
    else:
        return None
    return HINT_SHARE * x * pods / n
