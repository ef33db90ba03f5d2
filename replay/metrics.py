"""Latency histograms, the worker's per-interval recorder and the coordinator's run aggregate.

Measurement flows one way: ``IntervalRecorder`` (one per worker process, on the hot path)
-> ``flush()`` ten times a second -> msgpack deltas, each second's sent together over the pipe
-> ``RunAggregate.add()`` in the coordinator -> ``whole()``, ``timeline``, ``windows()`` for
thresholds, results and summary.

Latencies (wrk2's honest open model)
------------------------------------
Every request has an intended send time (when the pacer said it was due), an actual send time
and a completion time, all ``time.perf_counter_ns()`` values on the worker's clock:

    latency              = done - intended   (coordinated omission corrected: the default)
    latency_uncorrected  = done - sent       (what a closed-loop tool would report)
    send_lag             = sent - intended   (how far the load generator ran behind)

so latency = latency_uncorrected + send_lag. Each is rounded to the nearest microsecond.

Histograms
----------
``LatencyHistogram`` keeps HdrHistogram's exact bucket layout (microseconds, 1 µs .. 1 hour,
3 significant digits: every value is kept within 0.1 %) and its standard V2 compressed
base64 encoding, so HdrHistogram tools in any language read ``encode()``'s output. Counting,
merging and percentiles are done with numpy on the same bucket array (the pure-Python
``hdrh`` loops cost ~2 µs per value and ~1 ms per percentile); the tests check the layout
and every statistic against ``hdrh`` itself. Values above one hour are clamped to one hour
and counted in ``clamped`` (never dropped); negative values (a request sent a hair before
its intended time) are recorded as 0. Statistics follow HdrHistogram: a percentile is the
highest value equivalent to the bucket that holds it (never below the true value), ``min``
the lowest equivalent value of the lowest bucket, ``mean`` uses bucket midpoints. They are a
function of the bucket counts only, so merged histograms give exactly the statistics of one
histogram that recorded every value.

The worker's recorder (hot path)
--------------------------------
``IntervalRecorder.record(endpoint, outcome, intended_ns, sent_ns, done_ns)`` does one dict
lookup (the (endpoint, outcome) series id) and four list appends of the caller's own ints:
no object is created per request. Plain lists beat ``array('q').append`` here because the
array converts each int on append (~70 ns more per value); the conversion to int64 happens
once per fold, in ``flush()``, with numpy. ``outcome`` is the HTTP status as a string
("200", "503") or an error kind ("refused", "reset", "timeout", "malformed", "closed",
"other"). ``drop(endpoint, intended_ns)`` counts a request the generator could not send
(max-inflight reached, or due but never reached by a worker behind its schedule);
``offered(n)`` counts requests that came due, sent or dropped.

``flush(interval, inflight) -> bytes`` folds the buffers into per-series bucket counts and
returns one msgpack map (the *delta*, ``DELTA_VERSION`` 1). The fold runs on the worker's
event loop (ten times a second), so it is one counting pass per metric: each value becomes a
cell of one (series, bucket) table, counted by ``np.bincount`` when the table is small and by
one sort of the values when it is not (``fold_series``)::

    {"v": 1, "worker": int, "interval": int (seconds since the common start),
     "inflight": int, "offered": int, "dropped": {endpoint: int},
     "series": [[endpoint, outcome, count, [h_latency, h_uncorrected, h_send_lag]], ...]}

where each ``h`` is ``[bucket_indices, bucket_counts, clamped]``: the non-zero buckets of
that series' histogram as little-endian uint16 and uint32 bytes. That is HdrHistogram's
bucket array in sparse form, exact and mergeable by adding counts, and tens of times cheaper
to produce and read than the V2 compressed encoding, which is kept for results files.

The coordinator's aggregate
---------------------------
``RunAggregate.add(delta)`` merges a delta exactly (bucket counts add) into its interval and
into the whole-run totals. Deltas may arrive in any order. Definitions, everywhere:

    requests = sent requests that completed (with a status or an error kind)
    ok       = requests with status 2xx or 3xx
    errors   = requests - ok (4xx, 5xx and transport errors)
    dropped  = due requests the generator could not send (not in requests)
    offered  = requests that came due (sent or dropped)

API (what the engine codes against)::

    LatencyHistogram()  .record(us) .record_many(values_us) .merge(other) .encode() -> str
                        LatencyHistogram.decode(s) .percentile(p) -> ms .percentiles(ps)
                        .count .min .max .mean (ms) .clamped
    IntervalRecorder(worker)  .record(endpoint, outcome, intended_ns, sent_ns, done_ns)
                        .drop(endpoint, intended_ns) .offered(n=1)
                        .flush(interval, inflight) -> bytes
    RunAggregate()      .add(delta) -> interval .retire(worker) .set_duration(seconds)
                        .interval(k) -> IntervalView .timeline -> [IntervalView]
                        .complete() -> k .latest() -> ProgressSnapshot
                        .whole() -> Slice .window(start, end) -> Slice .windows(seconds)
    Slice               .requests/.ok/.errors(endpoint=None, status=None) .dropped(endpoint)
                        .offered .seconds .histogram(metric, endpoint=None, status=None)

Memory: each interval keeps its series' sparse histograms (about 6 bytes per non-zero bucket
per series and metric), so that windowed thresholds and the results timeline are exact;
about 1 MB per minute at 1,000 req/s over a few series.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import msgpack
import numpy as np
import numpy.typing as npt
from hdrh.histogram import HdrHistogram

LOWEST_US = 1
"""Lowest discernible value: 1 µs."""
HIGHEST_US = 3_600_000_000
"""Highest trackable value: one hour in µs. Larger values are clamped to it and counted."""
SIGNIFICANT_FIGURES = 3
"""Value precision: every value is kept within 0.1 % (1 part in 10**3)."""

METRICS = ("latency", "latency_uncorrected", "send_lag")
"""The three histograms kept per series, in this order everywhere (deltas, results)."""

ERROR_KINDS = ("refused", "reset", "timeout", "malformed", "closed", "other")
"""Outcomes that are not an HTTP status: the transport failed before a full response."""

DELTA_VERSION = 1
INTERVAL_S = 1.0
"""Length of one interval: the worker flushes once a second from the common start."""

Key = tuple[str, str]
"""A series: (endpoint, outcome)."""

IntArray = npt.NDArray[np.int64]

# HdrHistogram's bucket layout, taken from hdrh itself so the two cannot disagree.
_TEMPLATE = HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_FIGURES)
COUNTS_LEN: int = _TEMPLATE.counts_len
_UNIT_MAG: int = _TEMPLATE.unit_magnitude
_HALF_MAG: int = _TEMPLATE.sub_bucket_half_count_magnitude
_HALF: int = _TEMPLATE.sub_bucket_half_count
_MASK: int = _TEMPLATE.sub_bucket_mask
del _TEMPLATE


def _layout() -> tuple[IntArray, IntArray, IntArray]:
    """Lowest, highest and median equivalent value (µs) of every bucket index."""
    index = np.arange(COUNTS_LEN, dtype=np.int64)
    bucket = (index >> _HALF_MAG) - 1
    sub = (index & (_HALF - 1)) + _HALF
    first = bucket < 0
    sub[first] -= _HALF
    bucket[first] = 0
    lowest = sub << (bucket + _UNIT_MAG)
    size = np.left_shift(1, bucket + _UNIT_MAG)
    return lowest, lowest + size - 1, lowest + (size >> 1)


LOWEST_EQUIVALENT, HIGHEST_EQUIVALENT, MEDIAN_EQUIVALENT = _layout()


def bucket_indices(values_us: npt.ArrayLike) -> IntArray:
    """HdrHistogram's counts index of each value (µs, already within 0 .. HIGHEST_US).

    bucket = bit_length(v | sub_bucket_mask) - unit_magnitude - (half_count_magnitude + 1)
    index  = (bucket + 1) << half_count_magnitude + (v >> (bucket + unit_magnitude)) - half

    bit_length comes from frexp's exponent, exact for integers below 2**53.
    """
    v = np.asarray(values_us, dtype=np.int64)
    _, exponent = np.frexp((v | _MASK).astype(np.float64))
    bucket = exponent.astype(np.int64) - (_UNIT_MAG + _HALF_MAG + 1)
    return ((bucket + 1) << _HALF_MAG) + (v >> (bucket + _UNIT_MAG)) - _HALF


class Sparse(NamedTuple):
    """The non-zero buckets of a histogram: sorted unique bucket indices, counts, clamped."""

    buckets: npt.NDArray[np.integer[Any]]
    counts: npt.NDArray[np.integer[Any]]
    clamped: int = 0

    @property
    def total(self) -> int:
        return int(self.counts.sum())


def _clamp_us(values_us: IntArray) -> tuple[IntArray, int]:
    clamped = int(np.count_nonzero(values_us > HIGHEST_US))
    return np.clip(values_us, 0, HIGHEST_US), clamped


def sparse_from_values(values_us: npt.ArrayLike) -> Sparse:
    """Bucket a batch of values (µs): clamped into range, then counted per bucket."""
    v, clamped = _clamp_us(np.asarray(values_us, dtype=np.int64))
    index, counts = np.unique(bucket_indices(v), return_counts=True)
    return Sparse(index.astype(np.int64), counts.astype(np.int64), clamped)


def encode_sparse(sparse: Sparse) -> str:
    """``LatencyHistogram.encode()`` of a sparse histogram, without the dense detour."""
    hdr = HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_FIGURES)
    if sparse.buckets.size:
        np.ctypeslib.as_array(hdr.counts)[sparse.buckets] = sparse.counts
        hdr.total_count = int(sparse.counts.sum())
        hdr.min_value = int(LOWEST_EQUIVALENT[sparse.buckets[0]])
        hdr.max_value = int(LOWEST_EQUIVALENT[sparse.buckets[-1]])  # encode() stops there
    encoded: bytes = hdr.encode()
    return encoded.decode("ascii")


def _decode_hdr(encoded: str | bytes) -> HdrHistogram:
    try:
        raw = encoded.encode("ascii") if isinstance(encoded, str) else bytes(encoded)
        hdr = HdrHistogram.decode(raw)
    except Exception as exc:  # hdrh raises base64, zlib, cookie and length errors
        reason = str(exc) or type(exc).__name__
        raise ValueError(f"not an HdrHistogram encoding ({reason})") from None
    layout = (hdr.lowest_trackable_value, hdr.highest_trackable_value, hdr.significant_figures)
    if layout != (LOWEST_US, HIGHEST_US, SIGNIFICANT_FIGURES):
        raise ValueError(
            f"histogram range {layout} is not replay's "
            f"({LOWEST_US}, {HIGHEST_US}, {SIGNIFICANT_FIGURES}) in µs"
        )
    return hdr


def decode_sparse(encoded: str | bytes, clamped: int = 0) -> Sparse:
    """``LatencyHistogram.decode(s).to_sparse()`` without the dense detour: only the buckets
    up to the highest one the decoder reports are scanned."""
    hdr = _decode_hdr(encoded)
    if not hdr.total_count:
        return Sparse(np.zeros(0, np.int64), np.zeros(0, np.int64), clamped)
    top = int(bucket_indices([hdr.max_value])[0]) + 1
    counts = np.ctypeslib.as_array(hdr.counts)[:top].astype(np.int64)
    buckets = np.flatnonzero(counts)
    return Sparse(buckets, counts[buckets], clamped)


def _ms(value_us: float) -> float:
    return float(value_us) / 1000.0


class LatencyHistogram:
    """An HdrHistogram of latencies in µs (1 µs .. 1 h, 3 digits), read in milliseconds.

    Exact to merge (bucket counts add), encodable to HdrHistogram's standard V2 compressed
    base64 form. ``clamped`` counts values above one hour that were recorded as one hour.
    Statistics of an empty histogram are 0.0, as in HdrHistogram; check ``count`` first.
    """

    __slots__ = ("_counts", "clamped")

    def __init__(self) -> None:
        self._counts: IntArray = np.zeros(COUNTS_LEN, dtype=np.int64)
        self.clamped = 0

    # -- recording and merging ---------------------------------------------------------
    def record(self, value_us: int) -> None:
        """Record one value (µs). For many values use ``record_many``."""
        if value_us > HIGHEST_US:
            value_us = HIGHEST_US
            self.clamped += 1
        v = max(int(value_us), 0)
        self._counts[int(bucket_indices(np.array([v]))[0])] += 1

    def record_many(self, values_us: Sequence[int] | npt.ArrayLike) -> None:
        """Record a batch of values (µs) at once: vectorised bucket indices, then bincount."""
        v, clamped = _clamp_us(np.asarray(values_us, dtype=np.int64).ravel())
        if v.size:
            self._counts += np.bincount(bucket_indices(v), minlength=COUNTS_LEN)
            self.clamped += clamped

    def add_sparse(self, sparse: Sparse) -> None:
        """Add a sparse bucket array (indices must be unique, as ``Sparse`` guarantees)."""
        if sparse.buckets.size:
            self._counts[sparse.buckets] += sparse.counts
        self.clamped += sparse.clamped

    def subtract_sparse(self, sparse: Sparse) -> None:
        """Take back counts added by ``add_sparse`` (for sliding windows)."""
        if sparse.buckets.size:
            self._counts[sparse.buckets] -= sparse.counts
        self.clamped -= sparse.clamped

    def merge(self, other: LatencyHistogram) -> None:
        """Add every count of ``other`` to this histogram (exact)."""
        self._counts += other._counts
        self.clamped += other.clamped

    @classmethod
    def from_sparse(cls, sparse: Sparse) -> LatencyHistogram:
        hist = cls()
        hist.add_sparse(sparse)
        return hist

    def to_sparse(self) -> Sparse:
        index = np.flatnonzero(self._counts).astype(np.int64)
        return Sparse(index, self._counts[index].copy(), self.clamped)

    def copy(self) -> LatencyHistogram:
        hist = LatencyHistogram()
        hist._counts[:] = self._counts
        hist.clamped = self.clamped
        return hist

    # -- codec -------------------------------------------------------------------------
    def encode(self) -> str:
        """HdrHistogram's V2 compressed encoding, base64 (readable by HdrHistogram tools).

        The clamped count is not part of that format: results files carry it beside.
        """
        return encode_sparse(self.to_sparse())

    @classmethod
    def decode(cls, encoded: str | bytes, clamped: int = 0) -> LatencyHistogram:
        """Read ``encode()``'s form; ValueError if it is not one, or has another layout."""
        hist = cls()
        hist._counts[:] = np.ctypeslib.as_array(_decode_hdr(encoded).counts)
        hist.clamped = clamped
        return hist

    # -- statistics (ms) ---------------------------------------------------------------
    @property
    def counts(self) -> IntArray:
        """The bucket counts (read-only view), HdrHistogram's counts array."""
        view = self._counts.view()
        view.flags.writeable = False
        return view

    @property
    def count(self) -> int:
        return int(self._counts.sum())

    @property
    def min(self) -> float:
        nonzero = np.flatnonzero(self._counts)
        return _ms(LOWEST_EQUIVALENT[nonzero[0]]) if nonzero.size else 0.0

    @property
    def max(self) -> float:
        nonzero = np.flatnonzero(self._counts)
        return _ms(HIGHEST_EQUIVALENT[nonzero[-1]]) if nonzero.size else 0.0

    @property
    def mean(self) -> float:
        total = self.count
        if not total:
            return 0.0
        weighted = int(np.dot(self._counts, MEDIAN_EQUIVALENT))
        return _ms(weighted / total)

    def percentile(self, p: float) -> float:
        """The value (ms) at percentile ``p`` in [0, 100], as HdrHistogram computes it."""
        return self.percentiles([p])[0]

    def percentiles(self, ps: Sequence[float]) -> list[float]:
        """Several percentiles with one pass over the buckets."""
        total = self.count
        if not total:
            return [0.0 for _ in ps]
        cumulative = np.cumsum(self._counts)
        out = []
        for p in ps:
            if not 0.0 <= p <= 100.0 or math.isnan(p):
                raise ValueError(f"percentile {p} is not within 0..100")
            # hdrh's get_target_count_at_percentile, to the float.
            target = max(int(min(p, 100.0) * total / 100 + 0.5), 1)
            i = int(np.searchsorted(cumulative, target, side="left"))
            value = HIGHEST_EQUIVALENT[i] if p else LOWEST_EQUIVALENT[i]
            out.append(_ms(value))
        return out

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LatencyHistogram):
            return NotImplemented
        return self.clamped == other.clamped and bool(np.array_equal(self._counts, other._counts))

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        if not self.count:
            return "LatencyHistogram(empty)"
        p50, p99 = self.percentiles([50, 99])
        return f"LatencyHistogram(count={self.count}, p50={p50}ms, p99={p99}ms, max={self.max}ms)"


