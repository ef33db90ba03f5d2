"""capture/sizehist.py: percentiles in fixed memory, exact below 2 KiB, within 1/256 above."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from capture.sizehist import SizeHistogram


def nearest_rank(values: list[int], p: float) -> int:
    """The textbook nearest-rank percentile: the ceil(p/100 * n)-th smallest value."""
    ordered = sorted(values)
    return ordered[max(1, math.ceil(p / 100 * len(ordered))) - 1]


@given(
    values=st.lists(st.integers(0, 2**40), min_size=1, max_size=300),
    p=st.sampled_from([1.0, 50.0, 90.0, 99.0, 100.0]),
)
def test_percentiles_are_within_one_part_in_256(values: list[int], p: float) -> None:
    hist = SizeHistogram()
    for v in values:
        hist.add(v)
    exact = nearest_rank(values, p)
    got = hist.percentile(p)
    if exact < 2048:
        assert got == exact
    else:
        assert exact <= got <= exact * (1 + 1 / 256)
    assert hist.count == len(values) and hist.total == sum(values) and hist.max == max(values)


def test_memory_does_not_grow_with_the_values() -> None:
    hist = SizeHistogram()
    for v in range(0, 10**8, 9973):  # 10,027 distinct sizes
        hist.add(v)
    assert len(hist._counts) < 2048 + 256 * 20
    assert hist.percentile(0) == 0.0 and SizeHistogram().percentile(50) == 0.0
