"""From measured points to pods: the fit, its interval, the recommendation, the lower bound.

The numbers, exactly (docs/planner.md says the same with examples):

    pods_required     the smallest whole N with X(N) ≥ target under the fitted law, no
                      headroom; None ("unreachable") when the target exceeds the law's peak.
    interval          residual bootstrap: resample the fit's modified residuals
                      rᵢ/√(1−hᵢ), centred (hᵢ: leverage from the Jacobian's hat matrix
                      J(JᵀJ)⁻¹Jᵀ), add them to the fitted values, refit, and recompute
                      pods_required; ci_low and ci_high are the (1−c)/2 and (1+c)/2
                      quantiles of those whole numbers, with "unreachable" ranked above every
                      count (so ci_high is None when more than (1−c)/2 of the resamples
                      cannot reach the target); unreachable_fraction is the share that cannot.
                      With 6 points and 2% noise a nominal 95% interval covered the truth in
                      about 4 of 5 simulated sweeps: read it as the least uncertainty there is.
    pods_recommended  the smallest whole N with X(N)·headroom ≥ target (every pod at most
                      `headroom` busy at the target rate), plus `redundancy` pods so the plan
                      survives losing that many; None when X(N)·headroom never reaches it.
    lower bound       what linear scaling would need: per-pod throughput never rises with N
                      under the USL (σ, κ ≥ 0), so N ≥ Nᵢ pods deliver at most N·Xᵢ/Nᵢ; and
                      if the measured counts are not past the peak, N < Nᵢ pods deliver at most
                      Xᵢ. The bound is the smallest N that every measured point allows. With
                      one point (3 pods, 5,200/s) and 10,000/s: ceil(10000/(5200/3)) = 6.

The leave-one-out comparison refits the USL and a linear-scaling baseline (X = λN, through
the origin: the assumption behind "3 pods do 5,200/s, so 6 do 10,400/s") without each point
in turn and compares their errors on the left-out point.

`plan` attaches the caveats that follow from the points and the projection: the rules
that find them are planner/caveats.py's (`judge`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray
from sklearn.linear_model import LinearRegression
from sklearn.model_selection import LeaveOneOut, cross_val_predict

from planner.caveats import RECOMMENDED_POINTS, judge
from planner.types import CapacityPlan, Caveat, Fit, LooComparison, PodsRequired, Projection
from planner.usl import USLParams, USLRegressor, jacobian, solve

__all__ = [
    "CapacityPlan",
    "Fit",
    "LooComparison",
    "PodsRequired",
    "Projection",
    "fit_usl",
    "linear_lower_bound",
    "loo_compare",
    "plan",
]

MIN_POINTS_FOR_FIT = 3
MAX_LEVERAGE = 0.99  # a point the fit passes through exactly (h = 1) has no residual to share


def fit_usl(n: ArrayLike, x: ArrayLike, start: USLParams | None = None) -> Fit:
    nn = np.asarray(n, dtype=float).reshape(-1, 1)
    xx = np.asarray(x, dtype=float)
    warm = None if start is None else (start.sigma, start.kappa, start.lam)
    est = USLRegressor(start=warm).fit(nn, xx)
    residuals = xx - est.predict(nn)
    return Fit(
        params=est.params_,
        se=(est.sigma_se_, est.kappa_se_, est.lambda_se_),
        on_bound=est.on_bound_,
        r2=float(est.score(nn, xx)) if xx.size > 1 else math.nan,
        rmse=float(np.sqrt(np.mean(residuals**2))),
    )


def linear_lower_bound(n: Sequence[float], x: Sequence[float], target: float) -> int:
    """The fewest pods linear scaling from these points would need (see the module doc).

    It assumes the measured pod counts are at or before the peak (throughput still rose as
    pods were added), as a sweep that was meant to find capacity normally is.
    """
    pts = list(zip(n, x, strict=True))
    if not pts:
        raise ValueError("no points")
    # Candidates: every bound N·Xi/Ni ≥ T gives N ≥ ceil(T·Ni/Xi); the answer is one of those
    # or a measured N; check them in order against every point.
    candidates = sorted(
        {1, *(int(ni) for ni, _ in pts), *(max(1, _ceil(target * ni / xi)) for ni, xi in pts)}
    )
    for cand in candidates:
        if all((cand * xi / ni >= target) if cand >= ni else (xi >= target) for ni, xi in pts):
            return cand
    return max(candidates)  # unreachable in practice: the largest ceil(T·Ni/Xi) passes


def loo_compare(n: Sequence[float], x: Sequence[float]) -> LooComparison:
    nn = np.asarray(n, dtype=float).reshape(-1, 1)
    xx = np.asarray(x, dtype=float)
    linear = LinearRegression(fit_intercept=False).fit(nn, xx)
    lam = float(linear.coef_[0])
    if np.unique(nn).size <= MIN_POINTS_FOR_FIT:
        return LooComparison(None, None, lam)
    cv = LeaveOneOut()
    usl_pred = cross_val_predict(USLRegressor(), nn, xx, cv=cv)
    lin_pred = cross_val_predict(LinearRegression(fit_intercept=False), nn, xx, cv=cv)
    return LooComparison(
        usl_rmse=float(np.sqrt(np.mean((usl_pred - xx) ** 2))),
        linear_rmse=float(np.sqrt(np.mean((lin_pred - xx) ** 2))),
        linear_lambda=lam,
    )


def bootstrap_params(
    n: Sequence[float], x: Sequence[float], fit: Fit, resamples: int, seed: int
) -> NDArray[np.float64]:
    """(resamples, 3) refitted (σ, κ, λ) from the residual bootstrap; empty without residuals."""
    nn = np.asarray(n, dtype=float)
    xx = np.asarray(x, dtype=float)
    if nn.size <= 3 or resamples <= 0:
        return np.empty((0, 3))
    params = fit.params
    fitted = params.throughput(nn)
    jac = jacobian(np.array([params.sigma, params.kappa, params.lam]), nn, xx)
    leverage = np.einsum("ij,jk,ik->i", jac, np.linalg.pinv(jac.T @ jac), jac)
    resid = (xx - fitted) / np.sqrt(1.0 - np.minimum(leverage, MAX_LEVERAGE))
    resid -= resid.mean()
    floor = 1e-9 * float(np.max(xx))
    rng = np.random.default_rng(seed)
    warm = (params.sigma, params.kappa, params.lam)
    out = np.empty((resamples, 3))
    for b in range(resamples):
        y_star = np.maximum(fitted + rng.choice(resid, size=nn.size, replace=True), floor)
        out[b] = solve(nn, y_star, warm).x
    return out


def interval(
    boot: NDArray[np.float64], point: int | None, target: float, confidence: float
) -> PodsRequired:
    if boot.shape[0] == 0:
        return PodsRequired(point, None, None, None)
    pods = np.array(
        [_inf_if_none(USLParams(*row).pods_for_rate(target)) for row in boot], dtype=float
    )
    alpha = (1.0 - confidence) / 2.0
    low = float(np.quantile(pods, alpha, method="inverted_cdf"))
    high = float(np.quantile(pods, 1.0 - alpha, method="inverted_cdf"))
    return PodsRequired(
        point=point,
        ci_low=None if math.isinf(low) else int(low),
        ci_high=None if math.isinf(high) else int(high),
        unreachable_fraction=float(np.mean(np.isinf(pods))),
    )


def project(
    series: str,
    n: Sequence[int],
    x: Sequence[float],
    target: float,
    headroom: float,
    redundancy: int,
    *,
    resamples: int,
    seed: int,
    confidence: float,
) -> Projection:
    fit = fit_usl(n, x)
    boot = bootstrap_params(n, x, fit, resamples, seed)
    required = fit.params.pods_for_rate(target)
    at_headroom = fit.params.pods_for_rate(target / headroom)
    return Projection(
        series=series,
        n=tuple(n),
        x=tuple(x),
        fit=fit,
        loo=loo_compare(n, x),
        pods_required=interval(boot, required, target, confidence),
        pods_at_headroom=at_headroom,
        pods_recommended=None if at_headroom is None else at_headroom + redundancy,
        shortfall_rps=None if required is not None else target - fit.params.x_best,
        boot_params=boot,
    )


def plan(
    n: Sequence[int],
    x: Sequence[float],
    target: float,
    *,
    headroom: float = 0.7,
    redundancy: int = 1,
    x_max: tuple[Sequence[int], Sequence[float]] | None = None,
    resamples: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
    notes: Sequence[Caveat] = (),
) -> CapacityPlan:
    """The whole plan for the capacity series (n, x) and, if given, the x_max series."""
    if not target > 0:
        raise ValueError("the target rate must be positive")
    if not 0 < headroom <= 1:
        raise ValueError("headroom must be in (0, 1]")
    if redundancy < 0:
        raise ValueError("redundancy cannot be negative")
    if not n:
        raise ValueError("no measured points to plan from")
    distinct = len(set(n))
    lower = linear_lower_bound(n, x, target)
    primary = secondary = None
    explanation = None
    if distinct >= MIN_POINTS_FOR_FIT:
        primary = project(
            "capacity",
            n,
            x,
            target,
            headroom,
            redundancy,
            resamples=resamples,
            seed=seed,
            confidence=confidence,
        )
    else:
        explanation = undetermined_explanation(n, x, target, lower)
    if x_max is not None and len(set(x_max[0])) >= MIN_POINTS_FOR_FIT:
        secondary = project(
            "x_max",
            *x_max,
            target,
            headroom,
            redundancy,
            resamples=resamples,
            seed=seed,
            confidence=confidence,
        )
    found = list(notes)
    found += judge(n, x, target, headroom, primary, explanation)
    return CapacityPlan(
        target_rate=target,
        headroom=headroom,
        redundancy=redundancy,
        confidence=confidence,
        resamples=resamples,
        seed=seed,
        n=tuple(n),
        x=tuple(x),
        linear_lower_bound=lower,
        primary=primary,
        secondary=secondary,
        caveats=tuple(found),
        explanation=explanation,
    )


def undetermined_explanation(
    n: Sequence[int], x: Sequence[float], target: float, lower: int
) -> str:
    pts = sorted(zip(n, x, strict=True))
    k = len(set(n))
    shown = ", ".join(f"{ni} pods → {xi:,.0f}/s" for ni, xi in pts)
    head = (
        f"{'One pod count' if k == 1 else f'{_words(k)} pod counts'} measured ({shown}). "
        "The Universal Scalability Law has three unknowns (λ, σ, κ) and "
        f"{'one pod count gives one equation' if k == 1 else f'{k} pod counts give {k}'}, "
        "so σ (contention) and κ (coherency) cannot be determined: the same data fit linear "
        "scaling, heavy contention, or a coherency cost that peaks below the target. The pod "
        f"count for {target:,.0f}/s therefore cannot be determined from "
        f"{'it' if k == 1 else 'them'}. "
    )
    tail = (
        "That is a lower bound only: with contention the need is higher, and with enough "
        f"coherency cost no pod count reaches {target:,.0f}/s. Measure at least "
        f"{RECOMMENDED_POINTS} pod counts (planner sweep) to size it."
    )
    reached = [(ni, xi) for ni, xi in pts if xi >= target]
    if reached:
        ni, xi = reached[0]
        return head + (
            f"A measured point already reaches the target ({ni} pods → {xi:,.0f}/s), so if "
            f"that measurement holds at most {ni} pods are needed; how many fewer would do "
            "cannot be told. " + tail
        )
    # the point whose per-pod rate sets the bound, for the worked example
    ni, xi = max(
        ((ni, xi) for ni, xi in pts if ni <= lower), key=lambda p: _ceil(target * p[0] / p[1])
    )
    return head + (
        "What the data do give is a lower bound: under the USL (σ, κ ≥ 0) throughput per pod "
        f"never rises as pods are added, so from {ni} pods on each pod delivers at most "
        f"{xi:,.0f}/{ni} = {xi / ni:,.1f}/s, and {target:,.0f}/s needs at least "
        f"ceil({target:,.0f} / {xi / ni:,.1f}) = {lower} pods. " + tail
    )


def _ceil(value: float) -> int:
    # guard against 5.000000000001 from rounding in T·N/X
    return math.ceil(round(value, 9))


def _inf_if_none(value: int | None) -> float:
    return math.inf if value is None else float(value)


def _words(k: int) -> str:
    return {1: "One", 2: "Two"}.get(k, str(k))
