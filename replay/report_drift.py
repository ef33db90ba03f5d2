"""Drift over a run's steady part, for the report: windows, slopes, warnings, soak verdict.

The windows and the interval are replay/drift.py's. Drift is measured over the longest
constant-rate stage when it covers at least half the run (a soak's hold, without its ramps
up and down), else over the whole run; not over a spike-shaped run, whose latency follows
its load. The verdict is worded for the guide's soak thresholds, ``http_req_duration:
p(99)<1000`` and ``http_req_failed: rate<0.001``, judged over the same span.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from replay.drift import CHANGE_WARN, Slope, change_warning, trend, window_s
from replay.phases import Phases
from replay.report_series import RunSeries, rate, rounded

SOAK_P99_MS = 1000.0
SOAK_ERROR_RATE = 0.001
FloatArray = npt.NDArray[np.float64]


@dataclass
class DriftWindows:
    """The windows drift was fitted on (x in hours from the span's start)."""

    start_s: int
    width_s: int
    x_hours: FloatArray
    p50_ms: FloatArray
    p99_ms: FloatArray
    error_rate: FloatArray
    slopes: dict[str, Slope | None]


def _steady_span(run: Phases, duration: float) -> tuple[float, float, str]:
    """Where drift is measured: the longest constant-rate stage when it is at least half
    the run (a soak's hold, without its ramps), else the whole run."""
    holds = [
        p
        for p in run.phases
        if run.source != "--phases"
        and p.rate_from is not None
        and p.rate_from == p.rate_to
        and (p.rate_from or 0) > 0
    ]
    if holds:
        longest = max(holds, key=lambda p: p.end_s - p.start_s)
        if longest.end_s - longest.start_s >= duration / 2:
            return longest.start_s, longest.end_s, longest.name
    return 0.0, duration, "whole run"


def measure_drift(
    series: RunSeries, run: Phases, duration: float
) -> tuple[DriftWindows | None, dict[str, Any]]:
    width = window_s(duration)
    start, end, span_name = _steady_span(run, duration)
    a = math.ceil(start - 1e-9)
    b = min(math.floor(end + 1e-9), series.seconds)
    count = max((b - a) // width, 0)
    out: dict[str, Any] = {
        "p50_ms_per_hour": None,
        "p99_ms_per_hour": None,
        "error_rate_per_hour": None,
        "window_s": width,
        "span_s": [a, a + count * width],
        "span": span_name,
        "windows": count,
        "method": "least squares on window midpoints; 95% interval from a Newey–West "
        "variance (Bartlett, Andrews' AR(1) bandwidth, floored at the classical one) with "
        "fixed-b critical values",
        "warnings": [],
        "verdict": None,
        "note": "",
    }
    if run.spike_shaped:
        out["note"] = "not measured: a spike-shaped run's latency follows its load, not time"
        return None, out
    if count < 3:
        out["note"] = f"not measured: fewer than 3 windows of {width} s in the run"
        return None, out
    of_second = np.full(series.seconds, -1, np.int64)
    of_second[a : a + count * width] = np.arange(count * width) // width
    p = series.latency_by(of_second, count).percentiles([50, 99])
    edges = np.arange(a, a + count * width + 1, width)
    req = np.add.reduceat(series.requests[a : a + count * width], edges[:-1] - a)
    err = np.add.reduceat(series.errors[a : a + count * width], edges[:-1] - a)
    error_rate = rate(err, req)
    x: FloatArray = ((edges[:-1] - a + width / 2) / 3600.0).astype(np.float64)
    slopes = {
        "p50": trend(x, p[:, 0]),
        "p99": trend(x, p[:, 1]),
        "error_rate": trend(x, error_rate),
    }
    hours = count * width / 3600.0
    out["p50_ms_per_hour"] = None if slopes["p50"] is None else slopes["p50"].to_json(3)
    out["p99_ms_per_hour"] = None if slopes["p99"] is None else slopes["p99"].to_json(3)
    out["error_rate_per_hour"] = (
        None if slopes["error_rate"] is None else slopes["error_rate"].to_json(9)
    )
    warnings = [
        change_warning("p50", "ms", slopes["p50"], p[:, 0], hours, 3),
        change_warning("p99", "ms", slopes["p99"], p[:, 1], hours, 3),
        change_warning("error rate", "(fraction)", slopes["error_rate"], error_rate, hours, 6),
    ]
    out["warnings"] = [w for w in warnings if w]
    out["verdict"] = _soak_verdict(series, a, a + count * width, slopes, out["warnings"])
    windows = DriftWindows(a, width, x, p[:, 0], p[:, 1], error_rate, slopes)
    return windows, out


def _soak_verdict(
    series: RunSeries, a: int, b: int, slopes: dict[str, Slope | None], warnings: list[str]
) -> dict[str, Any]:
    """The guide's soak thresholds (p(99)<1000 ms, failures rate<0.001) over the span, and
    whether drift threatens them."""
    p99 = float(series.latency_over([(a, b)]).percentiles([99])[0, 0])
    req, err = int(series.requests[a:b].sum()), int(series.errors[a:b].sum())
    rate = err / req if req else math.nan
    held = p99 < SOAK_P99_MS and rate < SOAK_ERROR_RATE
    hours = (b - a) / 3600.0
    words = [
        f"over seconds {a}–{b} p99 was {p99:,.1f} ms (soak threshold < {SOAK_P99_MS:,.0f} ms) "
        f"and the error rate {100 * rate:.3g}% (threshold < {100 * SOAK_ERROR_RATE:g}%)"
    ]
    rising = [w for w in warnings if " rises " in w]
    s99 = slopes["p99"]
    if s99 is not None and s99.estimate > 0 and s99.excludes_zero():
        cross = (SOAK_P99_MS - s99.intercept) / s99.estimate
        if cross > 0:
            words.append(
                f"at its fitted slope p99 would reach {SOAK_P99_MS:,.0f} ms "
                f"{cross:,.1f} h after the start of the span"
            )
    if not held:
        status = "missed"
    elif rising:
        status = "met, drifting"
        words.append(f"but it drifts up by more than {CHANGE_WARN:.0%} over the run")
    else:
        status = "met"
        words.append("with no significant upward drift")
    if hours < 1:
        words.append(f"the guide's soak runs 4 h; this span is {hours * 60:.0f} min")
    return {
        "status": status,
        "p99_ms": rounded(p99),
        "error_rate": rounded(rate, 9),
        "text": "; ".join(words) + ".",
    }
