"""The capacity report in words: Markdown, and self-contained HTML with its figures.

Markdown and HTML are built from one list of blocks (headings, paragraphs, tables, lists,
images) so that they say the same thing; `headline`, the answer in a few sentences, opens
both and is what the CLI prints. The HTML embeds its figures (planner/plots.py) as base64
PNGs and its style inline: one file that can be attached to a ticket and opened anywhere,
with nothing fetched. The JSON record of the same plan is planner/report.py's.
"""

from __future__ import annotations

import math

import numpy as np

from planner import __version__
from planner.blocks import (
    Block,
    Bullets,
    Code,
    Heading,
    Image,
    Paragraph,
    Table,
    html_page,
    markdown,
)
from planner.plots import band, latency_png, throughput_png
from planner.points import Measurements
from planner.report import sources
from planner.sweep_format import Slo
from planner.types import CapacityPlan, Projection
from replay.redact import redact_url

CONFIRM_MINUTES = 30


# ----------------------------------------------------------------------------- the words


def headline(plan: CapacityPlan) -> list[str]:
    """The answer in a few sentences: the CLI prints these, the reports open with them."""
    t = f"{plan.target_rate:,.0f}/s"
    p = plan.primary
    if p is None:
        return [
            f"Pods required for {t}: cannot be determined from these measurements.",
            f"Linear-scaling lower bound: {plan.linear_lower_bound} pods (a lower bound only).",
        ]
    req = p.pods_required
    conf = f"{plan.confidence:.0%}"
    lines = []
    if req.point is None:
        params = p.fit.params
        short = p.shortfall_rps or 0.0
        where = f"{params.n_best} pods" if params.n_best is not None else "no finite pod count"
        lines.append(
            f"Pods required for {t}: unreachable. The modelled peak is {params.x_best:,.0f}/s "
            f"at {where}, {short:,.0f}/s ({100 * short / plan.target_rate:.1f}%) short of "
            "the target. No pod count is recommended."
        )
        return lines
    if req.unreachable_fraction is None:
        ci = "no interval (no residuals to resample)"
    else:
        high = "unbounded" if req.ci_high is None else str(req.ci_high)
        ci = (
            f"{conf} interval {req.ci_low}–{high}, unreachable in "
            f"{req.unreachable_fraction:.1%} of resamples"
        )
    lines.append(f"Pods required for {t}: {req.point} ({ci}).")
    if p.pods_recommended is None:
        lines.append(
            f"Pods recommended: none. With each pod at most {plan.headroom:.0%} busy the "
            f"target needs {plan.target_rate / plan.headroom:,.0f}/s, beyond the modelled peak."
        )
    else:
        lines.append(
            f"Pods recommended: {p.pods_recommended} = {p.pods_at_headroom} to keep each pod at "
            f"most {plan.headroom:.0%} busy at {t}, + {plan.redundancy} for N+{plan.redundancy} "
            "redundancy."
        )
    return lines


def _fmt(value: float | None, digits: int = 0) -> str:
    if value is None or not math.isfinite(value):
        return "—"
    return f"{value:,.{digits}f}"


def _blocks(plan: CapacityPlan, measurements: Measurements, images: bool) -> list[Block]:
    t = f"{plan.target_rate:,.0f}/s"
    p = plan.primary
    out: list[Block] = [Heading(1, f"Capacity report: {t}")]
    out.append(
        Paragraph(
            f"Built from {', '.join(sources(measurements))} by planner {__version__}. The "
            "capacity of a pod count is the highest offered rate that met the SLO (x_slo); "
            "the Universal Scalability Law is fitted to it and projected to the target."
        )
    )
    out.append(Bullets(tuple(f"**{line}**" for line in headline(plan))))
    if plan.caveats:
        out.append(Heading(2, "Warnings"))
        out.append(Bullets(tuple(f"**{c.code}**: {c.message}" for c in plan.caveats)))

    out.append(Heading(2, "Model"))
    if p is None:
        out.append(Paragraph(plan.explanation or ""))
    else:
        out += _model_blocks(plan, p)
    if images:
        out.append(Image("Throughput against pods", throughput_png(plan, measurements)))
        latency = latency_png(measurements.sweeps)
        if latency is not None:
            out.append(Image("Latency against offered rate, per pod count", latency))

    out.append(Heading(2, "Measurements"))
    out += _measurement_blocks(plan, measurements)
    out.append(Heading(2, "Assumptions"))
    out.append(Bullets(_assumptions(plan, measurements)))
    out.append(Heading(2, "Confirmation run" if _recommended(plan) else "What to measure next"))
    out += _confirmation_blocks(plan, measurements)
    return out


