"""A rehearsal report (``replay-report/1``) of one run, or of several made side by side.

``build_report(paths, phases=None)`` reads the results files, lays the run out second by
second (replay/report_series.py), names its phases (replay/phases.py), finds when it
recovered from a spike (replay/recovery.py), measures drift over its steady part
(replay/drift.py), judges the guide's targets (replay/report_verdicts.py) and returns a
``Report``: the JSON document and what the figures and the Markdown/HTML renderers need.
docs/report.md describes every field.
"""

from __future__ import annotations

import math
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from replay.merge import merge_results
from replay.phases import Phase, Phases, run_phases
from replay.recovery import Recovery, find_recovery, not_applicable
from replay.report_drift import DriftWindows, measure_drift
from replay.report_scrape import ScrapeSeries, memory_slopes, read_scrape
from replay.report_series import ReportError, RunSeries, load_series, rate, rounded
from replay.report_verdicts import (
    INGEST_ENDPOINTS,
    QUERY_ENDPOINTS,
    PhaseFigures,
    Verdict,
    judge,
    judged_phase,
)
from replay.results_read import read_results

SCHEMA = "replay-report/1"
RUN_KEYS = ("corpus", "target", "model", "scale", "speed", "rate", "workers", "started",
            "ended", "command_line", "notes")  # fmt: skip
FloatArray = npt.NDArray[np.float64]


@dataclass
class Report:
    document: dict[str, Any]
    series: RunSeries
    phases: Phases
    drift: DriftWindows | None
    scrape: list[ScrapeSeries] = field(default_factory=list)


def _column(values: npt.ArrayLike, digits: int = 3) -> list[float | None]:
    arr = np.asarray(values, dtype=np.float64)
    rounded = np.round(arr, digits)
    return [None if math.isnan(v) else v for v in rounded.tolist()]


SECRET_OPTIONS = ("--api-key",)


def redact_command(command: str) -> str:
    """The command lines with every secret option's value replaced by ``***``."""
    parts = []
    for part in command.split(" ; "):
        try:
            words = shlex.split(part)
        except ValueError:
            parts.append("(a command line that cannot be read, not shown)")
            continue
        out, hide = [], False
        for word in words:
            if hide:
                out.append("***")
                hide = False
            elif word in SECRET_OPTIONS:
                out.append(word)
                hide = True
            elif word.startswith(tuple(f"{o}=" for o in SECRET_OPTIONS)):
                out.append(word.split("=", 1)[0] + "=***")
            else:
                out.append(word)
        parts.append(shlex.join(out))
    return " ; ".join(parts)


def _meta_for_phases(documents: Sequence[dict[str, Any]], merged: dict[str, Any]) -> dict[str, Any]:
    meta = dict(merged["meta"])
    for key in ("stages", "scenarios", "rate"):
        values = [d["meta"].get(key) for d in documents]
        if all(v == values[0] for v in values):
            meta[key] = values[0]
        else:
            meta.pop(key, None)
    return meta


