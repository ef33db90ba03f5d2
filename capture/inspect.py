"""What a corpus holds: counts, rates, endpoint mix and sizes, computed in one streaming pass."""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from capture.corpus import CorpusReader
from capture.corpus_format import UnfinishedCorpusError
from capture.sizehist import SizeHistogram
from capture.traffic import TrafficFigures, render_figures


@dataclass(frozen=True)
class CorpusStats:
    path: str
    format_version: int
    workload: str
    source: str
    created: str
    seed: int | None
    records: int
    chunks: int
    duration_s: float
    mean_rate: float
    peak_rate: float  # busiest whole second
    endpoints: dict[str, int]
    body_bytes: dict[str, float]  # p50, p90, p99, max of body sizes
    raw_body_bytes: int
    file_bytes: int
    compression_ratio: float  # raw body bytes / file bytes
    complete: bool
    extra: dict[str, Any]
    traffic: dict[str, Any] = field(default_factory=dict)  # capture.traffic's figures

    def to_json(self) -> dict[str, Any]:
        return {**self.__dict__, "incomplete": not self.complete}


def inspect_corpus(path: str | os.PathLike[str], *, recover: bool = False) -> CorpusStats:
    """Stream every record once, a slice of a chunk at a time, as replay reads: memory is
    bounded whatever the corpus holds (body sizes go to a fixed-size histogram). An
    unfinished corpus (a crash left it) is read up to its last whole chunk, with or without
    `recover`; a damaged one is refused unless `recover` is given."""
    try:
        opened = CorpusReader(path, recover=recover)
    except UnfinishedCorpusError:
        opened = CorpusReader(path, recover=True)
    with opened as reader:
        header = reader.header
        endpoints: Counter[str] = Counter()
        sizes = SizeHistogram()
        figures = TrafficFigures()
        second, in_second, peak = -1, 0, 0
        for record in reader.records():
            # records come in time order (the reader checks it): a running count per second
            now = record.offset_ns // 1_000_000_000
            if now != second:
                second, in_second = now, 0
            in_second += 1
            peak = max(peak, in_second)
            endpoints[record.endpoint] += 1
            sizes.add(len(record.body))
            figures.add(record)
        n = sizes.count
        duration_s = header.duration_ns / 1e9
        quantiles = [sizes.percentile(p) for p in (50, 90, 99)]
        raw = sizes.total
        return CorpusStats(
            path=str(path),
            format_version=header.version,
            workload=header.meta.workload,
            source=header.meta.source,
            created=header.meta.created,
            seed=header.meta.seed,
            records=n,
            chunks=len(header.chunks),
            duration_s=duration_s,
            mean_rate=n / duration_s if duration_s > 0 else 0.0,
            peak_rate=float(peak),
            endpoints=dict(sorted(endpoints.items(), key=lambda kv: (-kv[1], kv[0]))),
            body_bytes={
                "p50": float(quantiles[0]),
                "p90": float(quantiles[1]),
                "p99": float(quantiles[2]),
                "max": float(sizes.max),
            },
            raw_body_bytes=raw,
            file_bytes=reader.file_size,
            compression_ratio=raw / reader.file_size if reader.file_size else 0.0,
            complete=header.complete,
            extra=header.meta.extra,
            traffic=figures.to_json(),
        )


def render_stats(stats: CorpusStats) -> str:
    """The human form of `capture inspect`."""
    total = max(stats.records, 1)
    lines = [
        f"corpus       {stats.path}",
    ]
    if not stats.complete:
        lines.append(
            f"incomplete   its writer never finished it: {stats.chunks} whole chunks with "
            f"{stats.records:,} records recovered; `capture repair {stats.path} -o OUT` "
            "makes them a valid corpus"
        )
    lines += [
        f"format       version {stats.format_version}",
        f"workload     {stats.workload} (source: {stats.source}, created {stats.created}, "
        f"seed {stats.seed})",
        f"records      {stats.records:,} in {stats.chunks} chunks",
        f"duration     {stats.duration_s:,.1f} s",
        f"rate         mean {stats.mean_rate:,.1f}/s, "
        f"peak {stats.peak_rate:,.0f}/s (busiest second)",
        "endpoints    "
        + ", ".join(
            f"{tag} {count:,} ({100 * count / total:.1f}%)"
            for tag, count in stats.endpoints.items()
        ),
        "body bytes   " + ", ".join(f"{k} {v:,.0f}" for k, v in stats.body_bytes.items()),
        f"size         {stats.file_bytes:,} bytes on disk, "
        f"{stats.raw_body_bytes:,} bytes of bodies (compression {stats.compression_ratio:.1f}x)",
    ]
    if stats.traffic:
        lines += render_figures(stats.traffic)
    if "command" in stats.extra:
        lines.append(f"made by      {stats.extra['command']}")
    recording = stats.extra.get("recording")
    if isinstance(recording, dict):
        lines.append(f"recording    {recording_line(recording)}")
    return "\n".join(lines)


def recording_line(counts: dict[str, Any]) -> str:
    """What a recording kept and why it left the rest out (its `extra.recording` counts)."""
    line = f"{counts.get('recorded', 0):,} of {counts.get('requests', 0):,} requests recorded"
    reasons = [
        ("dropped_queue_full", "dropped: queue full"),
        ("sampled_out", "sampled out"),
        ("not_agenttrace", "outside AgentTrace's API"),
        ("upstream_failed", "not answered by the upstream"),
        ("bad_head", "head not replayable"),
        ("undecodable_body", "body would not decode"),
        ("body_too_large", "body over a corpus's 32 MiB"),
        ("recording_stopped", "after the recording stopped"),
        ("past_max_records", "past --max-records"),
    ]
    parts = [f"{counts[k]:,} {what}" for k, what in reasons if counts.get(k)]
    return line + (f" ({', '.join(parts)})" if parts else "")
