"""The capacity report as JSON (schema ``planner-report/1``), and the fit (``planner-fit/1``).

The JSON is the record (docs/planner.md documents every field): the plan's numbers, the
measurements it was built from and its warnings. JSON has no inf or nan: a number that can be
either (a standard error, R², the peak) is written as null then. Markdown and HTML say the
same thing in words: planner/render.py.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from planner import __version__
from planner.points import Measurements
from planner.types import CapacityPlan, Caveat, Fit, LooComparison, PodsRequired, Projection

REPORT_SCHEMA = "planner-report/1"
FIT_SCHEMA = "planner-fit/1"


def _num(value: float | None) -> float | None:
    """JSON has no inf or nan: both become null."""
    if value is None or not math.isfinite(value):
        return None
    return float(value)


def model_dict(fit: Fit) -> dict[str, Any]:
    p = fit.params
    return {
        "sigma": p.sigma,
        "sigma_se": _num(fit.se[0]),
        "kappa": p.kappa,
        "kappa_se": _num(fit.se[1]),
        "lambda": p.lam,
        "lambda_se": _num(fit.se[2]),
        "n_star": _num(p.n_star),
        "n_peak": p.n_peak,
        "x_peak": _num(p.x_peak),
        "n_best": p.n_best,
        "x_best": _num(p.x_best),
        "on_bound": list(fit.on_bound),
        "r2": _num(fit.r2),
        "rmse": fit.rmse,
    }


def baseline_dict(loo: LooComparison) -> dict[str, Any]:
    return {
        "linear_lambda": loo.linear_lambda,
        "loo_rmse_usl": loo.usl_rmse,
        "loo_rmse_linear": loo.linear_rmse,
    }


def fit_dict(
    fit: Fit | None,
    loo: LooComparison | None,
    n: Sequence[int],
    x: Sequence[float],
    caveats: Sequence[Caveat],
    source: str,
) -> dict[str, Any]:
    """What `planner fit --json` writes (schema ``planner-fit/1``)."""
    return {
        "schema": FIT_SCHEMA,
        "version": __version__,
        "source": source,
        "points": [{"pods": ni, "throughput": xi} for ni, xi in zip(n, x, strict=True)],
        "model": None if fit is None else model_dict(fit),
        "baseline": None if loo is None else baseline_dict(loo),
        "warnings": [{"code": c.code, "message": c.message} for c in caveats],
    }


def _status(plan: CapacityPlan, required: PodsRequired | None) -> str:
    if plan.primary is None or required is None:
        return "undetermined"
    return "reachable" if required.point is not None else "unreachable"


def _required_dict(plan: CapacityPlan, proj: Projection | None) -> dict[str, Any]:
    req = None if proj is None else proj.pods_required
    return {
        "status": _status(plan, req),
        "point": None if req is None else req.point,
        "ci_low": None if req is None else req.ci_low,
        "ci_high": None if req is None else req.ci_high,
        "unreachable_fraction": None if req is None else req.unreachable_fraction,
    }


def _shortfall(plan: CapacityPlan, proj: Projection | None) -> dict[str, Any] | None:
    if proj is None or proj.shortfall_rps is None:
        return None
    return {
        "rps": proj.shortfall_rps,
        "fraction_of_target": proj.shortfall_rps / plan.target_rate,
        "best_rps": _num(proj.fit.params.x_best),
        "best_pods": proj.fit.params.n_best,
    }


def _projection_dict(plan: CapacityPlan, proj: Projection) -> dict[str, Any]:
    return {
        "model": model_dict(proj.fit),
        "baseline": baseline_dict(proj.loo),
        "pods_required": _required_dict(plan, proj),
        "pods_at_headroom": proj.pods_at_headroom,
        "pods_recommended": proj.pods_recommended,
        "shortfall": _shortfall(plan, proj),
    }


def report_dict(plan: CapacityPlan, measurements: Measurements) -> dict[str, Any]:
    """The report as JSON-ready data (schema ``planner-report/1``, see docs/planner.md)."""
    p = plan.primary
    return {
        "schema": REPORT_SCHEMA,
        "version": __version__,
        "generated": datetime.now(UTC).isoformat(timespec="seconds"),
        "sources": sources(measurements),
        "basis": "x_slo",
        "target_rate": plan.target_rate,
        "headroom": plan.headroom,
        "redundancy": plan.redundancy,
        "bootstrap": {
            "resamples": plan.resamples,
            "seed": plan.seed,
            "confidence": plan.confidence,
        },
        "measurements": [
            {"pods": pt.pods, "capacity": pt.capacity, "x_max": pt.x_max, "source": pt.source}
            for pt in measurements.points
        ],
        "model": None if p is None else model_dict(p.fit),
        "baseline": None if p is None else baseline_dict(p.loo),
        "pods_required": _required_dict(plan, p),
        "pods_at_headroom": None if p is None else p.pods_at_headroom,
        "pods_recommended": None if p is None else p.pods_recommended,
        "shortfall": _shortfall(plan, p),
        "linear_lower_bound": plan.linear_lower_bound,
        "explanation": plan.explanation,
        "x_max_fit": None if plan.secondary is None else _projection_dict(plan, plan.secondary),
        "warnings": [{"code": c.code, "message": c.message} for c in plan.caveats],
    }


def to_json(data: dict[str, Any]) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def sources(measurements: Measurements) -> list[str]:
    seen: dict[str, None] = {path: None for path, _ in measurements.sweeps}
    for pt in measurements.points:
        seen.setdefault(pt.source, None)
    return list(seen)
