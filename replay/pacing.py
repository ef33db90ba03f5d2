"""When each request is due: pure functions of elapsed time and hit number, no clock reads.

Everything here maps *which* request (its hit number, or its corpus record and copy) to
*when* it is due, in integer nanoseconds since the run's common start. The worker's scheduler
sleeps until those times; nothing in this module sleeps, so each model is tested exactly.

Arrival-rate models (``--rate``, ``--stage``)
---------------------------------------------
A run offers requests at a rate r(t) (requests per second) that is piecewise linear in t:
constant for ``--rate R``; for ``--stage D1:R1 --stage D2:R2 ...`` it ramps linearly from the
start rate r0 (``--rate``, else 0) to R1 over D1, then to R2 over D2, and so on (k6's
ramping-arrival-rate). The expected number of requests due in [0, t) is

    Λ(t) = ∫₀ᵗ r(u) du

which on a segment starting at s, of duration D, from rate a to rate b, with u = t - s, is

    Λ(t) = Λ(s) + a·u + (b - a)·u² / (2D)          (rates per ns, times in ns)

Hit n (n = 0, 1, 2, ...) is due at the first instant the curve passes n:

    t(n) = inf{ t : Λ(t) > n }

so a constant rate R gives t(n) = n / R (0, 1/R, 2/R, ...: ⌈R·T⌉ hits in [0, T)), and a
stage that holds rate 0 sends nothing. Within a segment the quadratic is solved in the
cancellation-free form u = 2y / (a + √(a² + 2y(b - a)/D)) with y = n - Λ(s).

Uniform arrivals share hits between W workers by number: worker w sends hits w, w+W, w+2W,
... so together they send exactly the single-process schedule. Poisson arrivals
(``--arrival poisson``) use time rescaling: worker w draws a Poisson process of intensity
1/W on the Λ axis (exponential gaps of mean W from its own seeded generator) and maps each
point x to t = Λ⁻¹(x). Each worker is then a Poisson process of intensity r(t)/W, and
independent Poisson processes superpose to one of intensity r(t).

Corpus timeline (the default model)
-----------------------------------
Record i of the corpus, recorded at offset oᵢ, is due at oᵢ / speed. The corpus loops with
period P (its duration), so in loop L it is due at (L·P + oᵢ) / speed. ``--scale s`` sends
cᵢ copies of record i, where with s = p/q as an exact fraction and k = L·N + i the record's
global position (N records per loop)

    cᵢ = ⌊(k + 1)·p / q⌋ - ⌊k·p / q⌋

so the copies of any run of consecutive records add to within one of s times their number,
and copy j of cᵢ is spread over the gap gᵢ = oᵢ₊₁ - oᵢ to the next record:

    t = (L·P + oᵢ + ⌊j·gᵢ / cᵢ⌋) / speed

which keeps the run's duration and shape and multiplies its rate by s, with no bursts.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import NamedTuple, TypeVar

from capture.units import NS

T = TypeVar("T")


@dataclass(frozen=True)
class Segment:
    """A linear piece of the rate curve: from rate `a` to rate `b` (req/s) over [start, end)."""

    start_ns: int
    duration_ns: int
    a: float
    b: float
    before: float  # Λ(start): requests due before this segment

    @property
    def end_ns(self) -> int:
        return self.start_ns + self.duration_ns

    @property
    def area(self) -> float:
        """Requests due within the segment: the trapezoid (a + b)/2 · D."""
        return (self.a + self.b) / 2 * self.duration_ns / NS


class RateCurve:
    """A piecewise-linear offered rate r(t) over [0, end_ns) and its integral Λ(t)."""

    def __init__(self, segments: Sequence[tuple[int, float, float]]) -> None:
        """`segments` are (duration_ns, from_rate, to_rate), back to back from t = 0."""
        pieces: list[Segment] = []
        start, before = 0, 0.0
        for duration_ns, a, b in segments:
            if duration_ns <= 0:
                raise ValueError("a segment must last longer than zero")
            if a < 0 or b < 0 or not (math.isfinite(a) and math.isfinite(b)):
                raise ValueError("rates must be finite and not negative")
            seg = Segment(start, duration_ns, float(a), float(b), before)
            pieces.append(seg)
            start, before = seg.end_ns, before + seg.area
        if not pieces:
            raise ValueError("a rate curve needs at least one segment")
        self.segments = tuple(pieces)
        self.end_ns = start
        self.total = before  # Λ(end): the expected number of requests in the run
        # A constant curve (the common case) is inverted without a search.
        only = pieces[0]
        self._constant = only.a if len(pieces) == 1 and only.a == only.b else None

    @property
    def constant_rate(self) -> float | None:
        """The rate of a constant curve (one segment, a = b), else None."""
        return self._constant

    def rate(self, t_ns: int) -> float:
        """r(t) in requests per second; 0 outside [0, end)."""
        if t_ns < 0 or t_ns >= self.end_ns:
            return 0.0
        for seg in self.segments:
            if t_ns < seg.end_ns:
                u = t_ns - seg.start_ns
                return seg.a + (seg.b - seg.a) * u / seg.duration_ns
        return 0.0  # pragma: no cover - unreachable: t < end_ns

    def cumulative(self, t_ns: int) -> float:
        """Λ(t): the expected number of requests due in [0, t)."""
        if t_ns <= 0:
            return 0.0
        if t_ns >= self.end_ns:
            return self.total
        for seg in self.segments:
            if t_ns < seg.end_ns:
                u = t_ns - seg.start_ns
                ramp = (seg.b - seg.a) * u * u / (2 * seg.duration_ns)
                return seg.before + (seg.a * u + ramp) / NS
        return self.total  # pragma: no cover

    def inverse(self, x: float) -> int | None:
        """t(x) = inf{t : Λ(t) > x} in ns, or None when the curve never passes x."""
        if x < 0:
            return 0
        if self._constant is not None:
            due = x * NS / self._constant if self._constant > 0 else math.inf
            return int(due) if due < self.end_ns else None
        for seg in self.segments:
            if seg.before <= x < seg.before + seg.area:
                y = (x - seg.before) * NS  # requests·ns/s still to accumulate in this segment
                slope = (seg.b - seg.a) / seg.duration_ns
                root = math.sqrt(max(seg.a * seg.a + 2 * y * slope, 0.0))
                denominator = seg.a + root
                u = 2 * y / denominator if denominator > 0 else 0.0
                t = seg.start_ns + min(int(u), seg.duration_ns - 1)
                return t if t < self.end_ns else None
        return None

    def hits_before(self, t_ns: int) -> int:
        """How many uniform hits are due in [0, t): #{n ≥ 0 : t(n) < t} = ⌈Λ(t)⌉."""
        return math.ceil(self.cumulative(t_ns) - 1e-9) if t_ns > 0 else 0


