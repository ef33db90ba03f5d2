"""Drift over a soak: the slope of windowed p50, p99 and error rate, with an interval that
respects autocorrelation.

The run (or its steady phase) is cut into consecutive windows of ``window_s(duration)``
seconds (60 s for runs over 20 minutes, 10 s for shorter ones); each window gives its p50
and p99 (from intended time, of the window's merged histogram) and its error rate. A line
y = a + b·x is fitted by least squares against the window's middle x in hours, so b is per
hour. Neighbouring windows are correlated (a slow minute is followed by another), which
makes the plain least-squares interval too narrow, so:

    Var(b) = max(Newey–West, classical)       Bartlett weights 1 − l/(L+1), l ≤ L,
    L = ⌈1.1447 (α n)^{1/3}⌉,  α = 4ρ² / ((1−ρ)²(1+ρ)²)      (Andrews' AR(1) plug-in,
                                                             ρ the residuals' lag-1 correlation)
    b ± c·√Var(b),   c = t(0.975, n−2) / 1.96 × (1.96 + 2.9694β + 0.4160β² − 0.5324β³)

with β = (L+1)/n, Kiefer and Vogelsang's fixed-b critical value for the Bartlett kernel,
scaled by Student's t for short series. The classical variance is a floor so that a few
windows never read tighter than ordinary regression does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import stats

FloatArray = npt.NDArray[np.float64]
LONG_RUN_S = 20 * 60
CONFIDENCE = 0.95
CHANGE_WARN = 0.10


def window_s(duration_s: float) -> int:
    """60 s windows for runs over 20 minutes, 10 s for shorter ones."""
    return 60 if duration_s > LONG_RUN_S else 10


@dataclass(frozen=True)
class Slope:
    """y = intercept + estimate · x, x in hours from the span's start."""

    estimate: float
    ci_low: float
    ci_high: float
    intercept: float
    lags: int
    n: int

    def excludes_zero(self) -> bool:
        return self.ci_low > 0 or self.ci_high < 0

    def to_json(self, digits: int) -> dict[str, Any]:
        return {
            "estimate": round(self.estimate, digits) + 0.0,  # no -0.0
            "ci_low": round(self.ci_low, digits) + 0.0,
            "ci_high": round(self.ci_high, digits) + 0.0,
        }


def trend(x: FloatArray, y: FloatArray) -> Slope | None:
    """The slope of y on x with its 95% interval (see the module docstring); None with
    fewer than 3 finite points or no spread in x."""
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep].astype(np.float64), y[keep].astype(np.float64)
    n = x.size
    if n < 3:
        return None
    xc = x - x.mean()
    sxx = float(np.dot(xc, xc))
    if sxx <= 0:
        return None
    b = float(np.dot(xc, y - y.mean()) / sxx)
    a = float(y.mean() - b * x.mean())
    e = y - (a + b * x)
    ee = float(np.dot(e[:-1], e[:-1]))
    rho = float(np.dot(e[1:], e[:-1]) / ee) if ee > 0 else 0.0
    rho = min(max(rho, -0.97), 0.97)
    alpha = 4 * rho**2 / ((1 - rho) ** 2 * (1 + rho) ** 2)
    lags = min(math.ceil(1.1447 * (alpha * n) ** (1 / 3)), n - 2)
    v = xc * e
    s = float(np.dot(v, v))
    for lag in range(1, lags + 1):
        s += 2 * (1 - lag / (lags + 1)) * float(np.dot(v[lag:], v[:-lag]))
    newey_west = s / sxx**2 * n / (n - 2)
    classical = float(np.dot(e, e)) / (n - 2) / sxx
    se = math.sqrt(max(newey_west, classical, 0.0))
    beta = (lags + 1) / n
    fixed_b = 1.96 + 2.9694 * beta + 0.4160 * beta**2 - 0.5324 * beta**3
    crit = float(stats.t.ppf(0.5 + CONFIDENCE / 2, n - 2)) / 1.96 * fixed_b
    return Slope(b, b - crit * se, b + crit * se, a, lags, n)


def change_warning(
    label: str, unit: str, slope: Slope | None, y: FloatArray, hours: float, digits: int
) -> str | None:
    """A sentence when the interval excludes 0 and the fitted change over ``hours`` is more
    than 10% of the fitted level at the start (of the mean level when that is not
    positive)."""
    if slope is None or not slope.excludes_zero():
        return None
    change = slope.estimate * hours
    level = slope.intercept if slope.intercept > 0 else float(np.nanmean(y))
    if level <= 0 and change == 0:
        return None
    relative = math.inf if level <= 0 else change / level
    if abs(relative) <= CHANGE_WARN:
        return None
    way = "rises" if change > 0 else "falls"
    share = "" if math.isinf(relative) else f" ({relative:+.0%} of its level at the start)"
    return (
        f"{label} {way} by {abs(slope.estimate):.{digits}f} {unit}/h "
        f"(95% interval {slope.ci_low:.{digits}f} to {slope.ci_high:.{digits}f}): "
        f"{change:+.{digits}f} {unit} over the {hours:.2g} h measured{share}"
    )
