"""The ramping-vus arithmetic, clock-free: exact tables, then properties against a
brute-force reading of k6's rule (a VU is added once the line reaches it, removed once the
line has left it)."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from replay.segments import share
from replay.vu_schedule import most, part, steps, vus_at

S = 1_000_000_000


@pytest.mark.parametrize(
    ("start", "stages", "expected"),
    [
        # 0 -> 4 over 4 s: one more VU each second, the 4th exactly at the stage's end
        (0, [(4 * S, 4)], [(0, 0), (S, 1), (2 * S, 2), (3 * S, 3), (4 * S, 4)]),
        # 4 -> 0 over 2 s: down by one every half second, to 0 at the end
        (4, [(2 * S, 0)], [(0, 4), (S // 2, 3), (S, 2), (3 * S // 2, 1), (2 * S, 0)]),
        # hold then jump: a zero-length stage changes the count at its start
        (2, [(3 * S, 2), (0, 5)], [(0, 2), (3 * S, 5)]),
        # the guide's dashboard: 5 -> 10 over 2 m, hold 6 m, 10 -> 5 over 2 m
        (
            5,
            [(120 * S, 10), (360 * S, 10), (120 * S, 5)],
            [(0, 5)]
            + [(24 * S * k, 5 + k) for k in range(1, 6)]
            + [(480 * S + 24 * S * k, 10 - k) for k in range(1, 6)],
        ),
    ],
)
def test_steps_table(
    start: int, stages: list[tuple[int, float]], expected: list[tuple[int, int]]
) -> None:
    assert steps(start, stages) == expected


def test_vus_at_reads_the_steps() -> None:
    stages = [(4 * S, 4.0)]
    # just before the 2nd VU's instant there is one VU; at it, two
    assert vus_at(0, stages, 2 * S - 1) == 1
    assert vus_at(0, stages, 2 * S) == 2
    assert vus_at(0, stages, 100 * S) == 4  # after the end: the last target
    assert most(3, [(S, 8.0), (S, 1.0)]) == 8


def _brute(start: int, stages: list[tuple[int, int]], t: int) -> int:
    """k6's rule read directly off the line: floor going up, ceil going down."""
    t0, current = 0, start
    for d, target in stages:
        if t < t0 + d:
            line = current + Fraction(target - current) * Fraction(t - t0, d)
            return math.floor(line) if target >= current else math.ceil(line)
        t0 += d
        current = target
    return current


stage = st.tuples(st.integers(0, 50), st.integers(0, 30)).map(lambda p: (p[0] * S // 10, p[1]))


@given(st.integers(0, 30), st.lists(stage, min_size=1, max_size=5), st.integers(0, 300))
def test_vus_at_matches_the_line(start: int, stages: list[tuple[int, int]], tenth: int) -> None:
    t = tenth * S // 10 + 1  # (just after a tenth: never on a stage boundary's ambiguity)
    assert vus_at(start, stages, t) == _brute(start, stages, t)


@given(
    st.integers(0, 40),
    st.lists(stage, min_size=1, max_size=4),
    st.integers(1, 4),
    st.integers(1, 4),
)
def test_worker_parts_add_up(start: int, stages: list[tuple[int, int]], k: int, w: int) -> None:
    """At every instant the parts of all segments and workers add up to the whole."""
    whole = steps(start, stages)
    parts = [
        part(whole, lambda n, s=s, x=x: share(n, s, k, x, w)) for s in range(k) for x in range(w)
    ]
    for t, total in whole:
        got = 0
        for p in parts:
            got += [v for when, v in p if when <= t][-1]
        assert got == total
