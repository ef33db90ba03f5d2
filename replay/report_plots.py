"""The report's figures, as PNG bytes: a run's per-second series with its phases shaded.

Matplotlib through ``Figure`` and its Agg canvas only (no pyplot, nothing at import), as in
planner/plots.py. Every figure shares the time axis (seconds since the run's start, shown
in minutes or hours for long runs) and shades the phases, so a spike, its drop and the
recovery line up from one figure to the next.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from replay.phases import Phase
from replay.report import Report

FloatArray = npt.NDArray[np.float64]
_DPI = 90
_WIDTH = 9.0
_SHADES = ("#e8eef7", "#f7efe3", "#eaf5ea", "#f5e8f0", "#efefef")
_KINDS_SHOWN = 6
_POINTS = 1500  # longer runs are drawn with several seconds per point


def _rate(num: npt.ArrayLike, den: npt.ArrayLike) -> FloatArray:
    n, d = np.asarray(num, np.float64), np.asarray(den, np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(d > 0, n / d, np.nan)


def _time_axis(seconds: int) -> tuple[float, str]:
    if seconds > 3 * 3600:
        return 3600.0, "h"
    if seconds > 900:
        return 60.0, "min"
    return 1.0, "s"


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    return buf.getvalue()


class _Canvas:
    """Axes sharing the run's time axis, with its phases shaded."""

    def __init__(self, report: Report, rows: int, title: str) -> None:
        self.n = report.series.seconds
        self.unit, self.unit_name = _time_axis(max(self.n, 1))
        self.step = max(1, -(-self.n // _POINTS))  # seconds per plotted point
        self.t = self.x(np.arange(0, self.n, self.step, dtype=np.float64) + self.step / 2)
        self.fig = Figure(figsize=(_WIDTH, 1.2 + 2.1 * rows), dpi=_DPI, layout="constrained")
        FigureCanvasAgg(self.fig)
        self.axes: list[Axes] = [self.fig.add_subplot(rows, 1, i + 1) for i in range(rows)]
        for ax in self.axes[1:]:
            ax.sharex(self.axes[0])
        self.fig.suptitle(title, fontsize=11)
        self._phases(report.phases.phases)

    def x(self, seconds: npt.ArrayLike) -> FloatArray:
        """Seconds since the start, in the axis' unit."""
        return np.asarray(seconds, np.float64) / self.unit

    def _phases(self, phases: Sequence[Phase]) -> None:
        span = max(self.n, 1)
        for ax in self.axes:
            for i, p in enumerate(phases):
                shade = _SHADES[i % len(_SHADES)]
                ax.axvspan(p.start_s / self.unit, p.end_s / self.unit, color=shade, zorder=0,
                           linewidth=0)  # fmt: skip
            ax.set_xlim(0, span / self.unit)
            ax.grid(True, alpha=0.3)
        top = self.axes[0]
        for p in phases:
            if (p.end_s - p.start_s) / span >= 0.04:
                middle = (p.start_s + p.end_s) / 2 / self.unit
                top.annotate(p.name, (middle, 1.0), xycoords=("data", "axes fraction"),
                             ha="center", va="bottom", fontsize=7, color="#555555",
                             annotation_clip=False)  # fmt: skip
        per = "" if self.step == 1 else f"; each point {self.step} s"
        self.axes[-1].set_xlabel(f"time since the run's start ({self.unit_name}{per})")

    def binned(self, values: npt.ArrayLike) -> FloatArray:
        """A per-second column as plotted: the mean over each point's seconds."""
        v = np.asarray(values, np.float64)
        if self.step == 1:
            return v
        edges = np.arange(0, v.size, self.step)
        sums = np.add.reduceat(np.nan_to_num(v), edges)
        counts = np.add.reduceat(np.isfinite(v).astype(np.float64), edges)
        return np.where(counts > 0, sums / np.maximum(counts, 1.0), np.nan)

    def line(self, ax: Axes, values: npt.ArrayLike, label: str, **style: Any) -> None:
        """A per-second count or rate (averaged over each point's seconds)."""
        ax.plot(self.t, self.binned(values), label=label, linewidth=1.0, **style)

    def peaks(self, ax: Axes, values: npt.ArrayLike, label: str, **style: Any) -> None:
        """A per-second percentile (the highest of each point's seconds)."""
        v = np.asarray(values, np.float64)
        if self.step > 1 and v.size:
            v = np.fmax.reduceat(v, np.arange(0, v.size, self.step))
        ax.plot(self.t, v, label=label, linewidth=1.0, **style)

    def finish(self) -> bytes:
        for ax in self.axes:
            handles, _ = ax.get_legend_handles_labels()
            if handles:
                ax.legend(fontsize=7, loc="upper right", framealpha=0.85, ncol=2)
        return _png(self.fig)


def _log_if_wide(ax: Axes, *columns: npt.ArrayLike) -> None:
    values = np.concatenate([np.asarray(c, np.float64).ravel() for c in columns])
    values = values[np.isfinite(values) & (values > 0)]
    if values.size and values.max() / max(values.min(), 1e-3) > 30:
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))


