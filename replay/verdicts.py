"""Judging thresholds against a run: values, verdicts, windows, abort checks, exit status.

A threshold is judged over the whole run; with ``[window=10s]`` over every full window of
that many seconds, sliding by one second ([0, 10), [1, 11), ...), so that a failure in the
last minute is not averaged away by the minutes before it. A run shorter than its window is
judged once, over the whole run, and says so. A window (or run) with no samples for the
metric is not judged; a threshold that judged nothing passes with ``value`` None and the note
"no data" - a typo in an endpoint is refused at parse time instead.

``evaluate_interval`` is the per-second check of ``--abort-on-fail``: whole-run thresholds
on the data so far (as k6's abortOnFail does), except where more data could still make them
pass, which wait for the end.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from capture.errors import EXIT_THRESHOLD_FAILED as EXIT_THRESHOLD_FAILED
from replay.aggregate import RunAggregate, Slice
from replay.histogram import LatencyHistogram
from replay.threshold_grammar import TREND, Threshold, duration_text

if TYPE_CHECKING:
    from replay.visibility import VisibilityAggregate


def measure(threshold: Threshold, data: Slice) -> float | None:
    """The threshold's aggregation over ``data``; None when there is nothing to judge."""
    t = threshold
    if t.metric in TREND:
        return trend_value(t, data.histogram(TREND[t.metric], t.endpoint, t.status))
    if t.metric == "http_req_failed":
        sent = data.requests(t.endpoint, t.status)
        errors = data.errors(t.endpoint, t.status)
        if t.aggregation == "count":
            return float(errors)
        return errors / sent if sent else None
    if t.metric == "http_reqs":
        n = data.requests(t.endpoint, t.status)
        if t.aggregation == "count":
            return float(n)
        return n / data.seconds if data.seconds > 0 else None
    dropped = data.dropped(t.endpoint)
    if t.aggregation == "count":
        return float(dropped)
    offered = data.offered if t.endpoint is None else data.requests(t.endpoint) + dropped
    return dropped / offered if offered else None


def trend_value(t: Threshold, hist: LatencyHistogram) -> float | None:
    """A trend metric's aggregation over one histogram (ms); None when it is empty."""
    if t.aggregation == "count":
        return float(hist.count)  # a count is 0, not missing, when nothing matched
    if not hist.count:
        return None
    if t.aggregation == "avg":
        return hist.mean
    if t.aggregation == "min":
        return hist.min
    if t.aggregation == "max":
        return hist.max
    return hist.percentile(50.0 if t.aggregation == "med" else t.percentile or 0.0)


@dataclass(frozen=True)
class Verdict:
    """How one threshold fared. For windowed thresholds, ``value`` and ``window`` are the
    worst window's; ``windows`` counts the windows judged, ``failed_windows`` those failed."""

    threshold: Threshold
    ok: bool
    value: float | None
    window: tuple[int, int] | None = None  # [start_s, end_s) since the run's start
    windows: int = 0
    failed_windows: int = 0
    first_failed_window: tuple[int, int] | None = None
    note: str = ""

    def __str__(self) -> str:
        """``http_req_failed: rate<0.01 (rate=0.023 over 40s-50s)``: the text and the value."""
        if self.value is None:
            return f"{self.threshold} (no data)"
        where = f" over {self.window[0]}s-{self.window[1]}s" if self.window else ""
        return f"{self.threshold} ({self.threshold.aggregation_name}={self.value:g}{where})"

    def to_json(self) -> dict[str, Any]:
        return {
            "threshold": str(self.threshold),
            "ok": self.ok,
            "value": self.value,
            "window": list(self.window) if self.window else None,
            "windows": self.windows,
            "failed_windows": self.failed_windows,
            "first_failed_window": (
                list(self.first_failed_window) if self.first_failed_window else None
            ),
            "note": self.note,
        }


def _worse(op: str, a: float, b: float) -> bool:
    """Is ``a`` a worse value than ``b`` for this operator?"""
    if op in ("<", "<="):
        return a > b
    if op in (">", ">="):
        return a < b
    return False


