"""The coordinator's run aggregate: worker deltas merged into intervals, slices and windows.

``RunAggregate.add(delta)`` merges a worker's delta (replay/recorder.py) exactly into its
interval and into the whole-run totals, in any order. Definitions, everywhere:

    requests = sent requests that completed (with a status or an error kind)
    ok       = requests with status 2xx or 3xx
    errors   = requests - ok (4xx, 5xx and transport errors)
    dropped  = due requests the generator could not send (not in requests)
    offered  = requests that came due (sent or dropped)

Each interval keeps its series' sparse histograms, so that windowed thresholds and the
results timeline are exact.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from replay.histogram import LatencyHistogram, Sparse, merge_sparse
from replay.outcomes import is_ok, status_matches
from replay.recorder import METRICS, Delta, Key, SeriesDelta, read_delta

INTERVAL_S = 1.0
"""Length of one interval: each worker reports once a second from the common start."""


def _compact(sparse: Sparse) -> Sparse:
    """The same histogram in 6 bytes per non-zero bucket (uint16 index, uint32 count)."""
    if sparse.buckets.dtype == np.uint16 and sparse.counts.dtype == np.uint32:
        return sparse
    if sparse.counts.size and int(sparse.counts.max()) >= 2**32:
        return sparse  # a bucket this full is kept wide
    return Sparse(sparse.buckets.astype(np.uint16), sparse.counts.astype(np.uint32), sparse.clamped)


class _Cell:
    """One series in one interval: its count and its histograms' sparse parts."""

    __slots__ = ("count", "parts")

    def __init__(self) -> None:
        self.count = 0
        self.parts: tuple[list[Sparse], list[Sparse], list[Sparse]] = ([], [], [])

    def sparse(self, metric: int) -> Sparse:
        parts = self.parts[metric]
        if not parts:
            return Sparse(np.zeros(0, np.int64), np.zeros(0, np.int64), 0)
        if len(parts) > 1:
            parts[:] = [_compact(merge_sparse(parts))]
        return parts[0]


class _Interval:
    __slots__ = ("cells", "dropped", "inflight", "offered")

    def __init__(self) -> None:
        self.cells: dict[Key, _Cell] = {}
        self.dropped: Counter[str] = Counter()
        self.offered = 0
        self.inflight: dict[int, int] = {}


@dataclass(frozen=True)
class IntervalView:
    """One second of the run, summed over workers."""

    index: int  # seconds since the common start: covers [index, index + 1)
    requests: int
    ok: int
    errors: int
    dropped: int
    offered: int
    offered_rps: float
    achieved_rps: float
    p50_ms: float | None  # corrected latency; None when nothing completed
    p99_ms: float | None
    inflight: int  # summed over the workers that reported this interval


@dataclass(frozen=True)
class ProgressSnapshot:
    """What the progress line shows: the latest complete interval and the totals so far."""

    elapsed_s: float
    interval: IntervalView
    requests: int
    ok: int
    errors: int
    dropped: int
    offered: int


PartsOf = Callable[[Key, int], Iterable["Sparse | LatencyHistogram"]]
"""(series, metric index) -> the histogram parts of that series in a slice."""


