"""Execution segments: a run's work split into K disjoint parts whose union is the whole run.

Segment I of K (``--segment I/K``, 0-based) is what one machine of K runs; within it, W worker
processes split the segment as they split a whole run. Everything is arithmetic on the
schedule, so the K machines need no coordinator to agree on who sends what:

    records   a record's key h (CRC-32 of its trace id, else its corpus position) puts it in
              segment h mod K and, within that, in worker (h div K) mod W; every trace's
              requests stay in one segment and one worker
    hits      arrival-rate hit n belongs to segment n mod K; within it, worker w takes hits
              n = I + K·w + K·W·j (j = 0, 1, ...): a stride of K·W from offset I + K·w, so
              the K segments' hits together are exactly 0, 1, 2, ... (k6 stripes a
              ramping-arrival-rate the same way) and each segment offers 1/K of the rate,
              to within one hit, whether or not the rate divides by K
    poisson   each worker draws intensity r(t)/(K·W) with its own seeded stream; independent
              Poisson processes superpose, so the K segments together offer intensity r(t)
    VUs       split as evenly as integers allow: K ways, then W ways within the segment

With K = 1 every rule is the unsegmented one (key mod W, offset w, stride W).
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation

MAX_SEGMENTS = 4096
INDEX_ENV = "JOB_COMPLETION_INDEX"


@dataclass(frozen=True)
class ExecutionSegment:
    """Segment `index` of `count` (0-based)."""

    index: int = 0
    count: int = 1

    def __post_init__(self) -> None:
        if not 1 <= self.count <= MAX_SEGMENTS:
            raise ValueError(f"segments: {self.count} is not between 1 and {MAX_SEGMENTS}")
        if not 0 <= self.index < self.count:
            raise ValueError(f"segment {self.index} of {self.count} does not exist (0-based)")

    @property
    def whole(self) -> bool:
        return self.count == 1

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


WHOLE_RUN = ExecutionSegment(0, 1)


def parse_segment(text: str) -> ExecutionSegment:
    """'I/K' (0-based I) as an ExecutionSegment, or ValueError saying what is wrong."""
    index, sep, count = text.strip().partition("/")
    if not sep or not index.strip().isdecimal() or not count.strip().isdecimal():
        raise ValueError(f"{text!r} is not a segment: write I/K with 0 <= I < K, e.g. 0/3")
    return ExecutionSegment(int(index), int(count))


def segment_from_env(count: int, environ: dict[str, str] | None = None) -> ExecutionSegment:
    """`--segments K` alone: segment $JOB_COMPLETION_INDEX of K (a Kubernetes Indexed Job)."""
    env = os.environ if environ is None else environ
    raw = env.get(INDEX_ENV)
    if raw is None:
        raise ValueError(f"--segments {count} needs --segment I/K or ${INDEX_ENV} (Indexed Job)")
    if not raw.strip().isdecimal():
        raise ValueError(f"${INDEX_ENV}={raw!r} is not a whole number")
    return ExecutionSegment(int(raw), count)


def record_key(trace: str | None, index: int) -> int:
    """What decides a record's segment and worker: its trace (CRC-32, stable across processes
    and Python versions, unlike hash()), or its corpus position when it names no trace."""
    if trace:
        return zlib.crc32(trace.encode("utf-8"))
    return index


def owner(key: int, segments: int, workers: int) -> tuple[int, int]:
    """(segment, worker within it) of a record with this key."""
    return key % segments, (key // segments) % workers


def hit_stride(segment: int, segments: int, worker: int, workers: int) -> tuple[int, int]:
    """(first hit, stride) of a worker's share of arrival-rate hits."""
    return segment + segments * worker, segments * workers


def share(total: int, segment: int, segments: int, worker: int, workers: int) -> int:
    """A worker's part of `total` (VUs, connections): K ways, then W ways."""
    mine = total // segments + (1 if segment < total % segments else 0)
    return mine // workers + (1 if worker < mine % workers else 0)


def parse_start_at(text: str) -> int:
    """`--start-at`: unix seconds (``1764400000``, ``1764400000.25``) or an RFC 3339 instant
    (``2026-11-29T06:00:00Z``, ``...+01:00``), as wall-clock nanoseconds; ValueError if neither."""
    raw = text.strip()
    try:
        seconds = Decimal(raw)
    except InvalidOperation:
        pass
    else:
        if not seconds.is_finite() or seconds < 0 or seconds > 10**11:
            raise ValueError(f"{text!r}: unix seconds out of range")
        return int(seconds * 1_000_000_000)
    try:
        moment = datetime.fromisoformat(raw.replace("z", "Z").replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"{text!r} is neither unix seconds nor an RFC 3339 time (2026-11-29T06:00:00Z)"
        ) from None
    if moment.tzinfo is None:
        raise ValueError(f"{text!r}: give the time zone (Z or +HH:MM), as RFC 3339 requires")
    return int(Decimal(str(moment.timestamp())) * 1_000_000_000)


def join_segments(
    labels: Sequence[str | None], sources: Sequence[str]
) -> tuple[str | None, list[str]]:
    """What merging runs with these `meta.segment` labels gives: the merged label (None for
    a whole run, "I,J/K" while segments are missing) and notes; ValueError when the runs
    cannot be parts of one run (a segmented run beside a whole one, different K, a segment
    twice)."""
    if all(label is None for label in labels):
        return None, []
    parsed: list[ExecutionSegment] = []
    for label, source in zip(labels, sources, strict=True):
        if label is None:
            raise ValueError(f"{source} is a whole run, the others are execution segments")
        try:
            parsed.append(parse_segment(label))
        except ValueError as exc:
            raise ValueError(f"{source}: meta.segment: {exc}") from None
    counts = sorted({seg.count for seg in parsed})
    if len(counts) > 1:
        raise ValueError(f"the segments come from runs split differently (K = {counts})")
    count = counts[0]
    seen: dict[int, str] = {}
    for seg, source in zip(parsed, sources, strict=True):
        if seg.index in seen:
            raise ValueError(f"segment {seg} is in both {seen[seg.index]} and {source}")
        seen[seg.index] = source
    missing = [i for i in range(count) if i not in seen]
    if not missing:
        return None, [f"execution segments 0-{count - 1} of {count}: the whole run"]
    have = ",".join(str(i) for i in sorted(seen))
    gone = ", ".join(f"{i}/{count}" for i in missing)
    return f"{have}/{count}", [
        f"missing execution segments {gone}: these results cover {len(seen)} of {count} "
        "parts of the run, so rates and counts are that part's, not the whole run's"
    ]
