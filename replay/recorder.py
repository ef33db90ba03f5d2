"""The worker's per-interval recorder and the delta it sends the coordinator.

Measurement flows one way: ``IntervalRecorder`` (one per worker process, on the hot path)
-> ``flush()`` ten times a second -> msgpack deltas, each second's sent together over the pipe
-> ``RunAggregate.add()`` in the coordinator (replay/aggregate.py) -> ``whole()``,
``timeline``, ``windows()`` for thresholds, results and summary. The histograms are
replay/histogram.py's.

Latencies (wrk2's honest open model)
------------------------------------
Every request has an intended send time (when the pacer said it was due), an actual send time
and a completion time, all ``time.monotonic_ns()`` values (CLOCK_MONOTONIC, one clock for
every worker process on Linux):

    latency              = done - intended   (coordinated omission corrected: the default)
    latency_uncorrected  = done - sent       (what a closed-loop tool would report)
    send_lag             = sent - intended   (how far the load generator ran behind)

so latency = latency_uncorrected + send_lag. Each is rounded to the nearest microsecond.

The recorder (hot path)
-----------------------
``IntervalRecorder.record(endpoint, outcome, intended_ns, sent_ns, done_ns)`` does one dict
lookup (the (endpoint, outcome) series id) and appends the caller's own ints to plain lists:
no object is created per request; the conversion to int64 happens once per fold, in
``flush()``. ``outcome`` is replay/outcomes.py's. ``drop(endpoint, intended_ns)`` counts a
request the generator could not send; ``offered(n)`` counts requests that came due.

The delta
---------
``flush(interval, inflight) -> bytes`` folds the buffers into per-series bucket counts and
returns one msgpack map (the *delta*, ``DELTA_VERSION`` 1). The fold runs on the worker's
event loop (ten times a second), so it is one counting pass per metric: each value becomes a
cell of one (series, bucket) table, counted by ``np.bincount`` when the table is small and by
one sort of the values when it is not (``fold_series``)::

    {"v": 1, "worker": int, "interval": int (seconds since the common start),
     "inflight": int, "offered": int, "dropped": {endpoint: int},
     "series": [[endpoint, outcome, count, [h_latency, h_uncorrected, h_send_lag]], ...]}

where each ``h`` is ``[bucket_indices, bucket_counts, clamped]``: the non-zero buckets of
that series' histogram as little-endian uint16 and uint32 bytes: HdrHistogram's bucket
array in sparse form, exact and mergeable by adding counts (results files keep the V2
encoding). ``read_delta(bytes)`` decodes one and checks it (sizes, bucket order and range).
"""

from __future__ import annotations

from collections import Counter
from typing import Any, NamedTuple

import msgpack
import numpy as np

from replay.histogram import COUNTS_LEN, HIGHEST_US, IntArray, Sparse, bucket_indices
from replay.outcomes import ERROR_KINDS as ERROR_KINDS

METRICS = ("latency", "latency_uncorrected", "send_lag")
"""The three histograms kept per series, in this order everywhere (deltas, results)."""

DELTA_VERSION = 1

Key = tuple[str, str]
"""A series: (endpoint, outcome)."""


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
        self._reset()

    def _reset(self) -> None:
        self._key: list[int] = []
        self._intended: list[int] = []
        self._sent: list[int] = []
        self._done: list[int] = []
        self._dropped: list[str] = []
        self._offered = 0
        # Bound appends, looked up once: record() is the hottest call in the worker.
        self._rec_key = self._key.append
        self._rec_intended = self._intended.append
        self._rec_sent = self._sent.append
        self._rec_done = self._done.append
        self._drop = self._dropped.append

    def record(
        self, endpoint: str, outcome: str, intended_ns: int, sent_ns: int, done_ns: int
    ) -> None:
        """A request completed (with a status or an error kind). monotonic_ns values."""
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

    def flush(self, interval: int, inflight: int, extra: dict[str, Any] | None = None) -> bytes:
        """Fold the interval into per-series histograms; return the msgpack delta; reset.
        `extra` adds keys to the delta: a scenario's ``scenario`` and ``vus``."""
        keys, intended, sent, done = self._key, self._intended, self._sent, self._done
        dropped, offered = self._dropped, self._offered
        self._reset()
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
        if extra:
            delta.update(extra)
        packed: bytes = msgpack.packb(delta, use_bin_type=True)
        return packed


# -- reading a delta ---------------------------------------------------------------------------
class SeriesDelta(NamedTuple):
    """One series' requests in one interval from one source."""

    endpoint: str
    outcome: str
    requests: int
    histograms: tuple[Sparse, Sparse, Sparse]  # in METRICS order


class Delta(NamedTuple):
    """One source's measurements of one interval, as ``read_delta`` decodes them."""

    worker: int
    interval: int
    inflight: int
    offered: int
    dropped: dict[str, int]
    series: list[SeriesDelta]
    scenario: str | None = None  # the scenario these requests belong to (scenario files)
    vus: int | None = None  # that scenario's active VUs at mid-interval (closed executors)


def _sparse_from_wire(obj: Any) -> Sparse:
    index_bytes, count_bytes, clamped = obj
    buckets = np.frombuffer(index_bytes, dtype="<u2")
    counts = np.frombuffer(count_bytes, dtype="<u4")
    if buckets.size != counts.size or (buckets.size and int(buckets.max()) >= COUNTS_LEN):
        raise ValueError("bucket arrays do not match")
    if buckets.size > 1 and not bool(np.all(buckets[1:] > buckets[:-1])):
        raise ValueError("bucket indices are not sorted and unique")
    return Sparse(buckets, counts, int(clamped))


def read_delta(delta: bytes) -> Delta:
    """Decode ``IntervalRecorder.flush``'s bytes; ValueError if they are not a delta."""
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
        return Delta(
            interval=interval,
            worker=int(obj["worker"]),
            offered=int(obj["offered"]),
            inflight=int(obj["inflight"]),
            dropped={str(e): int(n) for e, n in obj["dropped"].items()},
            series=series,
            scenario=_optional(obj, "scenario", str),
            vus=_optional(obj, "vus", int),
        )
    except (msgpack.UnpackException, KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"malformed metrics delta: {exc}") from None


def _optional(obj: dict[str, Any], key: str, kind: type) -> Any:
    value = obj.get(key)
    if value is not None and (not isinstance(value, kind) or isinstance(value, bool)):
        raise ValueError(f"{key} is not a {kind.__name__}")
    return value