class Slice:
    """Counts and histograms of the run over intervals [start, end), filterable by tags.

    ``seconds`` is the length rates are computed over. Filters: ``endpoint`` (a tag such as
    "ingest") and ``status`` (an outcome: "503", a class "5xx", or an error kind).
    Histograms are summed when asked for, from the parts of the matching series only.
    """

    __slots__ = ("_counts", "_dropped", "_parts", "_rolling", "end", "offered", "seconds", "start")

    def __init__(
        self,
        start: int,
        end: int,
        seconds: float,
        counts: Mapping[Key, int],
        parts: PartsOf,
        dropped: Mapping[str, int],
        offered: int,
        rolling: _Rolling | None = None,
    ) -> None:
        self.start, self.end, self.seconds = start, end, seconds
        self._counts = dict(counts)
        self._parts = parts
        self._dropped = dict(dropped)
        self.offered = offered
        self._rolling = rolling

    def keys(self) -> list[Key]:
        """The series with at least one request, sorted."""
        return sorted(k for k, n in self._counts.items() if n)

    def _match(self, endpoint: str | None, status: str | None) -> list[Key]:
        return [
            key
            for key in self._counts
            if (endpoint is None or key[0] == endpoint) and status_matches(key[1], status)
        ]

    def requests(self, endpoint: str | None = None, status: str | None = None) -> int:
        return sum(self._counts[k] for k in self._match(endpoint, status))

    def ok(self, endpoint: str | None = None, status: str | None = None) -> int:
        return sum(self._counts[k] for k in self._match(endpoint, status) if is_ok(k[1]))

    def errors(self, endpoint: str | None = None, status: str | None = None) -> int:
        return sum(self._counts[k] for k in self._match(endpoint, status) if not is_ok(k[1]))

    def dropped(self, endpoint: str | None = None) -> int:
        if endpoint is None:
            return sum(self._dropped.values())
        return self._dropped.get(endpoint, 0)

    def dropped_by_endpoint(self) -> dict[str, int]:
        return {e: n for e, n in sorted(self._dropped.items()) if n}

    def histogram(
        self, metric: str = "latency", endpoint: str | None = None, status: str | None = None
    ) -> LatencyHistogram:
        """A new histogram of ``metric`` (one of METRICS) over the matching series."""
        m = METRICS.index(metric)
        keys = self._match(endpoint, status)
        if self._rolling is not None:
            return self._rolling.histogram((m, endpoint, status), keys, self.start, self.end)
        return _sum_parts(self._parts, keys, m)


def _sum_parts(parts: PartsOf, keys: Iterable[Key], m: int) -> LatencyHistogram:
    hist = LatencyHistogram()
    for key in keys:
        for part in parts(key, m):
            if isinstance(part, LatencyHistogram):
                hist.merge(part)
            else:
                hist.add_sparse(part)
    return hist


class _Rolling:
    """Sliding windows' histograms by running sums: when the next window is asked for the
    same selection, the interval that left is subtracted and the one that entered added
    (exact: bucket counts are integers), instead of summing every interval again."""

    def __init__(self, cells: Mapping[Key, Sequence[_Cell | None]]) -> None:
        self._cells = cells
        self._state: dict[
            tuple[int, str | None, str | None], tuple[int, int, LatencyHistogram]
        ] = {}

    def parts(self, start: int, end: int) -> PartsOf:
        cells = self._cells

        def parts_of(key: Key, m: int) -> Iterator[Sparse]:
            for cell in cells.get(key, ())[start:end]:
                if cell is not None:
                    yield cell.sparse(m)

        return parts_of

    def histogram(
        self, selection: tuple[int, str | None, str | None], keys: list[Key], start: int, end: int
    ) -> LatencyHistogram:
        m = selection[0]
        state = self._state.get(selection)
        if state is not None and state[:2] == (start - 1, end - 1):
            hist = state[2]
            for key in keys:
                cells = self._cells.get(key)
                if cells is None:
                    continue
                leaving, entering = cells[start - 1], cells[end - 1]
                if leaving is not None:
                    hist.subtract_sparse(leaving.sparse(m))
                if entering is not None:
                    hist.add_sparse(entering.sparse(m))
        elif state is not None and state[:2] == (start, end):
            hist = state[2]
        else:
            hist = _sum_parts(self.parts(start, end), keys, m)
        self._state[selection] = (start, end, hist)
        return hist.copy()