def _recommended(plan: CapacityPlan) -> int | None:
    return None if plan.primary is None else plan.primary.pods_recommended


def _model_blocks(plan: CapacityPlan, p: Projection) -> list[Block]:
    params = p.fit.params
    se = p.fit.se
    rows = (
        ("σ (contention)", f"{params.sigma:.6g}", _se(se[0]), "share of work that serialises"),
        ("κ (coherency)", f"{params.kappa:.6g}", _se(se[1]), "cost per pair of pods"),
        ("λ (one pod)", f"{params.lam:,.1f}/s", _se(se[2]), "throughput of a single pod"),
    )
    out: list[Block] = [
        Paragraph(
            "X(N) = λN / (1 + σ(N−1) + κN(N−1)), fitted by bounded nonlinear least squares "
            f"(σ, κ ≥ 0) to {len(p.n)} points at {len(set(p.n))} pod counts; "
            f"R² = {p.fit.r2:.4f}, RMSE = {p.fit.rmse:,.0f}/s."
        ),
        Table(("coefficient", "estimate", "standard error", "meaning"), rows),
    ]
    if params.n_peak is not None:
        peak = (
            f"Peak: N* = √((1−σ)/κ) = {params.n_star:.1f}, so n_peak = {params.n_peak} pods "
            f"with X = {params.x_peak:,.0f}/s; the most any whole number of pods delivers is "
            f"{params.x_best:,.0f}/s at {params.n_best}. Past it, adding pods lowers throughput."
        )
    elif params.sigma > 0:
        peak = f"No peak (κ = 0): throughput approaches λ/σ = {params.x_peak:,.0f}/s."
    else:
        peak = "No peak and no ceiling (σ = κ = 0): the fit is linear scaling."
    out.append(Paragraph(peak))
    loo = p.loo
    if loo.usl_rmse is not None and loo.linear_rmse is not None:
        verdict = "better" if loo.usl_rmse < loo.linear_rmse else "no better"
        out.append(
            Paragraph(
                f"Leave-one-out: the USL predicts each left-out point with RMSE "
                f"{loo.usl_rmse:,.0f}/s; linear scaling (X = {loo.linear_lambda:,.0f}·N) with "
                f"{loo.linear_rmse:,.0f}/s. The USL does {verdict}."
            )
        )
    else:
        out.append(Paragraph("Leave-one-out comparison: needs at least 4 pod counts."))
    if plan.secondary is not None:
        s = plan.secondary
        sp = s.fit.params
        req = s.pods_required.point
        out.append(
            Paragraph(
                f"The same law fitted to x_max (the most each pod count delivered, SLO or "
                f"not): σ = {sp.sigma:.4g}, κ = {sp.kappa:.3g}, λ = {sp.lam:,.0f}/s, peak "
                f"{sp.x_best:,.0f}/s; it reaches {plan.target_rate:,.0f}/s "
                + (f"at {req} pods." if req is not None else "at no pod count.")
                + " This is a ceiling, not a plan: at x_max the SLO is not met."
            )
        )
    out.append(_projection_table(plan, p))
    return out


def _se(value: float) -> str:
    return "—" if not math.isfinite(value) else f"{value:.3g}"


