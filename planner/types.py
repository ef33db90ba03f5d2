"""The planner's value types: fits, projections, the capacity plan and its caveats.

Plain frozen records with no behaviour, so capacity.py (which computes them) and caveats.py
(which judges them) both import from here and not from each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from planner.usl import USLParams


@dataclass(frozen=True)
class Caveat:
    """A warning: a stable `code` (part of the report schema) and a sentence for people."""

    code: str
    message: str


@dataclass(frozen=True)
class Fit:
    params: USLParams
    se: tuple[float, float, float]  # sigma, kappa, lambda
    on_bound: tuple[str, ...]
    r2: float
    rmse: float


@dataclass(frozen=True)
class LooComparison:
    """Root-mean-square leave-one-out errors; None with too few points to leave one out."""

    usl_rmse: float | None
    linear_rmse: float | None
    linear_lambda: float  # the linear baseline's per-pod throughput on all points


@dataclass(frozen=True)
class PodsRequired:
    point: int | None
    ci_low: int | None
    ci_high: int | None  # None: unbounded (too many resamples cannot reach the target)
    unreachable_fraction: float | None  # None: no interval (no residuals to resample)


@dataclass(frozen=True)
class Projection:
    """One fitted series (capacity or x_max) projected to the target."""

    series: str
    n: tuple[int, ...]
    x: tuple[float, ...]
    fit: Fit
    loo: LooComparison
    pods_required: PodsRequired
    pods_at_headroom: int | None  # before redundancy
    pods_recommended: int | None
    shortfall_rps: float | None  # when unreachable: target − the law's best throughput
    boot_params: NDArray[np.float64] = field(repr=False)  # (resamples, 3): sigma, kappa, lambda


@dataclass(frozen=True)
class CapacityPlan:
    target_rate: float
    headroom: float
    redundancy: int
    confidence: float
    resamples: int
    seed: int
    n: tuple[int, ...]
    x: tuple[float, ...]
    linear_lower_bound: int
    primary: Projection | None  # None when the points cannot determine the law
    secondary: Projection | None  # the x_max fit, when there is one
    caveats: tuple[Caveat, ...]
    explanation: str | None  # why no pod count can be given, when primary is None