class RunAggregate:
    """The whole run as the coordinator sees it, built from worker deltas (exact merge).

    Interval k covers [k, k+1) seconds from the common start. ``latest()`` reports the
    newest interval every live worker has delivered (``retire(worker)`` stops waiting for a
    worker that has finished or died). ``set_duration()`` records the measured run length
    used for whole-run rates; without it the run lasts as many seconds as it has intervals.
    """

    def __init__(self) -> None:
        self._intervals: dict[int, _Interval] = {}
        self._last_by_worker: dict[int, int] = {}
        self._retired: set[int] = set()
        self._counts: Counter[Key] = Counter()
        self._whole: dict[Key, tuple[LatencyHistogram, LatencyHistogram, LatencyHistogram]] = {}
        self._dropped: Counter[str] = Counter()
        self._offered = 0
        self._duration_s: float | None = None
        self._views: dict[int, IntervalView] = {}

    # -- input -------------------------------------------------------------------------
    def add(self, delta: bytes | Delta) -> int:
        """Merge one worker's delta (flush bytes, or a ``Delta`` already read); its interval."""
        d = read_delta(delta) if isinstance(delta, bytes) else delta
        try:
            self.add_interval(
                d.interval,
                worker=d.worker,
                offered=d.offered,
                inflight=d.inflight,
                dropped=d.dropped,
                series=d.series,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"malformed metrics delta: {exc}") from None
        return d.interval

    def add_interval(
        self,
        interval: int,
        *,
        worker: int,
        offered: int,
        inflight: int,
        dropped: Mapping[str, int],
        series: Iterable[SeriesDelta],
    ) -> None:
        """Merge one source's measurements of one interval (what ``add`` does after decoding)."""
        if interval < 0:
            raise ValueError(f"interval {interval} is negative")
        series = list(series)
        for s in series:
            for m, sparse in enumerate(s.histograms):
                if sparse.total != s.requests:
                    raise ValueError(
                        f"series {s.endpoint}/{s.outcome} counts {s.requests} requests "
                        f"but its {METRICS[m]} histogram holds {sparse.total}"
                    )
        cell_of = self._intervals.get(interval)
        if cell_of is None:
            cell_of = self._intervals[interval] = _Interval()
        self._views.pop(interval, None)
        cell_of.offered += offered
        cell_of.inflight[worker] = inflight  # a gauge: the worker's latest report
        self._offered += offered
        for endpoint, n in dropped.items():
            cell_of.dropped[endpoint] += n
            self._dropped[endpoint] += n
        for s in series:
            key = (s.endpoint, s.outcome)
            cell = cell_of.cells.get(key)
            if cell is None:
                cell = cell_of.cells[key] = _Cell()
            cell.count += s.requests
            self._counts[key] += s.requests
            whole = self._whole.get(key)
            if whole is None:
                whole = self._whole[key] = (
                    LatencyHistogram(),
                    LatencyHistogram(),
                    LatencyHistogram(),
                )
            for m, sparse in enumerate(s.histograms):
                cell.parts[m].append(_compact(sparse))
                whole[m].add_sparse(sparse)
        last = self._last_by_worker.get(worker, -1)
        self._last_by_worker[worker] = max(last, interval)

    def retire(self, worker: int) -> None:
        """Stop waiting for ``worker`` in ``latest()`` (it finished or died)."""
        self._retired.add(worker)

    def set_duration(self, seconds: float) -> None:
        """The run's measured length, for whole-run rates (offered_rps, achieved_rps)."""
        if not seconds > 0 or not math.isfinite(seconds):
            raise ValueError(f"duration {seconds!r} must be a positive number of seconds")
        self._duration_s = float(seconds)

    # -- views -------------------------------------------------------------------------
    @property
    def intervals(self) -> int:
        """Number of intervals from 0 to the last one with data."""
        return max(self._intervals) + 1 if self._intervals else 0

    @property
    def duration_s(self) -> float:
        if self._duration_s is not None:
            return self._duration_s
        return self.intervals * INTERVAL_S

    @property
    def workers(self) -> list[int]:
        """Every worker (or source) that delivered a delta."""
        return sorted(self._last_by_worker)

    def interval(self, k: int) -> IntervalView:
        """Interval ``k`` summed over workers (all zero if nothing arrived for it)."""
        view = self._views.get(k)
        if view is not None:
            return view
        data = self._intervals.get(k)
        if data is None:
            return IntervalView(k, 0, 0, 0, 0, 0, 0.0, 0.0, None, None, 0)
        requests = ok = 0
        hist = LatencyHistogram()
        for key, cell in data.cells.items():
            requests += cell.count
            if is_ok(key[1]):
                ok += cell.count
            hist.add_sparse(cell.sparse(0))
        p50, p99 = hist.percentiles([50, 99]) if requests else (None, None)
        dropped = sum(data.dropped.values())
        view = IntervalView(
            index=k,
            requests=requests,
            ok=ok,
            errors=requests - ok,
            dropped=dropped,
            offered=data.offered,
            offered_rps=data.offered / INTERVAL_S,
            achieved_rps=requests / INTERVAL_S,
            p50_ms=p50,
            p99_ms=p99,
            inflight=sum(data.inflight.values()),
        )
        self._views[k] = view
        return view

    @property
    def timeline(self) -> list[IntervalView]:
        """Every interval from 0 to the last, gaps included as zeros."""
        return [self.interval(k) for k in range(self.intervals)]

    def interval_series(self, k: int) -> list[SeriesDelta]:
        """Interval ``k``'s series with their merged histograms (for results files)."""
        data = self._intervals.get(k)
        if data is None:
            return []
        out = []
        for key in sorted(data.cells):
            cell = data.cells[key]
            hists = (cell.sparse(0), cell.sparse(1), cell.sparse(2))
            out.append(SeriesDelta(key[0], key[1], cell.count, hists))
        return out

    def interval_dropped(self, k: int) -> dict[str, int]:
        data = self._intervals.get(k)
        return {e: n for e, n in sorted(data.dropped.items()) if n} if data else {}

    def complete(self) -> int:
        """The newest interval every live worker has delivered (-1 before any)."""
        live = [last for w, last in self._last_by_worker.items() if w not in self._retired]
        if live:
            return min(live)
        return max(self._intervals) if self._intervals else -1

    def latest(self) -> ProgressSnapshot:
        """The interval ``complete()`` names, and the totals of every delta so far."""
        k = self.complete()
        view = self.interval(max(k, 0))
        requests = sum(self._counts.values())
        ok = sum(n for key, n in self._counts.items() if is_ok(key[1]))
        return ProgressSnapshot(
            elapsed_s=(k + 1) * INTERVAL_S,
            interval=view,
            requests=requests,
            ok=ok,
            errors=requests - ok,
            dropped=sum(self._dropped.values()),
            offered=self._offered,
        )

    def whole(self) -> Slice:
        """The whole run (every delta received so far)."""
        whole = self._whole

        def parts_of(key: Key, m: int) -> tuple[LatencyHistogram, ...]:
            hists = whole.get(key)
            return (hists[m],) if hists is not None else ()

        return Slice(
            0,
            self.intervals,
            self.duration_s,
            self._counts,
            parts_of,
            self._dropped,
            self._offered,
        )

    def window(self, start: int, end: int) -> Slice:
        """Intervals [start, end)."""
        counts: Counter[Key] = Counter()
        dropped: Counter[str] = Counter()
        offered = 0
        cells: dict[Key, list[_Cell | None]] = {}
        for k in range(start, end):
            data = self._intervals.get(k)
            if data is None:
                continue
            offered += data.offered
            dropped.update(data.dropped)
            for key, cell in data.cells.items():
                counts[key] += cell.count
                cells.setdefault(key, []).append(cell)
        rolling = _Rolling(cells)
        return Slice(
            start,
            end,
            (end - start) * INTERVAL_S,
            counts,
            rolling.parts(0, end - start),
            dropped,
            offered,
        )

    def windows(self, seconds: float) -> Iterator[Slice]:
        """Every full window of ``seconds`` (a whole number of intervals), sliding by one
        interval: [0, W), [1, W+1), ... [n-W, n). None when the run is shorter than W.

        Counts come from prefix sums; a histogram asked of consecutive windows with the same
        filter is kept by running sums, so a long run costs O(intervals), not O(n * W)."""
        width = round(seconds / INTERVAL_S)
        if width < 1 or not math.isclose(width * INTERVAL_S, seconds):
            raise ValueError(f"a window of {seconds} s is not a whole number of intervals")
        n = self.intervals
        if n < width:
            return
        cells: dict[Key, list[_Cell | None]] = {key: [None] * n for key in self._counts}
        counts = {key: np.zeros(n + 1, np.int64) for key in self._counts}
        dropped = {e: np.zeros(n + 1, np.int64) for e in self._dropped}
        offered = np.zeros(n + 1, np.int64)
        for k, data in self._intervals.items():
            offered[k + 1] = data.offered
            for e, d in data.dropped.items():
                dropped[e][k + 1] = d
            for key, cell in data.cells.items():
                cells[key][k] = cell
                counts[key][k + 1] = cell.count
        for table in (*counts.values(), *dropped.values(), offered):
            np.cumsum(table, out=table)
        rolling = _Rolling(cells)
        for start in range(n - width + 1):
            end = start + width
            yield Slice(
                start,
                end,
                width * INTERVAL_S,
                {key: int(c[end] - c[start]) for key, c in counts.items()},
                rolling.parts(start, end),
                {e: int(d[end] - d[start]) for e, d in dropped.items()},
                int(offered[end] - offered[start]),
                rolling,
            )
