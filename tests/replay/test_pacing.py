"""The pacing models as pure functions: exact tables first, then properties."""

from __future__ import annotations

import itertools
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from replay import pacing
from replay.pacing import NS, TimelineEntry

MS = 1_000_000


@pytest.mark.parametrize(
    ("rate", "duration_ns", "expected"),
    [
        (1, 3 * NS, [0, NS, 2 * NS]),  # 1 hit/s for 3 s => hits at 0, 1 s, 2 s
        (2, NS, [0, NS // 2]),  # 2 hits/s for 1 s => 0 and 500 ms
        (4, NS + 1, [0, 250 * MS, 500 * MS, 750 * MS, NS]),  # a hit exactly at 1 s counts if < end
        (1000, 3 * MS, [0, MS, 2 * MS]),  # 1000/s => one per millisecond
        (0.5, 3 * NS, [0, 2 * NS]),  # a rate below 1/s still paces exactly
    ],
)
def test_constant_due_times(rate: float, duration_ns: int, expected: list[int]) -> None:
    assert list(pacing.uniform_hits(pacing.constant(rate, duration_ns))) == expected


@pytest.mark.parametrize(
    ("stages", "start", "t_ns", "rate", "cumulative"),
    [
        ([(10 * NS, 100.0)], 0.0, 5 * NS, 50.0, 125.0),  # halfway up a 0->100 ramp: 50/s, 125 sent
        ([(10 * NS, 100.0)], 0.0, 10 * NS, 0.0, 500.0),  # at the end the curve is over: rate 0
        ([(10 * NS, 100.0), (10 * NS, 100.0)], 0.0, 15 * NS, 100.0, 1000.0),  # ramp then hold
        ([(4 * NS, 0.0)], 100.0, 2 * NS, 50.0, 150.0),  # --rate 100 as start, ramp down to 0
        ([(5 * NS, 0.0), (5 * NS, 0.0)], 0.0, 7 * NS, 0.0, 0.0),  # a zero stage sends nothing
    ],
)
def test_staged_rate_and_integral(
    stages: list[tuple[int, float]], start: float, t_ns: int, rate: float, cumulative: float
) -> None:
    curve = pacing.staged(stages, start)
    assert curve.rate(t_ns) == pytest.approx(rate)
    assert curve.cumulative(t_ns) == pytest.approx(cumulative)


def test_zero_rate_stage_defers_first_hit() -> None:
    # hold 0 for 2 s, then ramp to 10/s over 2 s: nothing is due before 2 s
    curve = pacing.staged([(2 * NS, 0.0), (2 * NS, 10.0)])
    times = list(pacing.uniform_hits(curve))
    assert times[0] >= 2 * NS
    assert len(times) == 10  # area of the ramp: 10/2 * 2 s


def test_ramp_hits_follow_the_square_law() -> None:
    # a 0 -> 100/s ramp over 10 s: Λ(t) = 5 t², so hit n is due at sqrt(n / 5) s
    curve = pacing.staged([(10 * NS, 100.0)])
    times = list(pacing.uniform_hits(curve))
    assert len(times) == 500
    for n in (1, 20, 125, 499):
        assert times[n] == pytest.approx((n / 5) ** 0.5 * NS, rel=1e-9, abs=2)


def test_workers_partition_the_uniform_schedule() -> None:
    # three workers together send exactly the single-process schedule, each hit once
    curve = pacing.constant(333, 2 * NS)
    single = list(pacing.uniform_hits(curve))
    merged = sorted(itertools.chain(*(pacing.uniform_hits(curve, w, 3) for w in range(3))))
    assert merged == single


def test_poisson_is_reproducible_and_near_the_rate() -> None:
    curve = pacing.constant(2000, 5 * NS)
    a = list(pacing.poisson_hits(curve, seed=7))
    b = list(pacing.poisson_hits(curve, seed=7))
    c = list(pacing.poisson_hits(curve, seed=8))
    assert a == b and a != c
    assert 9_500 < len(a) < 10_500  # mean 10 000, sd 100
    assert a == sorted(a)


def test_poisson_workers_superpose_to_the_rate() -> None:
    # four independent processes of intensity r/4 add up to about r
    curve = pacing.constant(2000, 5 * NS)
    total = sum(len(list(pacing.poisson_hits(curve, 1, w, 4))) for w in range(4))
    assert 9_500 < total < 10_500


def test_bad_curves_are_refused() -> None:
    with pytest.raises(ValueError):
        pacing.constant(0, NS)
    with pytest.raises(ValueError):
        pacing.staged([])
    with pytest.raises(ValueError):
        pacing.staged([(0, 5.0)])
    with pytest.raises(ValueError):
        list(pacing.uniform_hits(pacing.constant(1, NS), 3, 3))


@pytest.mark.parametrize(
    ("scale", "n", "total"),
    [
        (Fraction(5), 10, 50),  # 5x: every record 5 times
        (Fraction(5, 2), 10, 25),  # 2.5x: copies alternate 2, 3
        (Fraction(1, 3), 9, 3),  # 1/3x: every third record
        (Fraction(1), 7, 7),  # 1x: each once
    ],
)
def test_copies_add_up(scale: Fraction, n: int, total: int) -> None:
    counts = [pacing.copies(k, scale) for k in range(n)]
    assert sum(counts) == total
    assert max(counts) - min(counts) <= 1


@pytest.mark.parametrize(
    ("offset", "gap", "j", "count", "expected"),
    [
        (100, 40, 0, 4, 100),  # the first copy keeps the record's own time
        (100, 40, 1, 4, 110),  # then a quarter of the gap later
        (100, 40, 3, 4, 130),  # the last copy is still before the next record (at 140)
        (100, 0, 2, 3, 100),  # records recorded at the same instant keep their copies together
    ],
)
def test_spread(offset: int, gap: int, j: int, count: int, expected: int) -> None:
    assert pacing.spread(offset, gap, j, count) == expected


def _entries(offsets: list[int], period: int) -> list[tuple[TimelineEntry, int]]:
    gaps = [b - a for a, b in itertools.pairwise([*offsets, period])]
    return [(TimelineEntry(i, o, g), i) for i, (o, g) in enumerate(zip(offsets, gaps, strict=True))]


def test_timeline_scale_spreads_copies_and_keeps_duration() -> None:
    # 2 records at 0 and 1 s in a 2 s corpus, 2x: copies at 0, .5, 1, 1.5 s
    entries = _entries([0, NS], 2 * NS)
    got = list(pacing.timeline(lambda: entries, 2, 2 * NS, Fraction(2), 1.0, 2 * NS))
    assert got == [(0, 0), (NS // 2, 0), (NS, 1), (3 * NS // 2, 1)]


def test_timeline_speed_compresses_time() -> None:
    # at 2x speed a 2 s corpus plays in 1 s
    entries = _entries([0, NS], 2 * NS)
    got = list(pacing.timeline(lambda: entries, 2, 2 * NS, Fraction(1), 2.0, NS))
    assert got == [(0, 0), (NS // 2, 1)]


def test_timeline_loops_until_the_duration() -> None:
    # a 1 s corpus of 2 records over 2.5 s: 2 full loops and the first record of a third
    entries = _entries([0, NS // 2], NS)
    got = [t for t, _ in pacing.timeline(lambda: entries, 2, NS, Fraction(1), 1.0, 5 * NS // 2)]
    assert got == [0, NS // 2, NS, 3 * NS // 2, 2 * NS]


def test_timeline_shards_add_up_to_the_whole() -> None:
    # two shards of the corpus, each with global indices and gaps, give the whole schedule
    entries = _entries([0, 10, 25, 40, 70], 100)
    whole = [t for t, _ in pacing.timeline(lambda: entries, 5, 100, Fraction(5, 2), 1.0, 300)]
    shards = [
        t
        for part in (entries[0::2], entries[1::2])
        for t, _ in pacing.timeline(lambda part=part: part, 5, 100, Fraction(5, 2), 1.0, 300)
    ]
    assert sorted(shards) == whole


def test_timeline_with_no_entries_ends() -> None:
    assert list(pacing.timeline(list, 0, NS, Fraction(1), 1.0, 10 * NS)) == []


def test_loop_period() -> None:
    assert pacing.loop_period(30 * NS, 29 * NS, 100) == 30 * NS  # declared duration wins
    assert pacing.loop_period(10 * NS, 10 * NS, 11) == 11 * NS  # one mean gap after the last


# --- properties --------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    rate=st.floats(min_value=0.5, max_value=5000),
    seconds=st.floats(min_value=0.01, max_value=3),
)
def test_n_requests_in_t_at_rate_r(rate: float, seconds: float) -> None:
    # ⌈R·T⌉ hits are due in [0, T) at rate R (within float rounding of R·T)
    duration = int(seconds * NS)
    times = list(pacing.uniform_hits(pacing.constant(rate, duration)))
    assert abs(len(times) - rate * duration / NS) <= 1
    assert all(0 <= t < duration for t in times)
    assert times == sorted(times)


@settings(max_examples=60, deadline=None)
@given(
    stages=st.lists(
        st.tuples(st.integers(1, 2000), st.floats(min_value=0, max_value=2000)),
        min_size=1,
        max_size=4,
    ),
    start=st.floats(min_value=0, max_value=2000),
)
def test_staged_hits_match_the_area(stages: list[tuple[int, float]], start: float) -> None:
    # the number of hits equals the area under the rate curve, up to one
    curve = pacing.staged([(ms * MS, r) for ms, r in stages], start)
    times = list(pacing.uniform_hits(curve))
    assert abs(len(times) - curve.total) <= 1
    assert times == sorted(times)
    assert all(0 <= t < curve.end_ns for t in times)
    # and each hit n is due where Λ has just passed n
    for n in range(0, len(times), max(1, len(times) // 7)):
        assert curve.cumulative(times[n]) <= n + 1e-6
        assert curve.cumulative(times[n] + 2) >= n - 1e-6


@settings(max_examples=60, deadline=None)
@given(
    numerator=st.integers(1, 40),
    denominator=st.integers(1, 8),
    records=st.integers(1, 50),
)
def test_scaled_timeline_count(numerator: int, denominator: int, records: int) -> None:
    # a scaled pass of N records yields ⌊N·s⌋ requests, all inside the pass
    scale = Fraction(numerator, denominator)
    offsets = [i * 7 for i in range(records)]
    period = records * 7
    entries = _entries(offsets, period)
    times = [t for t, _ in pacing.timeline(lambda: entries, records, period, scale, 1.0, period)]
    assert len(times) == records * numerator // denominator
    assert times == sorted(times)
    assert all(0 <= t < period for t in times)


@pytest.mark.parametrize(
    ("rate", "duration_ns", "workers"),
    [(300.0, NS, 1), (7.0, 3 * NS, 2), (25_000.0, NS // 10, 3), (0.5, 9 * NS, 4)],
)
def test_constant_rate_fast_path_is_inverse(rate: float, duration_ns: int, workers: int) -> None:
    # the inlined constant-rate loop gives exactly what inverse() gives, hit for hit
    curve = pacing.constant(rate, duration_ns)
    for w in range(workers):
        slow = []
        n = w
        while (t := curve.inverse(n)) is not None:
            slow.append(t)
            n += workers
        assert list(pacing.uniform_hits(curve, w, workers)) == slow
