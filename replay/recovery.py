"""When a run recovered from its spike, by the issue's rule (k6's "back within 10% of
baseline", made precise).

Let F be the moment the offered load starts falling from the peak (the end of the spike
phase), B99 the p99 (from intended time) of the whole baseline phase and Be its error
rate. Second t (covering [t, t+1)) is *good* when it has completed requests, its p99 is at
most max(1.1 × B99, B99 + 5 ms) and its error rate at most Be + 0.01. The run recovered at
the first second t ≥ ⌈F⌉ from which HOLD_S = 5 consecutive seconds are good, and

    recovery_s = t − F

(so a run the spike did not disturb reads under a second). ``recovered`` is false when no
such t exists before the run's last second; seconds without completed requests are not
good (nothing shows the target is back).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

HOLD_S = 5
P99_FACTOR = 1.1
P99_SLACK_MS = 5.0
ERROR_SLACK = 0.01

DEFINITION = (
    "recovery_s counts from the moment the offered load starts falling from the peak (the "
    "end of the spike phase) to the start of the first second from which, for "
    f"{HOLD_S} consecutive seconds, the per-second p99 from intended time is at most "
    f"max({P99_FACTOR:g} × the baseline phase's p99, the baseline p99 + {P99_SLACK_MS:g} ms) "
    f"and the per-second error rate at most the baseline's + {ERROR_SLACK * 100:g} point; "
    "seconds without completed requests do not count as recovered"
)

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Recovery:
    recovered: bool | None  # None: the run has no baseline and spike to recover from
    recovery_s: float | None
    fall_s: float | None
    recovered_at_s: int | None
    baseline_p99_ms: float | None
    baseline_error_rate: float | None
    p99_limit_ms: float | None
    error_rate_limit: float | None
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "recovered": self.recovered,
            "recovery_s": None if self.recovery_s is None else round(self.recovery_s, 3),
            "definition": DEFINITION,
            "fall_s": None if self.fall_s is None else round(self.fall_s, 6),
            "recovered_at_s": self.recovered_at_s,
            "baseline_p99_ms": self.baseline_p99_ms,
            "baseline_error_rate": self.baseline_error_rate,
            "p99_limit_ms": self.p99_limit_ms,
            "error_rate_limit": self.error_rate_limit,
            "note": self.note,
        }


def not_applicable(note: str) -> Recovery:
    return Recovery(None, None, None, None, None, None, None, None, note)


def find_recovery(
    p99_ms: FloatArray,
    error_rate: FloatArray,
    fall_s: float,
    baseline_p99_ms: float | None,
    baseline_error_rate: float | None,
) -> Recovery:
    """Apply the rule to per-second p99 (NaN: nothing completed) and error rates."""
    if baseline_p99_ms is None or baseline_error_rate is None:
        return not_applicable("the baseline phase has no completed requests to compare with")
    p99_limit = max(P99_FACTOR * baseline_p99_ms, baseline_p99_ms + P99_SLACK_MS)
    err_limit = baseline_error_rate + ERROR_SLACK
    with np.errstate(invalid="ignore"):
        good = (p99_ms <= p99_limit) & (error_rate <= err_limit + 1e-12)
    good &= ~np.isnan(p99_ms)
    first = max(math.ceil(fall_s - 1e-9), 0)
    run = 0
    for t in range(first, good.size):
        run = run + 1 if good[t] else 0
        if run == HOLD_S:
            at = t - HOLD_S + 1
            return Recovery(
                True,
                at - fall_s,
                fall_s,
                at,
                baseline_p99_ms,
                baseline_error_rate,
                round(p99_limit, 6),
                round(err_limit, 9),
            )
    note = f"not back within the limits for {HOLD_S} consecutive seconds before the run ended"
    return Recovery(
        False,
        None,
        fall_s,
        None,
        baseline_p99_ms,
        baseline_error_rate,
        round(p99_limit, 6),
        round(err_limit, 9),
        note,
    )