def _projection_table(plan: CapacityPlan, p: Projection) -> Table:
    params = p.fit.params
    picks = set(p.n)
    for v in (
        p.pods_required.point,
        p.pods_required.ci_low,
        p.pods_required.ci_high,
        p.pods_at_headroom,
        p.pods_recommended,
        params.n_best,
        plan.linear_lower_bound,
    ):
        if v is not None and v <= 10 * max(p.n):
            picks.add(v)
    grid = np.array(sorted(picks), dtype=float)
    bounds = band(p.boot_params, grid, plan.confidence)
    rows = []
    for i, n in enumerate(grid):
        x = params.at(n)
        tags = []
        if n == p.pods_required.point:
            tags.append("required")
        if n == p.pods_recommended:
            tags.append("recommended")
        if n == params.n_best:
            tags.append("peak")
        if n in p.n:
            tags.append("measured")
        rows.append(
            (
                str(int(n)),
                _fmt(x),
                "—" if bounds is None else f"{bounds[0][i]:,.0f}–{bounds[1][i]:,.0f}",
                _fmt(x / n),
                f"{plan.target_rate / x:.0%}" if x >= plan.target_rate else "over capacity",
                ", ".join(tags),
            )
        )
    return Table(
        (
            "pods",
            "modelled X/s",
            f"{plan.confidence:.0%} band",
            "per pod",
            "utilisation at target",
            "",
        ),
        tuple(rows),
    )


def _measurement_blocks(plan: CapacityPlan, measurements: Measurements) -> list[Block]:
    p = plan.primary
    rows = []
    for pt in measurements.points:
        model = None if p is None else p.fit.params.at(pt.pods)
        resid = (
            "—"
            if model is None or pt.capacity is None
            else f"{100 * (pt.capacity - model) / model:+.1f}%"
        )
        rows.append(
            (
                str(pt.pods),
                _fmt(pt.capacity),
                _fmt(pt.x_max),
                _fmt(model),
                resid,
                pt.source,
            )
        )
    out: list[Block] = [
        Table(
            ("pods", "capacity (x_slo)/s", "x_max/s", "model/s", "residual", "source"),
            tuple(rows),
        )
    ]
    for path, sweep in measurements.sweeps:
        out.append(
            Paragraph(
                f"{path}: target {redact_url(sweep.target)}, SLO p99 < {sweep.slo.p99_ms:g} ms, "
                "error rate "
                f"≤ {sweep.slo.max_error_rate:g}, achieved ≥ {sweep.slo.min_achieved_ratio:g} × "
                f"offered; started {sweep.started}, "
                + (f"finished {sweep.finished}." if sweep.finished else "not finished.")
            )
        )
        step_rows = tuple(
            (
                str(pt.pods),
                _fmt(s.offered_rps),
                _fmt(s.achieved_rps),
                _fmt(s.p50_ms, 1),
                _fmt(s.p95_ms, 1),
                _fmt(s.p99_ms, 1),
                f"{s.error_rate:.2%}",
                str(s.dropped),
                "pass" if s.passed_slo else "fail",
            )
            for pt in sweep.points
            for s in pt.steps
        )
        if step_rows:
            out.append(
                Table(
                    (
                        "pods",
                        "offered/s",
                        "achieved/s",
                        "p50 ms",
                        "p95 ms",
                        "p99 ms",
                        "errors",
                        "dropped",
                        "SLO",
                    ),
                    step_rows,
                    details=f"Every step of {path} ({len(step_rows)})",
                )
            )
    return out


def _slos(measurements: Measurements) -> list[Slo]:
    return list({sweep.slo: None for _, sweep in measurements.sweeps})


def _assumptions(plan: CapacityPlan, measurements: Measurements) -> tuple[str, ...]:
    slos = _slos(measurements)
    slo_text = (
        "; ".join(
            f"p99 < {s.p99_ms:g} ms, error rate ≤ {s.max_error_rate:g}, achieved ≥ "
            f"{s.min_achieved_ratio:g} × offered"
            for s in slos
        )
        if slos
        else "the CSV's throughput, taken at its word"
    )
    return (
        "Only the pod count changes: pod size, the databases (PostgreSQL, ClickHouse, Redis), "
        "the workers and the traffic mix stay as they were measured. Their limits are inside σ "
        "and κ; resizing them changes the law, and the sweep must be run again.",
        f"Capacity means the SLO held: {slo_text}.",
        "The replayed corpus represents production traffic; a different mix has a different λ.",
        "Throughput follows the USL in the pod count. The interval covers measurement noise at "
        "the measured points (a residual bootstrap: errors exchangeable across pod counts), not "
        "the chance that the law's shape is wrong; far from the measurements it is too narrow.",
        f"Headroom {plan.headroom:g}: at the target rate every pod is at most "
        f"{plan.headroom:.0%} busy, i.e. modelled X(N) · {plan.headroom:g} ≥ target, leaving "
        "room for bursts, deploys and slow days.",
        f"Redundancy N+{plan.redundancy}: {plan.redundancy} pod(s) beyond that, so that "
        f"losing {plan.redundancy} still leaves the headroom pod count serving.",
        f"Linear-scaling lower bound ({plan.linear_lower_bound} pods): what perfect scaling from "
        "the measured points would need; the USL never does better, so no plan needs fewer.",
    )


