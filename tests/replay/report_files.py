"""Hand-made ``replay-results/1`` files for the report's tests, built with the real
aggregate and results builder so that every count and histogram agrees."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from replay.aggregate import RunAggregate
from replay.histogram import sparse_from_values
from replay.recorder import SeriesDelta
from replay.results import RunMeta, build_results, write_results


@dataclass
class Second:
    """One second of a made-up run: ``requests`` completed at ``latency_ms`` each (or the
    values of ``latencies_ms``), ``errors`` {outcome: count} among them."""

    requests: int = 0
    latency_ms: float = 10.0
    latencies_ms: Sequence[float] | None = None
    errors: dict[str, int] = field(default_factory=dict)
    offered: int | None = None
    dropped: int = 0
    send_lag_ms: float = 0.0
    endpoint: str = "ingest"
    inflight: int = 0


def _series(s: Second) -> list[SeriesDelta]:
    if s.latencies_ms is not None:
        values = np.asarray(s.latencies_ms, dtype=np.float64)
    else:
        values = np.full(s.requests, s.latency_ms)
    us = np.round(values * 1000).astype(np.int64)
    lag = np.full(us.size, round(s.send_lag_ms * 1000), np.int64)
    out = []
    start = 0
    parts = [("200", us.size - sum(s.errors.values())), *list(s.errors.items())]
    for outcome, count in parts:
        if count <= 0:
            continue
        chunk = slice(start, start + count)
        start += count
        hists = (
            sparse_from_values(us[chunk]),
            sparse_from_values(np.maximum(us[chunk] - lag[chunk], 0)),
            sparse_from_values(lag[chunk]),
        )
        out.append(SeriesDelta(s.endpoint, outcome, count, hists))
    return out


def make_results(
    seconds: Sequence[Second | Sequence[Second]],
    *,
    command_line: str = "replay run --duration 60s",
    model: str = "rate",
    rate: float | None = None,
) -> dict[str, Any]:
    """The results document of a run whose second i is ``seconds[i]`` (or several
    Seconds, one per endpoint)."""
    aggregate = RunAggregate()
    for i, entry in enumerate(seconds):
        parts = [entry] if isinstance(entry, Second) else list(entry)
        series = [d for p in parts for d in _series(p)]
        dropped: dict[str, int] = {}
        for p in parts:
            if p.dropped:
                dropped[p.endpoint] = dropped.get(p.endpoint, 0) + p.dropped
        offered = sum(
            (p.offered if p.offered is not None else p.requests + p.dropped) for p in parts
        )
        aggregate.add_interval(
            i,
            worker=0,
            offered=offered,
            inflight=sum(p.inflight for p in parts),
            dropped=dropped,
            series=series,
        )
    aggregate.set_duration(float(len(seconds)))
    meta = RunMeta(
        corpus="made-up",
        target="http://127.0.0.1:1",
        model=model,
        rate=rate,
        started="2026-11-29T00:00:00.000Z",
        ended="2026-11-29T00:01:00.000Z",
        command_line=command_line,
    )
    return build_results(aggregate, meta, [])


def write(
    path: Path, doc: dict[str, Any], edit: Callable[[dict[str, Any]], None] | None = None
) -> Path:
    """Write ``doc`` as a results file; ``edit`` may add keys a later version will write."""
    if edit is not None:
        doc = json.loads(json.dumps(doc))
        edit(doc)
    write_results(path, doc)
    return path
