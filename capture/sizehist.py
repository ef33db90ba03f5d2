"""A histogram of byte sizes in fixed memory: exact below 2 KiB, within 1/256 above.

`capture inspect` reports body size percentiles of corpora of any length; keeping one int
per record would make its memory grow with the corpus. Sizes are counted in log-linear
buckets (HdrHistogram's layout with 8 bits of sub-bucket): each power of two above 2 KiB is
cut into 256 equal buckets, so a percentile is off by less than 0.4% and the whole
histogram of sizes up to 2^63 holds at most 14,000 counters.
"""

from __future__ import annotations

from collections import Counter

_SUB_BITS = 8
_EXACT = 1 << (_SUB_BITS + 3)  # sizes below this are their own bucket


def _bucket(size: int) -> int:
    """The smallest size of the bucket that holds `size`."""
    if size < _EXACT:
        return size
    shift = size.bit_length() - 1 - _SUB_BITS
    return (size >> shift) << shift


class SizeHistogram:
    """Counts of sizes; percentiles by nearest rank, each the largest size of its bucket."""

    def __init__(self) -> None:
        self._counts: Counter[int] = Counter()
        self.count = 0
        self.total = 0
        self.max = 0

    def add(self, size: int) -> None:
        self._counts[_bucket(size)] += 1
        self.count += 1
        self.total += size
        self.max = max(self.max, size)

    def percentile(self, p: float) -> float:
        """The size at or below which p% of the sizes lie (0 when empty)."""
        if not self.count:
            return 0.0
        rank = max(1, -(-self.count * p // 100))  # nearest rank, ceil(count * p / 100)
        seen = 0
        for low in sorted(self._counts):
            seen += self._counts[low]
            if seen >= rank:
                return float(min(self.max, _upper(low)))
        return float(self.max)


def _upper(low: int) -> int:
    """The largest size of the bucket starting at `low`."""
    if low < _EXACT:
        return low
    shift = low.bit_length() - 1 - _SUB_BITS
    return low + (1 << shift) - 1
