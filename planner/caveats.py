"""Caveats: the warnings a capacity report carries, each with a stable code and a sentence.

Codes are part of the report schema (docs/planner.md lists them); tests and tools match on
the code, people read the message.

The rules: `judge` finds the caveats that follow from a capacity plan's points and its
primary projection (`planner.capacity.plan` attaches them), `fit_caveats` those about the
points and the fit alone, whatever the target (`planner fit` too). The caveats about the
measurements themselves (incomplete_point, no_slo_pass, not_bracketed, dropped) are found
where the sweep files are read, in planner/points.py.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from planner.types import Caveat, Fit, LooComparison, Projection
from planner.usl import efficiency

__all__ = ["Caveat", "fit_caveats", "judge"]

FEW_POINTS = "few_points"  # fewer than 6 distinct pod counts measured
UNDETERMINED = "undetermined"  # fewer than 3 distinct pod counts: no model, a lower bound only
NO_INTERVAL = "no_interval"  # exactly 3 pod counts: no residuals left to bootstrap
EXTRAPOLATION = "extrapolation"  # the projection is beyond 2x the largest measured pod count
ON_BOUND = "on_bound"  # sigma or kappa held at zero by its bound
UNREACHABLE = "unreachable"  # the target lies beyond the modelled peak
HEADROOM_UNREACHABLE = "headroom_unreachable"  # reachable, but not with the headroom applied
UNSTABLE = "unstable"  # the target is unreachable in some bootstrap resamples
SUPERLINEAR = "superlinear"  # a measured efficiency above 1
LINEAR_BETTER = "linear_better"  # leave-one-out: linear scaling predicts no worse than the USL
INCOMPLETE_POINT = "incomplete_point"  # an interrupted pod count, left out
NO_SLO_PASS = "no_slo_pass"  # a pod count where no step met the SLO
NOT_BRACKETED = "not_bracketed"  # x_slo is the highest rate offered: capacity is at least that
DROPPED = "dropped"  # the load generator dropped requests: it may have been the bottleneck

RECOMMENDED_POINTS = 6
EXTRAPOLATION_FACTOR = 2.0


def judge(
    n: Sequence[int],
    x: Sequence[float],
    target: float,
    headroom: float,
    primary: Projection | None,
    explanation: str | None,
) -> list[Caveat]:
    """The caveats that follow from the points and the primary projection."""
    out: list[Caveat] = []
    if explanation is not None:
        out.append(Caveat(UNDETERMINED, explanation))
    if primary is None:
        return out + fit_caveats(n, x, None, None)
    p = primary.fit.params
    req = primary.pods_required
    if req.unreachable_fraction is None:
        out.append(
            Caveat(
                NO_INTERVAL,
                f"{len(n)} points for 3 coefficients leave no residuals to resample: "
                "the fit passes through every point and no interval can be given.",
            )
        )
    if req.point is None and primary.shortfall_rps is not None:
        short = primary.shortfall_rps
        where = f"at {p.n_best} pods" if p.n_best is not None else "as pods grow without limit"
        also = (
            f" The target is unreachable in {req.unreachable_fraction:.0%} of bootstrap "
            "resamples too."
            if req.unreachable_fraction is not None
            else ""
        )
        out.append(
            Caveat(
                UNREACHABLE,
                f"Unreachable: the target {target:,.0f}/s lies beyond the modelled peak of "
                f"{p.x_best:,.0f}/s ({where}); the best the system can do falls short by "
                f"{short:,.0f}/s ({100 * short / target:.1f}% of the target). No pod count "
                "reaches it and none is recommended: the bottleneck must move (less "
                "contention or coherency per request) before more pods can help." + also,
            )
        )
    elif primary.pods_at_headroom is None:
        out.append(
            Caveat(
                HEADROOM_UNREACHABLE,
                f"{target:,.0f}/s is reachable ({req.point} pods), but not with every pod at "
                f"most {headroom:.0%} busy: that needs {target / headroom:,.0f}/s of capacity "
                f"and the modelled peak is {p.x_best:,.0f}/s. No pod count is recommended.",
            )
        )
    largest = max(n)
    # a claim of "unreachable" (with or without headroom) relies on where the peak is
    peak_claim = req.point is None or primary.pods_at_headroom is None
    relied_on = [req.point, primary.pods_at_headroom, p.n_best if peak_claim else None]
    horizon = max((v for v in relied_on if v is not None), default=0)
    if horizon > EXTRAPOLATION_FACTOR * largest:
        out.append(
            Caveat(
                EXTRAPOLATION,
                f"Extrapolation: the plan relies on the model at {horizon} pods, more than "
                f"{EXTRAPOLATION_FACTOR:g}× the largest measured pod count ({largest}). Fits of "
                "small pod counts can be far off out there (fitting the first 8 points of "
                "the Cisco benchmark overstates X(32) by a third); measure closer to the "
                "projection before relying on it.",
            )
        )
    if req.point is not None and req.unreachable_fraction:
        out.append(
            Caveat(
                UNSTABLE,
                f"In {req.unreachable_fraction:.1%} of bootstrap resamples the target is "
                "unreachable: the measurements do not pin down the peak well enough"
                + ("; the interval's upper end is unbounded." if req.ci_high is None else "."),
            )
        )
    return out + fit_caveats(n, x, primary.fit, primary.loo)


def fit_caveats(
    n: Sequence[int], x: Sequence[float], fit: Fit | None, loo: LooComparison | None
) -> list[Caveat]:
    """Caveats about the points and the fit alone, whatever the target (`planner fit` too)."""
    out: list[Caveat] = []
    distinct = len(set(n))
    if distinct < RECOMMENDED_POINTS:
        out.append(
            Caveat(
                FEW_POINTS,
                f"Only {distinct} distinct pod count(s) measured; at least "
                f"{RECOMMENDED_POINTS} are needed for σ and κ to be told apart with confidence.",
            )
        )
    if fit is None:
        return out
    p = fit.params
    for name in fit.on_bound:
        if name == "sigma":
            text = (
                "σ (contention) sits on its bound 0: the fit found no serial fraction, or "
                "could not tell it from the coherency cost at these pod counts; its "
                "standard error means little."
            )
        else:
            ceiling = (
                "grows without limit" if p.sigma == 0 else f"approaches λ/σ = {p.x_peak:,.0f}/s"
            )
            text = (
                "κ (coherency) sits on its bound 0: no coherency cost was measured, so the "
                f"modelled throughput {ceiling} and never turns down. A coherency cost too small "
                "to see at these pod counts would still bend the curve further out."
            )
        out.append(Caveat(ON_BOUND, text))
    base, base_name = _efficiency_base(n, x, p.lam)
    eff = efficiency(n, x, base)
    over = [(ni, e) for ni, e in zip(n, eff, strict=True) if ni > 1 and e > 1.0]
    if over:
        listed = ", ".join(f"{ni} pods: {e:.3f}" for ni, e in over)
        out.append(
            Caveat(
                SUPERLINEAR,
                f"Efficiency above 1 (throughput per pod above {base_name}) at {listed}. The "
                "USL with σ, κ ≥ 0 cannot scale better than linearly: this is noise, a warm "
                "cache or a load generator limit at small counts, and the fit flattens it.",
            )
        )
    if (
        loo is not None
        and loo.usl_rmse is not None
        and loo.linear_rmse is not None
        and loo.usl_rmse >= loo.linear_rmse
    ):
        out.append(
            Caveat(
                LINEAR_BETTER,
                f"Leave-one-out, linear scaling predicts the measured points no worse than the "
                f"USL (RMSE {loo.linear_rmse:,.0f}/s against {loo.usl_rmse:,.0f}/s): the "
                "measurements show too little contention or coherency for the USL's extra "
                "coefficients to earn their keep, and its projection is mostly extrapolation.",
            )
        )
    return out


def _efficiency_base(n: Sequence[int], x: Sequence[float], lam: float) -> tuple[float, str]:
    ones = [xi for ni, xi in zip(n, x, strict=True) if ni == 1]
    if ones:
        return float(np.mean(ones)), "the measured 1-pod throughput"
    return lam, "the fitted λ"