def merge_sparse(parts: Sequence[Sparse]) -> Sparse:
    """One sparse histogram holding every count of ``parts``."""
    if len(parts) == 1:
        return parts[0]
    hist = LatencyHistogram()
    for part in parts:
        hist.add_sparse(part)
    return hist.to_sparse()


def is_ok(outcome: str) -> bool:
    """2xx and 3xx are ok; any other status and every error kind is an error."""
    return len(outcome) == 3 and outcome[0] in "23" and outcome.isdigit()


def status_matches(outcome: str, status: str | None) -> bool:
    """A ``{status:...}`` filter: None matches all; "503" exactly; "5xx" a class; or a kind."""
    if status is None or outcome == status:
        return True
    return (
        len(status) == 3
        and status.endswith("xx")
        and len(outcome) == 3
        and outcome.isdigit()
        and outcome[0] == status[0]
    )


# -- worker side ---------------------------------------------------------------------------
def _sparse_from_wire(obj: Any) -> Sparse:
    index_bytes, count_bytes, clamped = obj
    buckets = np.frombuffer(index_bytes, dtype="<u2")
    counts = np.frombuffer(count_bytes, dtype="<u4")
    if buckets.size != counts.size or (buckets.size and int(buckets.max()) >= COUNTS_LEN):
        raise ValueError("bucket arrays do not match")
    if buckets.size > 1 and not bool(np.all(buckets[1:] > buckets[:-1])):
        raise ValueError("bucket indices are not sorted and unique")
    return Sparse(buckets, counts, int(clamped))


