"""The report's two figures, as PNG bytes: throughput against pods, latency against offered rate.

Matplotlib is used through `matplotlib.figure.Figure` and its Agg canvas only: no pyplot, no
global backend switch, nothing done at import, so the planner can render inside any process.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from planner.points import Measurements
from planner.sweep_format import Sweep
from planner.types import CapacityPlan
from planner.usl import usl_throughput

_DPI = 100


def plot_horizon(plan: CapacityPlan) -> int:
    """The largest pod count the throughput figure shows: past every number the report uses."""
    largest = max(plan.n)
    marks = [largest, plan.linear_lower_bound]
    if plan.primary is not None:
        p = plan.primary
        params = p.fit.params
        marks += [v for v in (p.pods_required.point, p.pods_recommended) if v is not None]
        if p.pods_required.ci_high is not None:
            marks.append(p.pods_required.ci_high)
        if params.n_best is not None and params.n_best <= 4 * max(marks):
            marks.append(params.n_best + max(2, params.n_best // 5))
    return max(4, math.ceil(max(marks) * 1.15))


def band(
    boot: np.ndarray, grid: np.ndarray, confidence: float
) -> tuple[np.ndarray, np.ndarray] | None:
    """Pointwise (1−c)/2 and (1+c)/2 quantiles of X(N) over the bootstrap's refits."""
    if boot.shape[0] == 0:
        return None
    curves = usl_throughput(grid[None, :], boot[:, 0:1], boot[:, 1:2], boot[:, 2:3])
    alpha = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(curves, [alpha, 1.0 - alpha], axis=0)
    return lo, hi


def throughput_png(plan: CapacityPlan, measurements: Measurements) -> bytes:
    fig = Figure(figsize=(8.0, 4.6), dpi=_DPI, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    horizon = plot_horizon(plan)
    grid = np.linspace(1.0, float(horizon), 400)
    target = plan.target_rate
    p = plan.primary
    if p is not None:
        params = p.fit.params
        bounds = band(p.boot_params, grid, plan.confidence)
        if bounds is not None:
            ax.fill_between(
                grid,
                bounds[0],
                bounds[1],
                color="tab:blue",
                alpha=0.18,
                linewidth=0,
                label=f"{plan.confidence:.0%} bootstrap band",
            )
        ax.plot(
            grid,
            params.throughput(grid),
            color="tab:blue",
            label=f"USL fit (σ={params.sigma:.4g}, κ={params.kappa:.3g}, λ={params.lam:,.0f})",
        )
        ax.plot(
            grid,
            params.lam * grid,
            color="grey",
            linestyle=":",
            label="ideal linear scaling (λN)",
        )
        if params.n_best is not None and params.n_best <= horizon:
            ax.plot([params.n_best], [params.x_best], marker="^", color="tab:blue")
            ax.annotate(
                f"peak {params.x_best:,.0f}/s at {params.n_best}",
                (params.n_best, params.x_best),
                textcoords="offset points",
                xytext=(-30, 8),
                color="tab:blue",
                fontsize=8,
            )
        if p.pods_required.point is not None:
            ax.axvline(p.pods_required.point, color="tab:green", linestyle="--", linewidth=1)
            ax.annotate(
                f"required {p.pods_required.point}",
                (p.pods_required.point, target),
                textcoords="offset points",
                xytext=(4, -14),
                color="tab:green",
                fontsize=8,
            )
        if p.pods_recommended is not None:
            ax.axvline(p.pods_recommended, color="tab:purple", linestyle="--", linewidth=1)
            ax.annotate(
                f"recommended {p.pods_recommended}",
                (p.pods_recommended, target / plan.headroom),
                textcoords="offset points",
                xytext=(4, 4),
                color="tab:purple",
                fontsize=8,
            )
    else:
        per_pod = max(x / n for n, x in zip(plan.n, plan.x, strict=True))
        ax.plot(
            grid,
            per_pod * grid,
            color="grey",
            linestyle=":",
            label="linear scaling: an upper bound, not a model",
        )
        bound = plan.linear_lower_bound
        ax.axvline(bound, color="tab:green", linestyle="--", linewidth=1)
        ax.annotate(
            f"lower bound {bound} pods",
            (bound, target),
            textcoords="offset points",
            xytext=(4, -14),
            color="tab:green",
            fontsize=8,
        )
    n_cap, x_cap = measurements.capacity_series()
    ax.scatter(n_cap, x_cap, color="black", zorder=3, label="measured capacity")
    n_max, x_max = measurements.x_max_series()
    if n_max:
        ax.scatter(
            n_max, x_max, facecolors="none", edgecolors="tab:orange", zorder=3, label="x_max"
        )
    ax.axhline(
        target, color="tab:red", linestyle="--", linewidth=1, label=f"target {target:,.0f}/s"
    )
    if p is not None and plan.headroom < 1:
        ax.axhline(
            target / plan.headroom,
            color="tab:red",
            linestyle=":",
            linewidth=1,
            label=f"target / headroom {plan.headroom:g}",
        )
    top = max([target / plan.headroom if p is not None else target, *x_cap, *x_max]) * 1.25
    ax.set_xlim(0, horizon)
    ax.set_ylim(0, top)
    ax.set_xlabel("pods")
    ax.set_ylabel("throughput (per second)")
    ax.set_title("Throughput against pods")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="lower right", framealpha=0.9)
    return _png(fig)


def latency_png(sweeps: Sequence[tuple[str, Sweep]]) -> bytes | None:
    """p99 (and p50) against offered rate, one colour per pod count; None without steps."""
    series = [
        (path, point)
        for path, sweep in sweeps
        for point in sweep.points
        if any(s.p99_ms is not None for s in point.steps)
    ]
    if not series:
        return None
    fig = Figure(figsize=(8.0, 4.6), dpi=_DPI, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    many_files = len(sweeps) > 1
    colours = [f"C{i % 10}" for i in range(len(series))]
    for colour, (path, point) in zip(colours, series, strict=True):
        steps = sorted(
            (s for s in point.steps if s.p99_ms is not None), key=lambda s: s.offered_rps
        )
        label = f"{point.pods} pod{'s' if point.pods != 1 else ''}" + (
            f" ({path})" if many_files else ""
        )
        ax.plot(
            [s.offered_rps for s in steps],
            [s.p99_ms for s in steps if s.p99_ms is not None],
            marker="o",
            markersize=3,
            color=colour,
            label=label,
        )
    slos = sorted({sweep.slo.p99_ms for _, sweep in sweeps})
    for slo in slos:
        ax.axhline(slo, color="tab:red", linestyle="--", linewidth=1, label=f"SLO p99 {slo:g} ms")
    ax.set_yscale("log")
    plain = FuncFormatter(lambda v, _pos: f"{v:g}")
    ax.yaxis.set_major_formatter(plain)
    ax.yaxis.set_minor_formatter(plain)
    ax.tick_params(axis="y", which="minor", labelsize=7)
    ax.set_xlabel("offered rate (per second)")
    ax.set_ylabel("p99 latency (ms)")
    ax.set_title("Latency against offered rate, per pod count")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="lower right", ncol=2, framealpha=0.9)
    return _png(fig)


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    return buf.getvalue()
