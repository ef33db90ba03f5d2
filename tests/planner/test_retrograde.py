"""Retrograde data: throughput that falls past a peak inside the sweep. The plan must take
pods from the rising side, never recommend a count past the peak, and call a target above
the measured peak unreachable."""

from __future__ import annotations

import math

import numpy as np
import pytest

from planner.capacity import plan

FAST = {"resamples": 100, "seed": 0}
# λ = 1000/s per pod, σ = 0.02, κ = 0.01: the peak is at N* = sqrt((1 − σ)/κ) = 9.9 pods
LAM, SIGMA, KAPPA = 1000.0, 0.02, 0.01


def _law(n: np.ndarray) -> np.ndarray:
    return LAM * n / (1 + SIGMA * (n - 1) + KAPPA * n * (n - 1))


def _sweep() -> tuple[list[int], list[float]]:
    n = np.arange(1, 21)  # well past the peak: the last ten points fall
    rng = np.random.default_rng(7)
    x = _law(n.astype(float)) * (1 + rng.normal(0, 0.01, n.size))
    return n.tolist(), x.tolist()


def test_the_peak_lies_inside_the_sweep_and_the_fit_finds_it() -> None:
    n, x = _sweep()
    assert max(x) > x[-1] * 1.2  # the data is retrograde
    p = plan(n, x, 1000.0, **FAST)
    law = p.primary.fit.params
    assert law.n_star == pytest.approx(math.sqrt((1 - SIGMA) / KAPPA), rel=0.1)
    assert law.sigma == pytest.approx(SIGMA, abs=0.02)
    assert law.kappa == pytest.approx(KAPPA, rel=0.25)


def test_pods_come_from_the_rising_side() -> None:
    # 4,000/s: by the exact law, the first N with X(N) >= 4,000 (the falling side reaches it
    # again only near N = 23, never the answer)
    n, x = _sweep()
    target = 4000.0
    exact = next(k for k in range(1, 100) if _law(np.array([float(k)]))[0] >= target)
    p = plan(n, x, target, headroom=1.0, redundancy=0, **FAST)
    assert abs(p.primary.pods_required.point - exact) <= 1
    assert p.primary.pods_required.point < 10


def test_a_target_above_the_peak_is_unreachable() -> None:
    n, x = _sweep()
    peak = float(_law(np.arange(1, 30, dtype=float)).max())
    p = plan(n, x, peak * 1.15, **FAST)
    assert p.primary.pods_required.point is None
    assert p.primary.pods_recommended is None
    assert "unreachable" in {c.code for c in p.caveats}


def test_the_cisco_rows_past_their_peak(cisco: tuple[np.ndarray, np.ndarray]) -> None:
    # the Cisco benchmark peaks near 27 and falls a little to 32: a plan for 90% of its
    # measured best takes pods before the peak
    n, x = cisco
    best = float(x.max())
    p = plan(n.astype(int).tolist(), x.tolist(), 0.9 * best, headroom=1.0, redundancy=0, **FAST)
    point = p.primary.pods_required.point
    assert point is not None and point <= int(n[int(np.argmax(x))])
    first_measured = int(n[np.argmax(x >= 0.9 * best)])
    assert abs(point - first_measured) <= 2