def build_report(paths: Sequence[str], phases: str | None = None) -> Report:
    """Read ``paths`` (replay-results/1) and build the report; ReportError (a bad --phases
    too) or ResultsError, both InputErrors, name what is wrong."""
    names = [str(p) for p in paths]
    documents = [read_results(p) for p in paths]
    merged = documents[0] if len(documents) == 1 else merge_results(documents, names)
    series = load_series(documents, names)
    duration = float(merged["totals"]["duration_s"]) or float(series.seconds)
    try:
        run = run_phases(_meta_for_phases(documents, merged), duration, phases)
    except ValueError as exc:
        raise ReportError(f"--phases: {exc}") from None
    phase_rows = [_phase_json(series, p) for p in run.phases]
    recovery = _recovery(series, run, phase_rows)
    drift_windows, drift_json = measure_drift(series, run, duration)
    limited = bool(merged["load_generator"]["limited"])
    verdicts = _verdicts(series, run, phase_rows, limited)
    scrape = read_scrape(documents, names)
    notes = list(run.notes) + _presence_notes(series, scrape, documents)
    shown = {k: merged["meta"].get(k) for k in RUN_KEYS}
    shown["command_line"] = redact_command(str(shown.get("command_line") or ""))
    document: dict[str, Any] = {
        "schema": SCHEMA,
        "sources": names,
        "run": shown,
        "totals": merged["totals"],
        "latency_ms": merged["latency_ms"],
        "latency_uncorrected_ms": merged["latency_uncorrected_ms"],
        "send_lag_ms": merged["send_lag_ms"],
        "load_generator": merged["load_generator"],
        "thresholds": merged["thresholds"],
        "phases_from": run.source,
        "spike_shaped": run.spike_shaped,
        "phases": phase_rows,
        "recovery": recovery.to_json(),
        "drift": drift_json,
        "verdicts": [v.to_json() for v in verdicts],
        "notes": notes,
        "series": _series_json(series),
    }
    if series.visibility is not None:
        document["visibility_lag_ms"] = _visibility_summary(series)
    if scrape:
        document["scrape"] = {
            "series": [
                {"url": s.url, "metric": s.metric, "labels": s.labels, "samples": int(s.t.size)}
                for s in scrape
            ],
            "memory": memory_slopes(scrape),
        }
    return Report(document, series, run, drift_windows, scrape)


def _visibility_summary(series: RunSeries) -> dict[str, Any]:
    v = series.visibility
    assert v is not None
    whole = np.zeros(series.seconds, np.int64)
    p = v.lag.regroup(whole, 1).percentiles([50, 99])[0]
    return {
        "count": int(v.count.sum()),
        "timeouts": int(v.timeouts.sum()),
        "p50_ms": rounded(p[0]),
        "p99_ms": rounded(p[1]),
    }


def _phase_json(series: RunSeries, phase: Phase) -> dict[str, Any]:
    a, b = phase.seconds(series.seconds)
    width = b - a
    p50 = p99 = None
    if width:
        p = series.latency_over([(a, b)]).percentiles([50, 99])[0]
        p50, p99 = rounded(p[0]), rounded(p[1])
    requests = int(series.requests[a:b].sum())
    errors = int(series.errors[a:b].sum())
    return {
        "name": phase.name,
        "start_s": round(phase.start_s, 3),
        "end_s": round(phase.end_s, 3),
        "seconds": [a, b],
        "offered_rps": rounded(series.offered[a:b].sum() / width) if width else None,
        "achieved_rps": rounded(requests / width) if width else None,
        "p50_ms": p50,
        "p99_ms": p99,
        "error_rate": rounded(errors / requests, 6) if requests else None,
        "requests": requests,
        "dropped": int(series.dropped[a:b].sum()),
        "rate_from": rounded(phase.rate_from),
        "rate_to": rounded(phase.rate_to),
    }


def _recovery(series: RunSeries, run: Phases, rows: list[dict[str, Any]]) -> Recovery:
    baseline, spike = run.named("baseline"), run.named("spike")
    if not run.spike_shaped or baseline is None or spike is None:
        return not_applicable(
            "not a spike-shaped run (a baseline, a ramp to the peak, a hold, a drop): "
            "give --phases with a baseline and a spike phase to measure recovery"
        )
    row = next(r for r in rows if r["name"] == "baseline")
    return find_recovery(
        series.percentiles["p99_ms"],
        rate(series.errors, series.requests),
        spike.end_s,
        row["p99_ms"],
        row["error_rate"],
    )