def rate_png(report: Report) -> bytes:
    s = report.series
    c = _Canvas(report, 1, "Offered and achieved rate, per second")
    ax = c.axes[0]
    c.line(ax, s.offered, "offered", color="tab:grey", linestyle="--")
    c.line(ax, s.requests, "achieved (completed)", color="tab:blue")
    ok = s.ok
    c.line(ax, ok, "ok (2xx/3xx)", color="tab:green", alpha=0.7)
    ax.set_ylabel("requests/s")
    ax.set_ylim(bottom=0)
    return c.finish()


def latency_png(report: Report) -> bytes:
    p = report.series.percentiles
    c = _Canvas(report, 1, "Latency per second: from intended time (and uncorrected)")
    ax = c.axes[0]
    c.peaks(ax, p["p99_ms"], "p99 from intended time", color="tab:red")
    c.peaks(ax, p["p50_ms"], "p50 from intended time", color="tab:blue")
    c.peaks(ax, p["p99_uncorrected_ms"], "p99 uncorrected", color="tab:red", linestyle=":")
    c.peaks(ax, p["p50_uncorrected_ms"], "p50 uncorrected", color="tab:blue", linestyle=":")
    _log_if_wide(ax, p["p99_ms"], p["p50_ms"])
    ax.set_ylabel("ms")
    return c.finish()


def errors_png(report: Report) -> bytes:
    s = report.series
    c = _Canvas(report, 1, "Error rate per second, by kind")
    ax = c.axes[0]
    kinds = list(s.errors_by_kind.items())
    requests = c.binned(s.requests)
    for kind, counts in kinds[:_KINDS_SHOWN]:
        ax.plot(c.t, 100 * _rate(c.binned(counts), requests), label=kind, linewidth=1.0)
    if len(kinds) > _KINDS_SHOWN:
        rest = c.binned(sum(v for _, v in kinds[_KINDS_SHOWN:]))
        ax.plot(c.t, 100 * _rate(rest, requests), label="other kinds", linewidth=1.0)
    if not kinds:
        ax.text(
            0.5,
            0.5,
            "no errors in this run",
            transform=ax.transAxes,
            ha="center",
            color="tab:green",
        )
    ax.set_ylabel("% of completed requests")
    ax.set_ylim(bottom=0)
    return c.finish()


def generator_png(report: Report) -> bytes:
    s = report.series
    c = _Canvas(report, 3, "The load generator: dropped requests, send lag, in flight")
    c.line(c.axes[0], s.dropped, "dropped", color="tab:orange", drawstyle="steps-mid")
    c.axes[0].set_ylabel("dropped/s")
    c.axes[0].set_ylim(bottom=0)
    c.peaks(c.axes[1], s.percentiles["send_lag_p99_ms"], "send lag p99", color="tab:purple")
    c.peaks(
        c.axes[1],
        s.percentiles["send_lag_p50_ms"],
        "send lag p50",
        color="tab:purple",
        linestyle=":",
    )
    c.axes[1].set_ylabel("ms")
    c.line(c.axes[2], s.inflight, "in flight (at the second's end)", color="tab:brown")
    if s.active_vus is not None:
        c.line(c.axes[2], s.active_vus, "active VUs", color="tab:cyan")
    else:
        c.axes[2].text(
            0.01,
            0.85,
            "active VUs: not recorded in these results",
            fontsize=7,
            transform=c.axes[2].transAxes,
            color="#777777",
        )
    c.axes[2].set_ylabel("requests / VUs")
    c.axes[2].set_ylim(bottom=0)
    return c.finish()


def endpoints_png(report: Report) -> bytes | None:
    s = report.series
    names = s.endpoints
    if len(names) < 2:
        return None
    c = _Canvas(report, 2, "Per endpoint: completed requests and p99 per second")
    p = s.endpoint_latency.percentiles([99]).reshape(len(names), s.seconds)
    for k, name in enumerate(names):
        colour = f"C{k % 10}"
        c.line(c.axes[0], s.endpoint_requests.get(name, np.zeros(s.seconds)), name, color=colour)
        c.peaks(c.axes[1], p[k], name, color=colour)
    c.axes[0].set_ylabel("requests/s")
    c.axes[1].set_ylabel("p99 ms")
    _log_if_wide(c.axes[1], p)
    return c.finish()