def _whole_verdict(t: Threshold, data: Slice, note: str = "") -> Verdict:
    value = measure(t, data)
    if value is None:
        return Verdict(t, True, None, note="no data")
    return Verdict(t, t.holds(value), value, note=note)


def evaluate(
    thresholds: Sequence[Threshold],
    aggregate: RunAggregate,
    scenarios: Mapping[str, RunAggregate] | None = None,
    *,
    visibility: VisibilityAggregate | None = None,
) -> list[Verdict]:
    """Judge every threshold: whole run, or every full sliding window. Input order kept.
    A threshold tagged ``{scenario:NAME}`` is judged on ``scenarios[NAME]`` (no data when
    the run has no such scenario); ``visibility_lag`` on the probes' histograms by
    acknowledgment second."""
    if any(t.scenario is not None for t in thresholds):
        return _by_scenario(
            thresholds,
            aggregate,
            scenarios or {},
            lambda ts, agg: evaluate(ts, agg, visibility=visibility),
        )
    verdicts: dict[int, Verdict] = {}
    by_window: dict[int, list[int]] = {}
    for i, t in enumerate(thresholds):
        if t.metric == "visibility_lag":
            verdicts[i] = _visibility_verdict(t, visibility, aggregate.intervals)
        elif t.window_s is None:
            verdicts[i] = _whole_verdict(t, aggregate.whole())
        elif aggregate.intervals < t.window_s:
            shown = duration_text(t.window_s)
            note = f"run shorter than the {shown} window: judged over the whole run"
            verdicts[i] = _whole_verdict(t, aggregate.whole(), note)
        else:
            by_window.setdefault(t.window_s, []).append(i)
    for width, members in by_window.items():
        state = {i: _WindowState() for i in members}
        for window in aggregate.windows(width):
            for i in members:
                state[i].judge(thresholds[i], window)
        for i in members:
            verdicts[i] = state[i].verdict(thresholds[i])
    return [verdicts[i] for i in range(len(thresholds))]


def _visibility_verdict(
    t: Threshold, visibility: VisibilityAggregate | None, seconds: int
) -> Verdict:
    if visibility is None:
        return Verdict(t, True, None, note="no data (run without --visibility-probe)")
    if t.window_s is None or seconds < t.window_s:
        note = ""
        if t.window_s is not None:
            note = f"run shorter than the {duration_text(t.window_s)} window"
        value = trend_value(t, visibility.span()[0])
        if value is None:
            return Verdict(t, True, None, note="no data")
        return Verdict(t, t.holds(value), value, note=note)
    state = _WindowState()
    for start, end, hist in visibility.windows(t.window_s, seconds):
        state.judge_value(t, trend_value(t, hist), (start, end))
    return state.verdict(t)


class _WindowState:
    __slots__ = ("failed", "first_failed", "judged", "worst", "worst_window")

    def __init__(self) -> None:
        self.judged = self.failed = 0
        self.worst: float | None = None
        self.worst_window: tuple[int, int] | None = None
        self.first_failed: tuple[int, int] | None = None

    def judge(self, t: Threshold, window: Slice) -> None:
        self.judge_value(t, measure(t, window), (window.start, window.end))

    def judge_value(self, t: Threshold, value: float | None, span: tuple[int, int]) -> None:
        if value is None:
            return
        self.judged += 1
        holds = t.holds(value)
        if not holds:
            self.failed += 1
            if self.first_failed is None:
                self.first_failed = span
        if (
            self.worst is None
            or _worse(t.op, value, self.worst)
            or (not holds and self.failed == 1 and t.op in ("==", "!="))
        ):
            self.worst, self.worst_window = value, span

    def verdict(self, t: Threshold) -> Verdict:
        if not self.judged:
            return Verdict(t, True, None, note="no data")
        return Verdict(
            t,
            self.failed == 0,
            self.worst,
            self.worst_window,
            self.judged,
            self.failed,
            self.first_failed,
        )