def constant(rate: float, duration_ns: int) -> RateCurve:
    """`--rate R` for `--duration D`."""
    if rate <= 0:
        raise ValueError("rate must be positive")
    return RateCurve([(duration_ns, rate, rate)])


def staged(stages: Sequence[tuple[int, float]], start_rate: float = 0.0) -> RateCurve:
    """`--stage D:R` repeated: ramp linearly from the previous rate to R over D (k6 style)."""
    segments, previous = [], start_rate
    for duration_ns, target in stages:
        segments.append((duration_ns, previous, target))
        previous = target
    return RateCurve(segments)


def uniform_hits(curve: RateCurve, worker: int = 0, workers: int = 1) -> Iterator[int]:
    """Due times of this worker's share of evenly paced hits: t(w), t(w+W), t(w+2W), ..."""
    if not 0 <= worker < workers:
        raise ValueError(f"worker {worker} of {workers} does not exist")
    n = worker
    rate, end = curve.constant_rate, curve.end_ns
    if rate is not None and rate > 0:  # inverse() inlined: the same arithmetic, 5x cheaper
        while True:
            due = n * NS / rate
            if due >= end:  # (compared as a float: a subnormal rate gives infinity)
                return
            yield int(due)
            n += workers
    while True:
        t = curve.inverse(n)
        if t is None:
            return
        yield t
        n += workers


