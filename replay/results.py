"""Results files, schema ``replay-results/1``: build, write, read (validated) and merge.

docs/results-format.md describes every field. In short: run metadata; ``totals``; latency,
uncorrected latency and send lag percentiles for the run, per endpoint tag and per outcome
(HTTP status or error kind); errors by kind; whether the load generator was the limit; the
threshold verdicts; a per-second ``timeline``; and the HdrHistograms themselves, for the
whole run (``histograms``) and for every second and series (in the timeline), in
HdrHistogram's standard V2 compressed base64 encoding.

Merging is exact: ``merge_results`` rebuilds one ``RunAggregate`` from the inputs' per-second
series (bucket counts add; timelines align by second index, as runs started together from
several hosts do), then builds the results again from it, so every percentile of the merged
file is that of one histogram holding every request of every input, and thresholds are
judged again on the merged data. ``merge_results([r])`` reproduces ``r`` (metadata aside).

The load generator, not the target, was the limit (``load_generator.limited``) when any
request was dropped (a worker had ``--max-inflight`` requests outstanding when the next came
due, or it came due but the run ended before the worker, behind its schedule, got to it) or
when the send lag p99 exceeds ``SEND_LAG_LIMIT_MS`` (requests left late because the
worker's CPU or event loop could not keep the schedule; latencies from the intended time
then include that lag).

API: ``RunMeta(...)``, ``build_results(aggregate, meta, verdicts) -> dict``,
``write_results(path, results)``, ``read_results(path) -> dict`` (ResultsError, a ValueError,
naming the file and field), ``merge_results(results, sources=None, thresholds=()) -> dict``,
``aggregate_from_results(results) -> RunAggregate``.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from capture.errors import InputError
from replay.aggregate import RunAggregate, Slice, is_ok
from replay.histogram import (
    HIGHEST_US,
    LOWEST_US,
    SIGNIFICANT_FIGURES,
    LatencyHistogram,
    decode_sparse,
    encode_sparse,
)
from replay.recorder import ERROR_KINDS, METRICS, SeriesDelta
from replay.segments import join_segments
from replay.thresholds import Threshold, Verdict, evaluate, parse_threshold

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
                raise ResultsError(f"{where}.{name}: expected {_kind_names(kinds)}")
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


def generator_limit_reasons(dropped: int, offered: int, send_lag_p99_ms: float | None) -> list[str]:
    """Why the load generator, not the target, was the limit (empty when it was not)."""
    reasons = []
    if dropped > 0:
        share = f" ({dropped / offered:.2%} of {offered:,} due)" if offered else ""
        reasons.append(
            f"{dropped:,} requests dropped{share}: they came due while a worker had "
            "--max-inflight requests outstanding, or after it had fallen behind its schedule"
        )
    if send_lag_p99_ms is not None and send_lag_p99_ms > SEND_LAG_LIMIT_MS:
        reasons.append(
            f"send lag p99 {send_lag_p99_ms:g} ms exceeds {SEND_LAG_LIMIT_MS:g} ms: requests "
            "left late because the workers could not keep the schedule"
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
        "load_generator": {"limited": bool(reasons), "reasons": reasons},
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


def read_results(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and validate a results file; ResultsError naming the file and field if bad."""
    name = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ResultsError(f"{name}: no such file") from None
    except IsADirectoryError:
        raise ResultsError(f"{name}: is a directory, not a results file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ResultsError(f"{name}: cannot read ({exc})") from None
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ResultsError(
            f"{name}: not JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"
        ) from None
    validate_results(obj, name)
    results: dict[str, Any] = obj
    return results


# -- validation -------------------------------------------------------------------------
_NUMBER = (int, float)
_OPT_NUMBER = (int, float, type(None))


def _kind_names(kinds: tuple[type, ...]) -> str:
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


def _get(obj: Mapping[str, Any], key: str, kinds: tuple[type, ...], where: str) -> Any:
    """``obj[key]`` if it is of ``kinds``; ``where`` is "file: parent." for the message."""
    if key not in obj:
        raise ResultsError(f"{where}{key}: missing")
    value = obj[key]
    if isinstance(value, bool) and bool not in kinds:
        raise ResultsError(f"{where}{key}: expected {_kind_names(kinds)}, found {value}")
    if not isinstance(value, kinds):
        found = "null" if value is None else type(value).__name__
        raise ResultsError(f"{where}{key}: expected {_kind_names(kinds)}, found {found}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ResultsError(f"{where}{key}: not a finite number")
    if kinds == (int,) and isinstance(value, int) and value < 0:
        raise ResultsError(f"{where}{key}: negative")
    return value


def _series_entry(entry: Any, where: str) -> None:
    if not isinstance(entry, dict):
        raise ResultsError(f"{where.rstrip('.')}: expected an object")
    _get(entry, "endpoint", (str,), where)
    _get(entry, "outcome", (str,), where)
    _get(entry, "requests", (int,), where)
    for metric in METRICS:
        _get(entry, metric, (str,), where)
    if "clamped" in entry:
        clamped = entry["clamped"]
        if not (
            isinstance(clamped, list)
            and len(clamped) == len(METRICS)
            and all(isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in clamped)
        ):
            raise ResultsError(f"{where}clamped: expected a list of 3 counts")


def validate_results(obj: Any, name: str = "results") -> None:
    """Check the structure of a ``replay-results/1`` document (not the histograms' bytes).

    ResultsError's message is ``name: field.path: what is wrong``."""
    if not isinstance(obj, dict):
        raise ResultsError(f"{name}: expected a JSON object, found {type(obj).__name__}")
    schema = obj.get("schema")
    if schema != SCHEMA:
        found = "missing" if schema is None else repr(schema)
        raise ResultsError(f"{name}: schema: {found}, expected {SCHEMA!r}")
    top = f"{name}: "
    RunMeta.from_json(_get(obj, "meta", (dict,), top), f"{top}meta")
    totals = _get(obj, "totals", (dict,), top)
    for key in ("requests", "ok", "errors", "dropped", "offered"):
        _get(totals, key, (int,), f"{top}totals.")
    for key in ("duration_s", "offered_rps", "achieved_rps"):
        _get(totals, key, _NUMBER, f"{top}totals.")
    for block in BLOCKS:
        b = _get(obj, block, (dict,), top)
        for key in ("count", "clamped"):
            _get(b, key, (int,), f"{top}{block}.")
        for key in ("min", "mean", *(k for k, _ in PERCENTILES), "max"):
            _get(b, key, _OPT_NUMBER, f"{top}{block}.")
    for section in ("endpoints", "outcomes", "errors", "load_generator"):
        _get(obj, section, (dict,), top)
    for i, v in enumerate(_get(obj, "thresholds", (list,), top)):
        at = f"{top}thresholds[{i}]."
        if not isinstance(v, dict):
            raise ResultsError(f"{at.rstrip('.')}: expected an object")
        _get(v, "threshold", (str,), at)
        _get(v, "ok", (bool,), at)
    for i, entry in enumerate(_get(obj, "timeline", (list,), top)):
        at = f"{top}timeline[{i}]."
        if not isinstance(entry, dict):
            raise ResultsError(f"{at.rstrip('.')}: expected an object")
        for key in ("t", "requests", "ok", "errors", "dropped", "offered", "inflight"):
            _get(entry, key, (int,), at)
        dropped = _get(entry, "dropped_by_endpoint", (dict,), at)
        for endpoint in dropped:
            _get(dropped, endpoint, (int,), f"{at}dropped_by_endpoint.")
        for j, s in enumerate(_get(entry, "series", (list,), at)):
            _series_entry(s, f"{at}series[{j}].")
    hists = _get(obj, "histograms", (dict,), top)
    for j, s in enumerate(_get(hists, "series", (list,), f"{top}histograms.")):
        _series_entry(s, f"{top}histograms.series[{j}].")


# -- merging ----------------------------------------------------------------------------
def aggregate_from_results(
    results: Mapping[str, Any],
    into: RunAggregate | None = None,
    source: int = 0,
    name: str = "results",
) -> RunAggregate:
    """Rebuild (or add to ``into``) the aggregate a results document was built from."""
    aggregate = into if into is not None else RunAggregate()
    totals = 0
    for i, entry in enumerate(results["timeline"]):
        series = []
        for j, s in enumerate(entry["series"]):
            clamped = s.get("clamped") or [0, 0, 0]
            hists = []
            for m, metric in enumerate(METRICS):
                try:
                    hists.append(decode_sparse(s[metric], clamped[m]))
                except ValueError as exc:
                    raise ResultsError(
                        f"{name}: timeline[{i}].series[{j}].{metric}: {exc}"
                    ) from None
            series.append(
                SeriesDelta(
                    s["endpoint"], s["outcome"], s["requests"], (hists[0], hists[1], hists[2])
                )
            )
            totals += s["requests"]
        try:
            aggregate.add_interval(
                entry["t"],
                worker=source,
                offered=entry["offered"],
                inflight=entry["inflight"],
                dropped=entry["dropped_by_endpoint"],
                series=series,
            )
        except ValueError as exc:
            raise ResultsError(f"{name}: timeline[{i}]: {exc}") from None
    expected = results["totals"]["requests"]
    if totals != expected:
        raise ResultsError(
            f"{name}: timeline series add up to {totals:,} requests but totals.requests "
            f"is {expected:,}: the file was cut or edited"
        )
    return aggregate


def thresholds_of(results: Mapping[str, Any], name: str = "results") -> list[Threshold]:
    """The thresholds a results document was judged against."""
    out = []
    for i, v in enumerate(results["thresholds"]):
        try:
            out.append(parse_threshold(v["threshold"]))
        except ValueError as exc:
            raise ResultsError(f"{name}: thresholds[{i}].threshold: {exc}") from None
    return out


def _same_or_joined(values: Iterable[Any]) -> Any:
    distinct = list(dict.fromkeys(v for v in values if v is not None))
    if not distinct:
        return None
    if len(distinct) == 1:
        return distinct[0]
    return " + ".join(str(v) for v in distinct)


def _same_or_none(values: Sequence[Any]) -> Any:
    return values[0] if all(v == values[0] for v in values) else None


def _epoch(iso: str) -> float | None:
    """Seconds since the epoch of an ISO-8601 time (naive times taken as UTC)."""
    try:
        moment = datetime.fromisoformat(iso)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def merge_meta(metas: Sequence[RunMeta], sources: Sequence[str]) -> RunMeta:
    """Runs side by side: workers and cores add, times span all, differences are noted."""
    runs = "run" if len(metas) == 1 else "runs"
    notes = [f"merged from {len(metas)} {runs}: {', '.join(sources)}"]
    for name in ("scale", "speed", "rate"):
        values = [getattr(m, name) for m in metas]
        if _same_or_none(values) is None and any(v is not None for v in values):
            notes.append(f"the runs differ in {name}: {', '.join(str(v) for v in values)}")
    for source, meta in zip(sources, metas, strict=True):
        notes.extend(f"{source}: {note}" for note in meta.notes)
    try:
        segment, segment_notes = join_segments([m.segment for m in metas], sources)
    except ValueError as exc:
        raise ResultsError(f"cannot merge: {exc}") from None
    notes.extend(segment_notes)
    starts = sorted((t, m.started) for m in metas if (t := _epoch(m.started)) is not None)
    ends = sorted((t, m.ended) for m in metas if (t := _epoch(m.ended)) is not None)
    if any(m.segment for m in metas) and len(starts) > 1:
        notes.append(
            f"start skew between segments: {(starts[-1][0] - starts[0][0]) * 1000:.1f} ms "
            "(their recorded start times; clocks synchronised by NTP are assumed)"
        )
    start_ats = {m.start_at for m in metas if m.start_at}
    return RunMeta(
        corpus=_same_or_joined(m.corpus for m in metas),
        target=_same_or_joined(m.target for m in metas),
        model=_same_or_joined(m.model for m in metas) or "",
        scale=_same_or_none([m.scale for m in metas]),
        speed=_same_or_none([m.speed for m in metas]),
        rate=_same_or_none([m.rate for m in metas]),
        workers=sum(m.workers for m in metas),
        started=starts[0][1] if starts else "",
        ended=ends[-1][1] if ends else "",
        version=_same_or_joined(m.version for m in metas) or "",
        host_cores=sum(m.host_cores for m in metas),
        command_line=" ; ".join(m.command_line for m in metas if m.command_line),
        notes=notes,
        segment=segment,
        start_at=start_ats.pop() if len(start_ats) == 1 else None,
    )


def merge_results(
    results: Sequence[Mapping[str, Any]],
    sources: Sequence[str] | None = None,
    thresholds: Sequence[Threshold] = (),
) -> dict[str, Any]:
    """Merge runs exactly into one results document (see the module docstring).

    Thresholds: every input's, once each, plus ``thresholds``, judged on the merged data.
    """
    if not results:
        raise ValueError("nothing to merge")
    names = (
        list(sources) if sources is not None else [f"input {i + 1}" for i in range(len(results))]
    )
    aggregate = RunAggregate()
    metas = []
    wanted: dict[str, Threshold] = {}
    durations = []
    for i, (r, name) in enumerate(zip(results, names, strict=True)):
        validate_results(r, name)
        metas.append(RunMeta.from_json(r["meta"], f"{name}: meta"))
        aggregate_from_results(r, aggregate, source=i, name=name)
        durations.append(float(r["totals"]["duration_s"]))
        for t in thresholds_of(r, name):
            wanted.setdefault(str(t), t)
    for t in thresholds:
        wanted.setdefault(str(t), t)
    longest = max(durations)
    if longest > 0:
        aggregate.set_duration(longest)
    from replay.scenario_results import add_scenarios, merged_scenarios

    scen = merged_scenarios(results, names)
    if scen is not None:
        scen.set_durations(aggregate.duration_s)
    verdicts = evaluate(list(wanted.values()), aggregate, scen.aggregates if scen else None)
    merged = build_results(aggregate, merge_meta(metas, names), verdicts)
    return add_scenarios(merged, scen) if scen is not None else merged