def scenarios_png(report: Report) -> bytes | None:
    sc = report.series.scenarios
    if not sc:
        return None
    c = _Canvas(report, 2, "Per scenario: rate and p99 per second")
    for k, (name, s) in enumerate(sc.items()):
        colour = f"C{k % 10}"
        rate = s.counts.get("requests")
        if rate is None:
            rate = s.counts.get("offered")
        if rate is not None:
            c.line(c.axes[0], rate, name, color=colour)
        vus = s.counts.get("active_vus")
        if vus is not None:
            c.line(c.axes[0], vus, f"{name} VUs", color=colour, linestyle=":")
        c.peaks(c.axes[1], s.p99_ms, name, color=colour)
    c.axes[0].set_ylabel("requests/s, VUs")
    c.axes[1].set_ylabel("p99 ms")
    return c.finish()


def visibility_png(report: Report) -> bytes | None:
    v = report.series.visibility
    if v is None:
        return None
    c = _Canvas(report, 2, "Ingest-to-visible lag, by acknowledgment second")
    p = v.lag.percentiles([50, 99])
    c.peaks(c.axes[0], p[:, 1], "p99", color="tab:red")
    c.peaks(c.axes[0], p[:, 0], "p50", color="tab:blue")
    c.axes[0].set_ylabel("ms")
    c.line(c.axes[1], v.count, "probes answered", color="tab:green", drawstyle="steps-mid")
    c.line(c.axes[1], v.timeouts, "probes timed out", color="tab:red", drawstyle="steps-mid")
    c.axes[1].set_ylabel("probes/s")
    return c.finish()


def scrape_png(report: Report) -> bytes | None:
    if not report.scrape:
        return None
    metrics = list(dict.fromkeys(s.metric for s in report.scrape))
    c = _Canvas(report, len(metrics), "The target's own metrics (scraped)")
    for ax, metric in zip(c.axes, metrics, strict=True):
        unit = ""
        for k, s in enumerate(x for x in report.scrape if x.metric == metric):
            t, values, unit = s.shown()
            ax.plot(
                c.x(t),
                values,
                label=s.label,
                color=f"C{k % 10}",
                linewidth=1.0,
                marker=".",
                markersize=2,
            )
        ax.set_ylabel(unit, fontsize=8)
        ax.set_title(metric + (" (rate)" if metric.endswith("_total") else ""), fontsize=8)
    return c.finish()


def drift_png(report: Report) -> bytes | None:
    d = report.drift
    if d is None:
        return None
    c = _Canvas(report, 2, f"Drift: {d.width_s} s windows and fitted slopes")
    mid = c.x(d.start_s + d.x_hours * 3600.0)
    for ax, key, values, colour in (
        (c.axes[0], "p99", d.p99_ms, "tab:red"),
        (c.axes[0], "p50", d.p50_ms, "tab:blue"),
        (c.axes[1], "error_rate", 100 * d.error_rate, "tab:orange"),
    ):
        ax.plot(mid, values, "o", markersize=2.5, color=colour, label=f"window {key}")
        slope = d.slopes[key]
        if slope is not None:
            scale = 100.0 if key == "error_rate" else 1.0
            fit = scale * (slope.intercept + slope.estimate * d.x_hours)
            ax.plot(
                mid,
                fit,
                color=colour,
                linewidth=1.2,
                label=f"{key} fit: {scale * slope.estimate:+.3g}/h",
            )
    c.axes[0].set_ylabel("ms")
    c.axes[1].set_ylabel("error rate %")
    return c.finish()


FIGURES: tuple[tuple[str, Callable[[Report], bytes | None]], ...] = (
    ("Offered and achieved rate", rate_png),
    ("Latency from intended time and uncorrected", latency_png),
    ("Error rate by kind", errors_png),
    ("Dropped, send lag, in flight and active VUs", generator_png),
    ("Per endpoint", endpoints_png),
    ("Per scenario", scenarios_png),
    ("Ingest-to-visible lag", visibility_png),
    ("Target metrics", scrape_png),
    ("Drift", drift_png),
)


def figures(report: Report) -> list[tuple[str, bytes]]:
    """Every figure the run has data for, as (title, PNG bytes)."""
    out = []
    for title, make in FIGURES:
        png = make(report)
        if png is not None:
            out.append((title, png))
    return out
