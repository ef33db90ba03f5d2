"""Results files, schema ``replay-results/1``: built from a run's aggregate, written.

docs/results-format.md describes every field. In short: run metadata; ``totals``; latency,
uncorrected latency and send lag percentiles for the run, per endpoint tag and per outcome
(HTTP status or error kind); errors by kind; whether the load generator was the limit
(`generator_limit_reasons`); the threshold verdicts; a per-second ``timeline``; and the
HdrHistograms themselves, in HdrHistogram's standard V2 compressed base64 encoding.
Reading and validating a file is replay/results_read.py's; merging, replay/merge.py's.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, NamedTuple

from capture.errors import InputError
from replay.aggregate import RunAggregate, Slice
from replay.histogram import (
    HIGHEST_US,
    LOWEST_US,
    SIGNIFICANT_FIGURES,
    LatencyHistogram,
    encode_sparse,
)
from replay.outcomes import ERROR_KINDS, is_ok
from replay.recorder import METRICS, SeriesDelta
from replay.thresholds import Verdict

SCHEMA = "replay-results/1"
PERCENTILES = (("p50", 50.0), ("p90", 90.0), ("p95", 95.0), ("p99", 99.0), ("p999", 99.9))
BLOCKS = ("latency_ms", "latency_uncorrected_ms", "send_lag_ms")  # one per METRICS entry
SEND_LAG_LIMIT_MS = 10.0
"""Send lag p99 above this means the generator, not the target, set the pace."""
ENCODING = "HdrHistogram V2 compressed, base64"


class ResultsError(InputError, ValueError):
    """A results file that cannot be used: the message names the file and the field."""


@dataclass
class RunMeta:
    """What ran, where and when. ``started`` and ``ended`` are ISO-8601 UTC."""

    corpus: str | None
    target: str | None
    model: str  # timeline, rate or closed
    scale: float | None = None
    speed: float | None = None
    rate: float | None = None
    workers: int = 1
    started: str = ""
    ended: str = ""
    version: str = ""
    host_cores: int = 1
    command_line: str = ""
    notes: list[str] = field(default_factory=list)
    segment: str | None = None  # "I/K": this run is execution segment I of K
    start_at: str | None = None  # --start-at, ISO-8601 UTC
    start_late_ms: float | None = None  # how much later than --start-at it started

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        for name in ("segment", "start_at", "start_late_ms"):
            if out[name] is None:
                del out[name]  # an unsegmented run's meta is as before
        return out

    @classmethod
    def from_json(cls, obj: Mapping[str, Any], where: str = "meta") -> RunMeta:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in obj.items() if k in known}
        for name, kinds in _META_TYPES.items():
            value = values.get(name)
            if name in values and (not isinstance(value, kinds) or isinstance(value, bool)):
                raise ResultsError(f"{where}.{name}: expected {kind_names(kinds)}")
        if "model" not in values:
            raise ResultsError(f"{where}.model: missing")
        values.setdefault("corpus", None)
        values.setdefault("target", None)
        values["notes"] = list(values.get("notes") or [])
        return cls(**values)


_META_TYPES: dict[str, tuple[type, ...]] = {
    "segment": (str, type(None)),
    "start_at": (str, type(None)),
    "start_late_ms": (int, float, type(None)),
    "corpus": (str, type(None)),
    "target": (str, type(None)),
    "model": (str,),
    "scale": (int, float, type(None)),
    "speed": (int, float, type(None)),
    "rate": (int, float, type(None)),
    "workers": (int,),
    "started": (str,),
    "ended": (str,),
    "version": (str,),
    "host_cores": (int,),
    "command_line": (str,),
    "notes": (list,),
}


# -- building ---------------------------------------------------------------------------
def latency_block(hist: LatencyHistogram) -> dict[str, Any]:
    """count, min, mean, p50, p90, p95, p99, p999, max (ms; None when empty), clamped."""
    block: dict[str, Any] = {"count": hist.count}
    if hist.count:
        block["min"] = hist.min
        block["mean"] = round(hist.mean, 6)
        block.update(
            zip(
                (k for k, _ in PERCENTILES),
                hist.percentiles([p for _, p in PERCENTILES]),
                strict=True,
            )
        )
        block["max"] = hist.max
    else:
        block.update({k: None for k in ("min", "mean", *(k for k, _ in PERCENTILES), "max")})
    block["clamped"] = hist.clamped
    return block


def _blocks(data: Slice, endpoint: str | None = None, status: str | None = None) -> dict[str, Any]:
    return {
        name: latency_block(data.histogram(metric, endpoint, status))
        for name, metric in zip(BLOCKS, METRICS, strict=True)
    }


def outcome_kind(outcome: str) -> str:
    """ok (2xx, 3xx), http_error (any other status) or transport_error (an error kind)."""
    if is_ok(outcome):
        return "ok"
    return "http_error" if outcome.isdigit() else "transport_error"


class GeneratorLimit(NamedTuple):
    """Why the load generator, not the target, was the limit: a stable `code` (dropped,
    send_lag), the `fact` in a few words, and the sentence that explains it."""

    code: str
    fact: str
    message: str


def generator_limit_reasons(
    dropped: int, offered: int, send_lag_p99_ms: float | None
) -> list[GeneratorLimit]:
    """Why the load generator, not the target, was the limit (empty when it was not)."""
    reasons = []
    if dropped > 0:
        share = f" ({dropped / offered:.2%} of {offered:,} due)" if offered else ""
        fact = f"{dropped:,} requests dropped{share}"
        reasons.append(
            GeneratorLimit(
                "dropped",
                fact,
                f"{fact}: they came due while a worker had --max-inflight requests "
                "outstanding, or after it had fallen behind its schedule",
            )
        )
    if send_lag_p99_ms is not None and send_lag_p99_ms > SEND_LAG_LIMIT_MS:
        fact = f"send lag p99 {send_lag_p99_ms:g} ms exceeds {SEND_LAG_LIMIT_MS:g} ms"
        reasons.append(
            GeneratorLimit(
                "send_lag",
                fact,
                f"{fact}: requests left late because the workers could not keep the schedule",
            )
        )
    return reasons


def _rate(n: int, seconds: float) -> float:
    return round(n / seconds, 6) if seconds > 0 else 0.0


def _series_json(s: SeriesDelta) -> dict[str, Any]:
    out: dict[str, Any] = {"endpoint": s.endpoint, "outcome": s.outcome, "requests": s.requests}
    for metric, sparse in zip(METRICS, s.histograms, strict=True):
        out[metric] = encode_sparse(sparse)
    clamped = [sparse.clamped for sparse in s.histograms]
    if any(clamped):
        out["clamped"] = clamped
    return out


def build_results(
    aggregate: RunAggregate, meta: RunMeta, verdicts: Sequence[Verdict]
) -> dict[str, Any]:
    """The ``replay-results/1`` document for a run (see docs/results-format.md)."""
    whole = aggregate.whole()
    seconds = aggregate.duration_s
    requests, ok, dropped = whole.requests(), whole.ok(), whole.dropped()
    blocks = _blocks(whole)
    notes = list(meta.notes)
    reasons = generator_limit_reasons(dropped, whole.offered, blocks["send_lag_ms"]["p99"])
    clamped = blocks["latency_ms"]["clamped"]
    if clamped:
        notes.append(
            f"{clamped:,} latencies above {HIGHEST_US // 1_000_000 // 3600} hour were "
            "recorded as 1 hour (the histograms' range)"
        )
    meta_json = RunMeta(**{**asdict(meta), "notes": notes}).to_json()

    keys = whole.keys()
    endpoints: dict[str, Any] = {}
    for endpoint in sorted({k[0] for k in keys} | set(whole.dropped_by_endpoint())):
        endpoints[endpoint] = {
            "requests": whole.requests(endpoint),
            "ok": whole.ok(endpoint),
            "errors": whole.errors(endpoint),
            "dropped": whole.dropped(endpoint),
            **_blocks(whole, endpoint),
            "outcomes": {o: whole.requests(endpoint, o) for e, o in keys if e == endpoint},
        }
    outcomes: dict[str, Any] = {}
    for outcome in sorted({k[1] for k in keys}, key=_outcome_order):
        outcomes[outcome] = {
            "kind": outcome_kind(outcome),
            "requests": whole.requests(status=outcome),
            **_blocks(whole, status=outcome),
        }
    errors = {o: v["requests"] for o, v in outcomes.items() if v["kind"] != "ok"}

    timeline = []
    for view in aggregate.timeline:
        timeline.append(
            {
                "t": view.index,
                "requests": view.requests,
                "ok": view.ok,
                "errors": view.errors,
                "dropped": view.dropped,
                "offered": view.offered,
                "offered_rps": view.offered_rps,
                "achieved_rps": view.achieved_rps,
                "p50_ms": view.p50_ms,
                "p99_ms": view.p99_ms,
                "inflight": view.inflight,
                "dropped_by_endpoint": aggregate.interval_dropped(view.index),
                "series": [_series_json(s) for s in aggregate.interval_series(view.index)],
            }
        )
    series = []
    for key in keys:
        parts = [whole.histogram(m, key[0], key[1]) for m in METRICS]
        entry: dict[str, Any] = {"endpoint": key[0], "outcome": key[1], "requests": parts[0].count}
        entry.update({m: h.encode() for m, h in zip(METRICS, parts, strict=True)})
        if any(h.clamped for h in parts):
            entry["clamped"] = [h.clamped for h in parts]
        series.append(entry)

    return {
        "schema": SCHEMA,
        "meta": meta_json,
        "totals": {
            "requests": requests,
            "ok": ok,
            "errors": requests - ok,
            "dropped": dropped,
            "offered": whole.offered,
            "duration_s": round(seconds, 6),
            "offered_rps": _rate(whole.offered, seconds),
            "achieved_rps": _rate(requests, seconds),
            "error_rate": round((requests - ok) / requests, 9) if requests else None,
        },
        **blocks,
        "endpoints": endpoints,
        "outcomes": outcomes,
        "errors": errors,
        "load_generator": {"limited": bool(reasons), "reasons": [r.message for r in reasons]},
        "thresholds": [v.to_json() for v in verdicts],
        "timeline": timeline,
        "histograms": {
            "encoding": ENCODING,
            "unit": "us",
            "lowest": LOWEST_US,
            "highest": HIGHEST_US,
            "significant_figures": SIGNIFICANT_FIGURES,
            "series": series,
        },
    }


def _outcome_order(outcome: str) -> tuple[int, str]:
    """Statuses in numeric order, then error kinds in their documented order."""
    if outcome.isdigit():
        return (0, outcome.zfill(3))
    return (1, f"{ERROR_KINDS.index(outcome):02d}" if outcome in ERROR_KINDS else outcome)


# -- writing and reading ----------------------------------------------------------------
def dumps_results(results: Mapping[str, Any]) -> str:
    """JSON text: indented, but one line per timeline second and per histogram series."""

    def compact(value: Any) -> str:
        return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))

    def pretty(value: Any, indent: str) -> str:
        text = json.dumps(value, ensure_ascii=False, allow_nan=False, indent=2)
        return text.replace("\n", "\n" + indent)

    def rows(items: Sequence[Any], indent: str) -> str:
        if not items:
            return "[]"
        inner = ",\n".join(indent + "  " + compact(item) for item in items)
        return "[\n" + inner + "\n" + indent + "]"

    parts = []
    for key, value in results.items():
        if key == "timeline" and isinstance(value, list):
            text = rows(value, "  ")
        elif key == "histograms" and isinstance(value, dict):
            inner = []
            for k, v in value.items():
                body = rows(v, "    ") if k == "series" and isinstance(v, list) else compact(v)
                inner.append(f"    {json.dumps(k)}: {body}")
            text = "{\n" + ",\n".join(inner) + "\n  }"
        else:
            text = pretty(value, "  ")
        parts.append(f"  {json.dumps(key)}: {text}")
    return "{\n" + ",\n".join(parts) + "\n}\n"


def write_results(path: str | os.PathLike[str], results: Mapping[str, Any]) -> None:
    """Write atomically (a temporary file renamed over ``path``)."""
    target = Path(path)
    text = dumps_results(results)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


def kind_names(kinds: tuple[type, ...]) -> str:
    """The JSON types `kinds` in words, for a message: "an integer or null"."""
    names = {
        int: "an integer",
        float: "a number",
        str: "a string",
        list: "a list",
        dict: "an object",
        bool: "true or false",
        type(None): "null",
    }
    return " or ".join(dict.fromkeys(names.get(k, k.__name__) for k in kinds))