def _confirmation_blocks(plan: CapacityPlan, measurements: Measurements) -> list[Block]:
    slos = _slos(measurements)
    slo = slos[0] if slos else Slo()
    scale = next((s.scale_cmd for _, s in measurements.sweeps if s.scale_cmd), None)
    rec = _recommended(plan)
    t = plan.target_rate
    if plan.primary is None or rec is None:
        largest = max(plan.n)
        suggestion = sorted({1, 2, 3, 4, 6, 8, largest, 2 * largest, plan.linear_lower_bound})
        required = None if plan.primary is None else plan.primary.pods_required.point
        if plan.primary is None:
            why = (
                "Sweep at least six pod counts, spread to the lower bound and past it, so that "
                "σ and κ can be told apart:"
            )
        elif required is None:
            why = (
                "The target is beyond what the measured system can reach: more pods will not "
                "do. Find the bottleneck behind σ and κ (locks, a shared database, fan-out), "
                "change it, and sweep again."
            )
        else:
            why = (
                f"{t:,.0f}/s is reachable at {required} pods, but not with each pod at most "
                f"{plan.headroom:.0%} busy, so nothing is recommended. Either accept a higher "
                "utilisation (--headroom) knowingly, or move the bottleneck behind σ and κ and "
                f"sweep again. A run at {required} pods offering {t:,.0f}/s would show how "
                "little margin is left."
            )
        out: list[Block] = [Paragraph(why)]
        if plan.primary is None:
            out.append(
                Code(
                    "planner sweep --target URL --pods "
                    + ",".join(str(v) for v in suggestion)
                    + " --scale-cmd 'kubectl scale deploy/api --replicas={pods}' --out sweep.json\n"
                    f"planner report sweep.json --target-rate {t:g} --html report.html"
                )
            )
        return out
    p = plan.primary
    at_h = p.pods_at_headroom
    x_rec = p.fit.params.at(rec)
    scale_line = (
        scale.replace("{pods}", str(rec))
        if scale
        else f"scale the API to {rec} pods (kubectl scale deploy/api --replicas={rec})"
    )
    steps = [
        f"Scale to the recommended {rec} pods: `{scale_line}`; wait until every pod is ready.",
        f"Offer {t:,.0f}/s (replay's open model, the same corpus) for {CONFIRM_MINUTES} minutes. "
        f"Pass: p99 < {slo.p99_ms:g} ms, error rate ≤ {slo.max_error_rate:g}, achieved ≥ "
        f"{slo.min_achieved_ratio:.0%} of offered, for the whole run.",
        f"Take away {plan.redundancy} pod(s) (down to {at_h}) and repeat: the plan says "
        f"{at_h} pods still carry {t:,.0f}/s at most {plan.headroom:.0%} busy.",
        f"Measure x_slo at {rec} pods (`planner sweep --pods {rec} ... --out confirm.json`). The "
        f"model expects about {x_rec:,.0f}/s; if the measurement falls outside the band in the "
        "projection table, refit with it included: "
        f"`planner report sweep.json confirm.json --target-rate {t:g}`.",
    ]
    return [Bullets(tuple(steps))]


# ----------------------------------------------------------------------------- renderers


def render_markdown(plan: CapacityPlan, measurements: Measurements) -> str:
    """The report as Markdown (no figures: those are in the HTML)."""
    lines = markdown(_blocks(plan, measurements, images=False))
    lines.append("Figures: see the HTML report (`planner report ... --html`).")
    return "\n".join(lines) + "\n"


def render_html(plan: CapacityPlan, measurements: Measurements) -> str:
    """The report as one self-contained HTML page, figures embedded as base64 PNG."""
    title = f"Capacity report: {plan.target_rate:,.0f}/s"
    return html_page(title, _blocks(plan, measurements, images=True))