def _compact(sparse: Sparse) -> Sparse:
    """The same histogram in 6 bytes per non-zero bucket (uint16 index, uint32 count)."""
    if sparse.buckets.dtype == np.uint16 and sparse.counts.dtype == np.uint32:
        return sparse
    if sparse.counts.size and int(sparse.counts.max()) >= 2**32:
        return sparse  # a bucket this full is kept wide
    return Sparse(sparse.buckets.astype(np.uint16), sparse.counts.astype(np.uint32), sparse.clamped)


def _ns_to_us(ns: IntArray) -> IntArray:
    return (ns + 500) // 1000


class Folded(NamedTuple):
    """Several series' histograms of one metric, one after another (``fold_series``).

    Series ``s`` has the non-zero buckets ``buckets[bounds[s]:bounds[s + 1]]`` (ascending)
    with the same slice of ``counts``, and ``clamped[s]`` values that were above one hour.
    """

    bounds: IntArray
    buckets: IntArray
    counts: IntArray
    clamped: IntArray


DENSE_BINS_PER_VALUE = 4
"""``fold_series`` counts in a dense (series, bucket) table while it has at most this many
cells per value (plus ``DENSE_BINS_MIN``); beyond that, sorting the values is cheaper than
scanning the table for its non-zero cells. Both give the same result."""
DENSE_BINS_MIN = 4096


