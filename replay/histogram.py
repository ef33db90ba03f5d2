"""Latency histograms: HdrHistogram's bucket layout, counted and merged with numpy.

``LatencyHistogram`` keeps HdrHistogram's exact bucket layout (microseconds, 1 µs .. 1 hour,
3 significant digits: every value is kept within 0.1 %) and its standard V2 compressed
base64 encoding, so HdrHistogram tools in any language read ``encode()``'s output. Counting,
merging and percentiles are done with numpy on the same bucket array; the tests check the
layout and every statistic against ``hdrh`` itself. Values above one hour are clamped to one hour
and counted in ``clamped`` (never dropped); negative values (a request sent a hair before
its intended time) are recorded as 0. Statistics follow HdrHistogram: a percentile is the
highest value equivalent to the bucket that holds it (never below the true value), ``min``
the lowest equivalent value of the lowest bucket, ``mean`` uses bucket midpoints. They are a
function of the bucket counts only, so merged histograms give exactly the statistics of one
histogram that recorded every value.

A histogram also travels and is kept in sparse form (``Sparse``): its non-zero buckets in
ascending order, their counts and the clamped count, exact to merge by adding counts. The
worker's deltas and the coordinator's intervals hold histograms that way (replay/recorder.py,
replay/aggregate.py); results files hold the V2 encoding.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt
from hdrh.histogram import HdrHistogram

LOWEST_US = 1
"""Lowest discernible value: 1 µs."""
HIGHEST_US = 3_600_000_000
"""Highest trackable value: one hour in µs. Larger values are clamped to it and counted."""
SIGNIFICANT_FIGURES = 3
"""Value precision: every value is kept within 0.1 % (1 part in 10**3)."""

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
    from replay.results_check import histogram_size_problem

    too_large = histogram_size_problem(encoded, COUNTS_LEN)
    if too_large:
        raise ValueError(f"not an HdrHistogram of replay's: {too_large}")
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