def _verdicts(
    series: RunSeries, run: Phases, rows: list[dict[str, Any]], limited: bool
) -> list[Verdict]:
    i = judged_phase(
        [r["name"] for r in rows],
        [r["offered_rps"] for r in rows],
        [r["seconds"][1] - r["seconds"][0] for r in rows],
        run.spike_shaped,
    )
    row = rows[i]
    a, b = row["seconds"]
    eps = series.endpoints

    def p99_of(group: Sequence[str]) -> float | None:
        if not any(e in eps for e in group) or b <= a:
            return None
        return rounded(float(series.latency_over([(a, b)], group).percentiles([99])[0, 0]))

    ingest_ok = sum(
        int(series.endpoint_ok.get(e, np.zeros(0))[a:b].sum()) for e in INGEST_ENDPOINTS
    )
    ingest_req = sum(
        int(series.endpoint_requests.get(e, np.zeros(0))[a:b].sum()) for e in INGEST_ENDPOINTS
    )
    ingest_drop = sum(
        int(series.endpoint_dropped.get(e, np.zeros(0))[a:b].sum()) for e in INGEST_ENDPOINTS
    )
    vus = None if series.active_vus is None or b <= a else int(series.active_vus[a:b].max())
    figures = PhaseFigures(
        name=row["name"],
        seconds=float(b - a),
        ingest_p99_ms=p99_of(INGEST_ENDPOINTS),
        query_p99_ms=p99_of(QUERY_ENDPOINTS),
        ingest_ok=ingest_ok,
        ingest_offered=ingest_req + ingest_drop,
        requests=int(series.requests[a:b].sum()),
        errors=int(series.errors[a:b].sum()),
        max_active_vus=vus,
    )
    return judge(figures, limited)


def _presence_notes(
    series: RunSeries, scrape: list[ScrapeSeries], documents: Sequence[dict[str, Any]]
) -> list[str]:
    notes = []
    if series.active_vus is None:
        notes.append("active VUs: not in these results (timeline[].active_vus)")
    if not series.scenarios:
        notes.append("per-scenario series: not in these results (timeline[].scenarios)")
    elif any(not s.exact for s in series.scenarios.values()):
        notes.append(
            "per-scenario p50/p99 of merged files without histograms: the highest "
            "file's figure per second (an upper bound)"
        )
    if series.visibility is None:
        notes.append("ingest-to-visible lag: not in these results (timeline[].visibility_lag_ms)")
    if not scrape:
        notes.append("target metrics: not in these results (scrape)")
    return notes


def _series_json(s: RunSeries) -> dict[str, Any]:
    n = s.seconds
    out: dict[str, Any] = {
        "t": list(range(n)),
        "offered_rps": s.offered.tolist(),
        "achieved_rps": s.requests.tolist(),
        "dropped": s.dropped.tolist(),
        "inflight": s.inflight.tolist(),
        "error_rate": _column(rate(s.errors, s.requests), 6),
        "errors_by_kind": {k: _column(rate(v, s.requests), 6) for k, v in s.errors_by_kind.items()},
    }
    if s.active_vus is not None:
        out["active_vus"] = s.active_vus.tolist()
    for key, values in s.percentiles.items():
        out[key] = _column(values)
    names = s.endpoints
    if names:
        p = s.endpoint_latency.percentiles([50, 99]).reshape(len(names), n, 2)
        out["endpoints"] = {
            e: {
                "achieved_rps": s.endpoint_requests.get(e, np.zeros(n, np.int64)).tolist(),
                "error_rate": _column(
                    rate(
                        s.endpoint_requests.get(e, np.zeros(n)) - s.endpoint_ok.get(e, np.zeros(n)),
                        s.endpoint_requests.get(e, np.zeros(n)),
                    ),
                    6,
                ),
                "dropped": s.endpoint_dropped.get(e, np.zeros(n, np.int64)).tolist(),
                "p50_ms": _column(p[k, :, 0]),
                "p99_ms": _column(p[k, :, 1]),
            }
            for k, e in enumerate(names)
        }
    if s.scenarios:
        out["scenarios"] = {
            name: {
                **{k: v.tolist() for k, v in sc.counts.items() if v is not None},
                "p50_ms": _column(sc.p50_ms),
                "p99_ms": _column(sc.p99_ms),
            }
            for name, sc in s.scenarios.items()
        }
    if s.visibility is not None:
        p = s.visibility.lag.percentiles([50, 99])
        out["visibility_lag_ms"] = {
            "count": s.visibility.count.tolist(),
            "timeouts": s.visibility.timeouts.tolist(),
            "p50_ms": _column(p[:, 0]),
            "p99_ms": _column(p[:, 1]),
        }
    return out


__all__ = ["SCHEMA", "Report", "ReportError", "build_report"]