def poisson_hits(curve: RateCurve, seed: int, worker: int = 0, workers: int = 1) -> Iterator[int]:
    """Due times of this worker's Poisson arrivals: intensity r(t)/W, reproducible by seed."""
    if not 0 <= worker < workers:
        raise ValueError(f"worker {worker} of {workers} does not exist")
    rng = random.Random(seed * 1_000_003 + worker)
    mean_gap = 1.0 / workers  # expovariate takes the intensity: gaps of mean W on the Λ axis
    x = rng.expovariate(mean_gap)
    while True:
        t = curve.inverse(x)
        if t is None:
            return
        yield t
        x += rng.expovariate(mean_gap)


# --- corpus timeline ---------------------------------------------------------------------


def as_fraction(scale: float) -> Fraction:
    """The scale as an exact small fraction (2.5 -> 5/2), so copy counts add up exactly."""
    if not (scale > 0 and math.isfinite(scale)):
        raise ValueError("scale must be positive")
    return Fraction(scale).limit_denominator(1000)


def copies(k: int, scale: Fraction) -> int:
    """Copies of the record at global position k: ⌊(k+1)·s⌋ - ⌊k·s⌋ (0 or more)."""
    p, q = scale.numerator, scale.denominator
    return (k + 1) * p // q - k * p // q


def spread(offset_ns: int, gap_ns: int, j: int, count: int) -> int:
    """Copy j of `count` sits j/count of the way across the gap to the next record."""
    return offset_ns + gap_ns * j // count


def timeline_due(loop: int, period_ns: int, at_ns: int, speed: float) -> int:
    """A corpus instant (after spreading) in loop `loop`, on the replay clock at `speed`."""
    return int((loop * period_ns + at_ns) / speed)


def loop_period(duration_ns: int, last_offset_ns: int, records: int) -> int:
    """The corpus period: its declared duration, or, when that ends on the last record, one
    mean gap after it (so the first record of the next loop does not land on the last)."""
    if duration_ns > last_offset_ns:
        return duration_ns
    mean_gap = last_offset_ns // max(records - 1, 1)
    return max(last_offset_ns + max(mean_gap, 1), 1_000_000)


class TimelineEntry(NamedTuple):
    """One corpus record as the timeline sees it: its global index (`record`), offset and
    gap. (A named tuple: one is made per record read; a frozen dataclass costs 3x as much.)"""

    record: int  # its index in the corpus
    offset_ns: int
    gap_ns: int


def timeline(
    entries: Callable[[], Iterable[tuple[TimelineEntry, T]]],
    records_per_loop: int,
    period_ns: int,
    scale: Fraction,
    speed: float,
    duration_ns: int,
) -> Iterator[tuple[int, T]]:
    """(due_ns, payload) of every copy, in time order, until duration_ns.

    `entries()` gives one pass over the corpus (or over a worker's shard of it: indices and
    gaps are the global ones, so every worker's share lands exactly where it would in a
    single process); it is called again for each loop.
    """
    if speed <= 0:
        return
    loop = 0
    while True:
        base = loop * records_per_loop
        any_entry = False
        for e, payload in entries():
            any_entry = True
            count = copies(base + e.record, scale)
            for j in range(count):
                t = timeline_due(loop, period_ns, spread(e.offset_ns, e.gap_ns, j, count), speed)
                if t >= duration_ns:
                    return
                yield t, payload
        loop += 1
        if not any_entry or timeline_due(loop, period_ns, 0, speed) >= duration_ns:
            return