def fold_series(
    series: IntArray, n_series: int, values_us: IntArray, *, dense: bool | None = None
) -> Folded:
    """The histogram of each series' values (µs; clamped into range, negatives as 0).

    ``series[i]`` (in 0 .. n_series - 1) is the series of ``values_us[i]``. Each value
    becomes one cell of a (series, bucket) table, ``series * span + bucket - lowest``, where
    lowest .. lowest + span - 1 are the buckets in use, so cell order is series order then
    bucket order. The cells are counted by one ``bincount`` (``dense``) or one sort of the
    values; ``None`` picks the cheaper for the table's size.
    """
    n = int(values_us.size)
    clamped = np.bincount(series[values_us > HIGHEST_US], minlength=n_series)
    if not n:
        empty = np.zeros(0, np.int64)
        return Folded(np.zeros(n_series + 1, np.int64), empty, empty, clamped)
    bucket = bucket_indices(np.clip(values_us, 0, HIGHEST_US))
    lowest = int(bucket.min())
    span = int(bucket.max()) - lowest + 1
    cell = series * span + (bucket - lowest)
    cells = n_series * span
    if dense is None:
        dense = cells <= DENSE_BINS_PER_VALUE * n + DENSE_BINS_MIN
    if dense:
        table = np.bincount(cell, minlength=cells)
        used = (table != 0).nonzero()[0]
        counts = table[used]
    else:
        ordered = np.sort(cell.astype(np.int32) if cells <= 2**31 else cell)
        first = np.flatnonzero(ordered[1:] != ordered[:-1]) + 1
        starts = np.concatenate((np.zeros(1, np.int64), first))
        used = ordered[starts].astype(np.int64)
        counts = np.diff(np.concatenate((starts, np.full(1, n, np.int64))))
    of_series = used // span
    buckets = used - of_series * span + lowest
    bounds = np.searchsorted(of_series, np.arange(n_series + 1, dtype=np.int64))
    return Folded(bounds.astype(np.int64), buckets, counts.astype(np.int64), clamped)


