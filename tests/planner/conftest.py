"""Shared fixtures: the Cisco benchmark, and sweep files built from the USL with noise."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest

from planner.sweep_format import PodPoint, Slo, Step, Sweep, write_sweep
from planner.usl import usl_throughput

DATA = Path(__file__).parent / "data"

# The book's values (Schwartz, "Practical Scalability Analysis with the USL"): external truth.
BOOK_SIGMA = 0.02671591
BOOK_KAPPA = 7.690945e-4
BOOK_LAMBDA = 995.6486


@pytest.fixture
def book() -> tuple[float, float, float]:
    """(σ, κ, λ) as the book prints them."""
    return BOOK_SIGMA, BOOK_KAPPA, BOOK_LAMBDA


@pytest.fixture
def synth_sweep() -> Callable[..., Sweep]:
    return synthetic_sweep


@pytest.fixture
def cisco_csv() -> Path:
    return DATA / "usl-cisco.csv"


@pytest.fixture
def cisco() -> tuple[np.ndarray, np.ndarray]:
    data = np.loadtxt(DATA / "usl-cisco.csv", delimiter=",", skiprows=1)
    return data[:, 0], data[:, 1]


def ladder_steps(capacity: float, ceiling: float, slo: Slo) -> list[Step]:
    """A ladder around ``capacity``: steps at or below it pass the SLO, those above fail.

    Below capacity every request succeeds and p99 climbs towards the SLO; above it achieved
    throughput is capped at ``ceiling`` (the pod count's x_max) and p99 is over the limit.
    """
    steps = []
    for factor in (0.5, 0.75, 0.9, 1.0, 1.04, 1.1, 1.25):
        offered = capacity * factor
        passing = factor <= 1.0
        achieved = offered if passing else min(offered, ceiling)
        p99 = slo.p99_ms * (0.3 + 0.6 * factor) if passing else slo.p99_ms * (1.5 + factor)
        requests = round(offered * 30)
        steps.append(
            Step(
                offered_rps=offered,
                achieved_rps=achieved,
                p50_ms=p99 / 6,
                p95_ms=p99 / 2,
                p99_ms=p99,
                errors=0 if passing else requests // 50,
                dropped=0,
                requests=requests,
                duration_s=30.0,
            )
        )
    return steps


def synthetic_sweep(
    pods: Sequence[int],
    sigma: float,
    kappa: float,
    lam: float,
    *,
    noise: float = 0.0,
    seed: int = 0,
    slo: Slo | None = None,
) -> Sweep:
    """A sweep whose x_slo follows the USL (times 1 + noise·ε) and x_max sits 8% above it."""
    slo = slo or Slo()
    rng = np.random.default_rng(seed)
    sweep = Sweep(
        target="http://127.0.0.1:8080",
        slo=slo,
        started="2025-01-01T00:00:00+00:00",
        finished="2025-01-01T00:14:00+00:00",
        version="test",
        scale_cmd="curl -X POST http://127.0.0.1:8080/admin/pods?n={pods}",
    )
    for n in pods:
        capacity = float(usl_throughput(n, sigma, kappa, lam)) * (1 + noise * rng.standard_normal())
        steps = ladder_steps(capacity, capacity * 1.08, slo)
        sweep = sweep.with_point(PodPoint.from_steps(n, steps, slo))
    return sweep


SweepFactory = Callable[..., Path]


@pytest.fixture
def make_sweep(tmp_path: Path) -> SweepFactory:
    """Write a synthetic sweep to tmp_path and return its path."""
    counter = iter(range(1000))

    def make(pods: Sequence[int], sigma: float, kappa: float, lam: float, **kw: object) -> Path:
        path = tmp_path / f"sweep-{next(counter)}.json"
        write_sweep(synthetic_sweep(pods, sigma, kappa, lam, **kw), path)  # type: ignore[arg-type]
        return path

    return make
