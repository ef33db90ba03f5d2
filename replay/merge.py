"""Merging runs exactly: one aggregate rebuilt from every input's per-second series.

Bucket counts add and timelines align by second index (as runs started together from
several hosts do), so every percentile of the merged file is that of one histogram holding
every request of every input, and thresholds are judged again on the merged data.
``merge_results([r])`` reproduces ``r`` (metadata aside).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from replay.aggregate import RunAggregate
from replay.histogram import decode_sparse
from replay.recorder import METRICS, SeriesDelta
from replay.redact import redact_command_line, redact_url
from replay.results import ResultsError, RunMeta, build_results
from replay.results_read import validate_results
from replay.segments import join_segments
from replay.thresholds import Threshold, evaluate, parse_threshold
from replay.visibility import merged as merged_visibility


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
    for name in ("corpus", "model", "scale", "speed", "rate"):
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
        target=_same_or_joined(redact_url(m.target) for m in metas if m.target is not None),
        model=_same_or_joined(m.model for m in metas) or "",
        scale=_same_or_none([m.scale for m in metas]),
        speed=_same_or_none([m.speed for m in metas]),
        rate=_same_or_none([m.rate for m in metas]),
        workers=sum(m.workers for m in metas),
        started=starts[0][1] if starts else "",
        ended=ends[-1][1] if ends else "",
        version=_same_or_joined(m.version for m in metas) or "",
        host_cores=sum(m.host_cores for m in metas),
        command_line=" ; ".join(
            redact_command_line(m.command_line) for m in metas if m.command_line
        ),
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
    vis = merged_visibility(results, names)
    verdicts = evaluate(
        list(wanted.values()), aggregate, scen.aggregates if scen else None, visibility=vis
    )
    out = build_results(aggregate, merge_meta(metas, names), verdicts)
    if scen is not None:
        out = add_scenarios(out, scen)
    if vis is not None:
        vis.add_to_results(out)
    return out