def decidable_early(t: Threshold) -> bool:
    """Can a whole-run failure seen before the end no longer turn into a pass?

    Counts and max only grow, min only falls: ``count<N`` or ``max<=X`` that fails now fails
    at the end, while ``count>N`` may still pass. Averages, percentiles and rates are judged
    on the data so far (k6's abortOnFail semantics)."""
    if t.op in ("==", "!="):
        return False
    grows = t.aggregation in ("count", "max")
    falls = t.aggregation == "min"
    if grows:
        return t.op in ("<", "<=")
    if falls:
        return t.op in (">", ">=")
    return True


def _by_scenario(
    thresholds: Sequence[Threshold],
    aggregate: RunAggregate,
    scenarios: Mapping[str, RunAggregate],
    judge: Callable[[Sequence[Threshold], RunAggregate], list[Verdict]],
) -> list[Verdict]:
    """`judge` each scenario's thresholds on its own aggregate; input order kept."""
    groups: dict[str | None, list[Threshold]] = {}
    for t in thresholds:
        groups.setdefault(t.scenario, []).append(t)
    judged: dict[Threshold, list[Verdict]] = {}
    for name, members in groups.items():
        data = aggregate if name is None else scenarios.get(name) or RunAggregate()
        plain = {dataclasses.replace(t, scenario=None): t for t in members}
        for verdict in judge(list(plain), data):
            original = plain[verdict.threshold]
            judged.setdefault(original, []).append(dataclasses.replace(verdict, threshold=original))
    out = []
    for t in thresholds:
        if judged.get(t):
            out.append(judged[t].pop(0))
    return out


def evaluate_interval(
    thresholds: Sequence[Threshold],
    aggregate: RunAggregate,
    k: int,
    scenarios: Mapping[str, RunAggregate] | None = None,
) -> list[Verdict]:
    """The checks ``--abort-on-fail`` makes after interval ``k``; stop if any is not ok.

    Windowed thresholds: the full window ending with interval ``k``. Whole-run thresholds:
    the data so far, when ``decidable_early``. Thresholds that cannot be judged yet are left
    out of the list.
    """
    if any(t.scenario is not None for t in thresholds):
        return _by_scenario(
            thresholds, aggregate, scenarios or {}, lambda ts, a: evaluate_interval(ts, a, k)
        )
    out = []
    whole: Slice | None = None
    for t in thresholds:
        if t.metric == "visibility_lag":
            continue  # probes end long after their second: judged at the end
        if t.window_s is not None:
            start = k + 1 - t.window_s
            if start < 0:
                continue
            window = aggregate.window(start, k + 1)
            value = measure(t, window)
            if value is None:
                continue
            holds = t.holds(value)
            span = (start, k + 1)
            out.append(
                Verdict(t, holds, value, span, 1, 0 if holds else 1, None if holds else span)
            )
        elif decidable_early(t):
            whole = whole or aggregate.whole()
            verdict = _whole_verdict(t, whole)
            if verdict.value is not None:
                out.append(verdict)
    return out


def first_failure(
    thresholds: Sequence[Threshold], aggregate: RunAggregate, k: int | None = None
) -> Verdict | None:
    """The first failed check of ``evaluate_interval`` after interval ``k`` (by default the
    newest interval every live worker has delivered), or None: ``--abort-on-fail``'s test."""
    if k is None:
        k = aggregate.complete()
    if k < 0:
        return None
    for verdict in evaluate_interval(thresholds, aggregate, k):
        if not verdict.ok:
            return verdict
    return None


def all_ok(verdicts: Iterable[Verdict]) -> bool:
    return all(v.ok for v in verdicts)


def exit_status(verdicts: Iterable[Verdict]) -> int:
    """0 when every threshold held, ``EXIT_THRESHOLD_FAILED`` (99) otherwise."""
    return 0 if all_ok(verdicts) else EXIT_THRESHOLD_FAILED