class IntervalRecorder:
    """One worker's measurements for the current interval (see the module docstring).

    Not thread-safe; one per worker process, shared by its greenlets (which never preempt
    inside ``record``).
    """

    __slots__ = (
        "_done",
        "_drop",
        "_dropped",
        "_ids",
        "_intended",
        "_key",
        "_keys",
        "_offered",
        "_rec_done",
        "_rec_intended",
        "_rec_key",
        "_rec_sent",
        "_sent",
        "worker",
    )

    def __init__(self, worker: int) -> None:
        self.worker = worker
        self._ids: dict[str, dict[str, int]] = {}
        self._keys: list[Key] = []
        self._offered = 0
        self._reset()

    def _reset(self) -> None:
        self._key: list[int] = []
        self._intended: list[int] = []
        self._sent: list[int] = []
        self._done: list[int] = []
        self._dropped: list[str] = []
        # Bound appends, looked up once: record() is the hottest call in the worker.
        self._rec_key = self._key.append
        self._rec_intended = self._intended.append
        self._rec_sent = self._sent.append
        self._rec_done = self._done.append
        self._drop = self._dropped.append

    def record(
        self, endpoint: str, outcome: str, intended_ns: int, sent_ns: int, done_ns: int
    ) -> None:
        """A request completed (with a status or an error kind). perf_counter_ns values."""
        try:
            key = self._ids[endpoint][outcome]
        except KeyError:
            key = self._new_key(endpoint, outcome)
        self._rec_key(key)
        self._rec_intended(intended_ns)
        self._rec_sent(sent_ns)
        self._rec_done(done_ns)

    def drop(self, endpoint: str, intended_ns: int) -> None:
        """A due request was not sent (max-inflight reached, or the run ended before a worker
        behind its schedule got to it): counted, never delayed.

        ``intended_ns`` is accepted for symmetry with ``record``; the drop is counted in the
        interval being filled.
        """
        self._drop(endpoint)

    def offered(self, n: int = 1) -> None:
        """``n`` requests came due (whether then sent or dropped)."""
        self._offered += n

    def _new_key(self, endpoint: str, outcome: str) -> int:
        key = len(self._keys)
        self._keys.append((endpoint, outcome))
        self._ids.setdefault(endpoint, {})[outcome] = key
        return key

    def pending(self) -> int:
        """Records buffered since the last flush."""
        return len(self._key)

    def flush(self, interval: int, inflight: int) -> bytes:
        """Fold the interval into per-series histograms; return the msgpack delta; reset."""
        keys, intended, sent, done = self._key, self._intended, self._sent, self._done
        dropped, offered = self._dropped, self._offered
        self._reset()
        self._offered = 0
        n = len(keys)
        series: list[list[Any]] = []
        if n:
            if len(self._keys) <= 256:  # every id fits a byte: bytes() converts them fastest
                key = np.frombuffer(bytes(keys), dtype=np.uint8).astype(np.int64)
            else:
                key = np.fromiter(keys, dtype=np.int64, count=n)
            t_intended = np.fromiter(intended, dtype=np.int64, count=n)
            t_sent = np.fromiter(sent, dtype=np.int64, count=n)
            t_done = np.fromiter(done, dtype=np.int64, count=n)
            # The series of this interval, numbered 0 .. m-1 in the order of their ids.
            sizes = np.bincount(key)
            present = np.flatnonzero(sizes)
            number = np.zeros(sizes.size, np.int64)
            number[present] = np.arange(present.size)
            of = number[key]
            m = int(present.size)
            wire = []  # per metric: bounds, then every series' buckets and counts as bytes
            for values_us in (
                _ns_to_us(t_done - t_intended),
                _ns_to_us(t_done - t_sent),
                _ns_to_us(t_sent - t_intended),
            ):
                folded = fold_series(of, m, values_us)
                wire.append(
                    (
                        folded.bounds.tolist(),
                        folded.buckets.astype("<u2").tobytes(),
                        folded.counts.astype("<u4").tobytes(),
                        folded.clamped.tolist(),
                    )
                )
            counted = zip(present.tolist(), sizes[present].tolist(), strict=True)
            for s, (k, size) in enumerate(counted):
                endpoint, outcome = self._keys[k]
                hists = []
                for bounds, buckets, counts, clamped in wire:
                    lo, hi = bounds[s], bounds[s + 1]
                    hists.append([buckets[2 * lo : 2 * hi], counts[4 * lo : 4 * hi], clamped[s]])
                series.append([endpoint, outcome, size, hists])
        delta = {
            "v": DELTA_VERSION,
            "worker": self.worker,
            "interval": interval,
            "inflight": inflight,
            "offered": offered,
            "dropped": dict(Counter(dropped)),
            "series": series,
        }
        packed: bytes = msgpack.packb(delta, use_bin_type=True)
        return packed


