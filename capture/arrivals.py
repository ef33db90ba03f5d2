"""When synthetic requests arrive: Poisson processes with a constant, diurnal or bursty rate.

All three profiles have the same mean rate R over the corpus, so `--rate` always means the
average requests per second; the profile only changes the shape.

    constant  homogeneous Poisson at R: N ~ Poisson(R*T) arrivals placed uniformly on [0, T)
              (the order statistics of uniforms are exactly a Poisson process given N).
    diurnal   one compressed "day" over the corpus: r(t) = R * (1 - A*cos(2*pi*t/T)), A = 0.6,
              a trough of 0.4R at the start and end and a peak of 1.6R in the middle.
    bursty    a quiet baseline with bursts at B = 5 times it: bursts start as a Poisson process
              (one per 30 s on average) and last Exp(mean 5 s); the baseline is R / (1 + (B-1)f)
              where f is the fraction of time spent bursting, so the mean stays R.

Non-constant profiles are drawn by thinning (Lewis & Shedler): candidates at the peak rate,
each kept with probability r(t)/peak.
"""

from __future__ import annotations

import math

import numpy as np

PROFILES = ("constant", "diurnal", "bursty")
DIURNAL_AMPLITUDE = 0.6
BURST_FACTOR = 5.0
BURST_EVERY_S = 30.0
BURST_MEAN_S = 5.0


def arrival_offsets_ns(
    rng: np.random.Generator, rate: float, duration_ns: int, profile: str = "constant"
) -> np.ndarray:
    """Sorted int64 offsets in [0, duration_ns) of a Poisson process with mean rate `rate`."""
    if rate <= 0 or not math.isfinite(rate):
        raise ValueError(f"rate must be positive, got {rate}")
    if duration_ns <= 0:
        raise ValueError(f"duration must be positive, got {duration_ns} ns")
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r} (choose from {', '.join(PROFILES)})")
    seconds = duration_ns / 1e9
    if profile == "constant":
        return _uniform_order(rng, rate, seconds, duration_ns)
    if profile == "diurnal":
        peak = rate * (1 + DIURNAL_AMPLITUDE)
        candidates = _uniform_order(rng, peak, seconds, duration_ns)
        t = candidates / duration_ns
        keep_p = (1 - DIURNAL_AMPLITUDE * np.cos(2 * np.pi * t)) / (1 + DIURNAL_AMPLITUDE)
        return candidates[rng.random(candidates.size) < keep_p]
    return _bursty(rng, rate, seconds, duration_ns)


def _uniform_order(
    rng: np.random.Generator, rate: float, seconds: float, duration_ns: int
) -> np.ndarray:
    n = int(rng.poisson(rate * seconds))
    offsets = np.sort(rng.integers(0, duration_ns, size=n, dtype=np.int64))
    return offsets


def burst_windows_s(rng: np.random.Generator, seconds: float) -> list[tuple[float, float]]:
    """Bursts as (start, end) seconds, non-overlapping, clipped to [0, seconds)."""
    windows: list[tuple[float, float]] = []
    t = float(rng.exponential(BURST_EVERY_S))
    while t < seconds:
        end = min(seconds, t + float(rng.exponential(BURST_MEAN_S)))
        windows.append((t, end))
        t = end + float(rng.exponential(BURST_EVERY_S))
    return windows


def _bursty(rng: np.random.Generator, rate: float, seconds: float, duration_ns: int) -> np.ndarray:
    windows = burst_windows_s(rng, seconds)
    burst_fraction = sum(e - s for s, e in windows) / seconds
    base = rate / (1 + (BURST_FACTOR - 1) * burst_fraction)
    peak = base * BURST_FACTOR
    candidates = _uniform_order(rng, peak, seconds, duration_ns)
    if not windows:
        keep = rng.random(candidates.size) < 1 / BURST_FACTOR
        return candidates[keep]
    starts = np.array([s for s, _ in windows]) * 1e9
    ends = np.array([e for _, e in windows]) * 1e9
    slot = np.searchsorted(starts, candidates, side="right") - 1
    in_burst = (slot >= 0) & (candidates < ends[np.clip(slot, 0, None)])
    keep_p = np.where(in_burst, 1.0, 1 / BURST_FACTOR)
    return candidates[rng.random(candidates.size) < keep_p]
