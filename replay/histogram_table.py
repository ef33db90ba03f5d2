"""Many sparse histograms held as one table, merged and read with vectorised numpy.

A report asks percentiles of the same latencies grouped many ways: per second, per endpoint
and second, per phase, per drift window. ``HistTable`` keeps rows (group, bucket, count)
sorted by group then bucket, with no bucket twice in a group; ``regroup`` maps groups onto
new ones and adds the counts of buckets that meet (exact: counts are integers), and
``percentiles`` reads every group's percentiles at once. The statistics are
``LatencyHistogram``'s (HdrHistogram's): a percentile is the highest value equivalent to
the bucket holding it (the lowest, for p0).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from replay.histogram import COUNTS_LEN, HIGHEST_EQUIVALENT, LOWEST_EQUIVALENT

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


class HistTable:
    """``groups`` histograms (µs buckets, HdrHistogram's layout) as sorted flat rows."""

    __slots__ = ("bucket", "count", "group", "groups", "offsets")

    def __init__(self, groups: int, group: IntArray, bucket: IntArray, count: IntArray) -> None:
        """Rows must be sorted by (group, bucket), unique, with positive counts; use
        ``from_rows`` for rows in any order."""
        self.groups = groups
        self.group, self.bucket, self.count = group, bucket, count
        self.offsets: IntArray = np.searchsorted(group, np.arange(groups + 1)).astype(np.int64)

    @classmethod
    def from_rows(
        cls, groups: int, group: IntArray, bucket: IntArray, count: IntArray
    ) -> HistTable:
        """Rows in any order, a bucket possibly repeated: sorted and added up. Rows whose
        group is negative are dropped."""
        keep = (group >= 0) & (count > 0)
        if groups <= 0 or not bool(np.any(keep)):
            empty = np.zeros(0, np.int64)
            return cls(max(groups, 0), empty, empty, empty)
        key = group[keep].astype(np.int64) * COUNTS_LEN + bucket[keep]
        counts = count[keep].astype(np.int64)
        if key.size > 1 and not bool(np.all(key[1:] >= key[:-1])):
            order = np.argsort(key, kind="stable")
            key, counts = key[order], counts[order]
        starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
        key = key[starts]
        summed = np.add.reduceat(counts, starts)
        return cls(groups, key // COUNTS_LEN, key % COUNTS_LEN, summed)

    def regroup(self, mapping: IntArray, groups: int) -> HistTable:
        """Group ``g`` becomes ``mapping[g]`` (negative: left out), among ``groups``."""
        return HistTable.from_rows(groups, mapping[self.group], self.bucket, self.count)

    def totals(self) -> IntArray:
        """Values recorded in each group."""
        sums = np.zeros(self.groups, np.int64)
        np.add.at(sums, self.group, self.count)
        return sums

    def percentiles(self, ps: Sequence[float]) -> FloatArray:
        """(groups, len(ps)) array of percentiles in ms; NaN for an empty group."""
        out = np.full((self.groups, len(ps)), np.nan)
        if not self.count.size:
            return out
        cumulative = np.cumsum(self.count)
        start, end = self.offsets[:-1], self.offsets[1:]
        filled = end > start
        base = np.where(start > 0, cumulative[np.maximum(start - 1, 0)], 0)[filled]
        total = cumulative[end[filled] - 1] - base
        for j, p in enumerate(ps):
            if not 0.0 <= p <= 100.0:
                raise ValueError(f"percentile {p} is not within 0..100")
            # LatencyHistogram.percentiles: max(int(p * total / 100 + 0.5), 1), to the float
            target = np.maximum(np.floor(p * total.astype(np.float64) / 100 + 0.5), 1)
            row = np.searchsorted(cumulative, base + target.astype(np.int64), side="left")
            table = HIGHEST_EQUIVALENT if p else LOWEST_EQUIVALENT
            out[filled, j] = table[self.bucket[row]] / 1000.0
        return out