# -- coordinator side -----------------------------------------------------------------------
class SeriesDelta(NamedTuple):
    """One series' requests in one interval from one source."""

    endpoint: str
    outcome: str
    requests: int
    histograms: tuple[Sparse, Sparse, Sparse]  # in METRICS order


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
    def add(self, delta: bytes) -> int:
        """Merge one worker's delta (``IntervalRecorder.flush`` bytes); return its interval."""
        try:
            obj = msgpack.unpackb(delta, raw=False, strict_map_key=False)
            if not isinstance(obj, dict) or obj.get("v") != DELTA_VERSION:
                raise ValueError(f"not a version {DELTA_VERSION} delta")
            series = [
                SeriesDelta(
                    str(endpoint),
                    str(outcome),
                    int(count),
                    (
                        _sparse_from_wire(hists[0]),
                        _sparse_from_wire(hists[1]),
                        _sparse_from_wire(hists[2]),
                    ),
                )
                for endpoint, outcome, count, hists in obj["series"]
            ]
            interval = int(obj["interval"])
            self.add_interval(
                interval,
                worker=int(obj["worker"]),
                offered=int(obj["offered"]),
                inflight=int(obj["inflight"]),
                dropped={str(e): int(n) for e, n in obj["dropped"].items()},
                series=series,
            )
        except (msgpack.UnpackException, KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"malformed metrics delta: {exc}") from None
        return interval

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
