"""Pods required and recommended, their interval, the linear bound, and every warning."""

from __future__ import annotations

import math

import numpy as np
import pytest

from planner.capacity import linear_lower_bound, loo_compare, plan
from planner.usl import USLParams

FAST = {"resamples": 100, "seed": 0}


def codes(p) -> set[str]:
    return {c.code for c in p.caveats}


def test_the_guides_single_point_gives_only_a_lower_bound_of_6():
    # 3 pods → 5,200/s: σ and κ cannot be determined; linear scaling needs ceil(10000/1733.3).
    p = plan([3], [5200.0], 10_000, **FAST)
    assert p.primary is None
    assert p.linear_lower_bound == 6 == math.ceil(10_000 / (5200 / 3))
    assert "undetermined" in codes(p) and "few_points" in codes(p)
    assert "cannot be determined" in p.explanation
    assert "lower bound only" in p.explanation
    assert "= 6 pods" in p.explanation


@pytest.mark.parametrize(
    ("n", "x", "target", "bound"),
    [
        ([3], [5200.0], 10_000, 6),  # the guide's point
        ([3], [5200.0], 10_400, 6),  # exactly twice the measured rate: twice the pods
        # exactly the measured rate: 1 pod cannot be ruled out (σ = 1 makes X flat), so 1
        ([3], [5200.0], 5200, 1),
        ([2], [3000.0], 1000, 1),  # below what was measured: bound says nothing more
        ([1, 4], [1000.0, 3000.0], 9000, 12),  # the 4-pod point is the tighter
        ([1, 2, 4], [1000.0, 2000.0, 4000.0], 4000, 4),  # linear data: exactly linear
    ],
)
def test_linear_lower_bound(n, x, target, bound):
    assert linear_lower_bound(n, x, target) == bound


def test_the_lower_bound_never_exceeds_what_a_usl_needs():
    # For random USL systems, the bound from their own points (measured up to the peak, the
    # bound's premise) is ≤ the true need.
    rng = np.random.default_rng(0)
    for _ in range(300):
        law = USLParams(rng.uniform(0, 0.3), rng.uniform(0.0001, 0.01), rng.uniform(100, 5000))
        upto = law.n_best or 2
        pods = sorted(rng.choice(np.arange(1, upto + 1), size=min(3, upto), replace=False))
        target = rng.uniform(0.2, 1.0) * law.x_best
        need = law.pods_for_rate(target)
        bound = linear_lower_bound(pods, law.throughput(pods).tolist(), target)
        assert need is not None
        assert need is None or bound <= need


def test_cisco_plan(cisco):
    n, x = cisco
    p = plan(n.astype(int).tolist(), x.tolist(), 10_000, headroom=1.0, redundancy=2, **FAST)
    law = p.primary.fit.params
    req = p.primary.pods_required
    assert req.point == law.pods_for_rate(10_000) == 16
    assert req.ci_low <= req.point <= req.ci_high
    assert req.unreachable_fraction == 0.0
    # headroom 1.0: the recommendation is the required count plus the redundancy
    assert p.primary.pods_recommended == 16 + 2
    assert "few_points" not in codes(p) and "extrapolation" not in codes(p)
    loo = p.primary.loo
    assert loo.usl_rmse < loo.linear_rmse / 5  # the USL earns its keep on this data


def test_recommendation_applies_headroom_then_redundancy(cisco):
    n, x = cisco
    p = plan(n.astype(int).tolist(), x.tolist(), 6000, headroom=0.6, redundancy=1, **FAST)
    law = p.primary.fit.params
    at_headroom = p.primary.pods_at_headroom
    assert law.at(at_headroom) * 0.6 >= 6000 > law.at(at_headroom - 1) * 0.6
    assert p.primary.pods_recommended == at_headroom + 1


def test_target_beyond_the_peak_is_unreachable_by_how_much(cisco):
    n, x = cisco
    p = plan(n.astype(int).tolist(), x.tolist(), 13_000, **FAST)
    law = p.primary.fit.params
    assert p.primary.pods_required.point is None
    assert p.primary.pods_recommended is None
    assert p.primary.shortfall_rps == pytest.approx(13_000 - law.x_best)
    (msg,) = [c.message for c in p.caveats if c.code == "unreachable"]
    assert f"{13_000 - law.x_best:,.0f}/s" in msg  # says by how much, in traces/s...
    assert f"{100 * (13_000 - law.x_best) / 13_000:.1f}%" in msg  # ...and in percent


def test_reachable_but_not_with_headroom(cisco):
    n, x = cisco
    p = plan(n.astype(int).tolist(), x.tolist(), 10_000, headroom=0.7, **FAST)
    assert p.primary.pods_required.point == 16
    assert p.primary.pods_recommended is None  # 10,000/0.7 = 14,286 > the peak 12,342
    assert "headroom_unreachable" in codes(p)


def test_first_8_cisco_rows_extrapolated_to_32_warn(cisco):
    # The dataset's README: fitting N = 1..8 overstates X(32) by about a third.
    n, x = cisco
    p = plan(n[:8].astype(int).tolist(), x[:8].tolist(), float(x[31]), **FAST)
    law = p.primary.fit.params
    assert law.at(32) / x[31] - 1 > 0.25
    assert p.primary.pods_required.point > 16  # beyond 2x the largest measured count
    assert "extrapolation" in codes(p)


def test_few_points_and_no_interval_with_exactly_three():
    law = USLParams(0.05, 0.002, 1000.0)
    pods = [1, 2, 4]
    p = plan(pods, law.throughput(pods).tolist(), 3000, **FAST)
    assert p.primary.pods_required.unreachable_fraction is None
    assert {"few_points", "no_interval"} <= codes(p)


def test_linear_data_puts_both_coefficients_on_their_bounds():
    pods = [1, 2, 3, 4, 6, 8]
    p = plan(pods, [1000.0 * k for k in pods], 10_000, **FAST)
    assert set(p.primary.fit.on_bound) == {"sigma", "kappa"}
    assert "on_bound" in codes(p)
    assert p.primary.pods_required.point == 10


def test_superlinear_points_warn():
    pods = [1, 2, 3, 4, 6, 8]
    x = [1000.0, 2100.0, 2900.0, 3800.0, 5400.0, 6800.0]  # 2 pods: efficiency 1.05
    p = plan(pods, x, 5000, **FAST)
    (msg,) = [c.message for c in p.caveats if c.code == "superlinear"]
    assert "2 pods: 1.050" in msg


def test_noisy_flat_data_linear_baseline_no_worse():
    # Throughput that does not depend on pods at all: linear scaling is wrong, and the USL
    # wins; the converse (data the USL cannot beat linear on) warns linear_better.
    pods = [1, 2, 3, 4, 5, 6]
    x = [1000.0, 2010.0, 2990.0, 4005.0, 4990.0, 6010.0]
    loo = loo_compare(pods, x)
    assert loo.usl_rmse >= loo.linear_rmse
    assert "linear_better" in codes(plan(pods, x, 5000, **FAST))


def test_bootstrap_is_reproducible_and_seeded(synth_sweep):
    law = USLParams(0.04, 0.0015, 1800.0)
    pods = [1, 2, 3, 4, 6, 8]
    rng = np.random.default_rng(5)
    x = (law.throughput(pods) * (1 + 0.03 * rng.standard_normal(6))).tolist()
    a = plan(pods, x, 14_000, resamples=100, seed=1)
    b = plan(pods, x, 14_000, resamples=100, seed=1)
    c = plan(pods, x, 14_000, resamples=100, seed=2)
    assert np.array_equal(a.primary.boot_params, b.primary.boot_params)
    assert not np.array_equal(a.primary.boot_params, c.primary.boot_params)
    assert a.primary.pods_required == b.primary.pods_required


def test_an_uncertain_peak_reports_unreachable_resamples():
    # Noisy points well before the peak and a target near it: a reachable point estimate
    # with some resamples that cannot reach it must say so, and unbound the interval when
    # more than 2.5% cannot.
    law = USLParams(0.04, 0.0015, 1800.0)
    pods = [1, 2, 3, 4, 6, 8]
    seen = 0
    for seed in range(10):
        rng = np.random.default_rng(seed)
        x = (law.throughput(pods) * (1 + 0.03 * rng.standard_normal(6))).tolist()
        p = plan(pods, x, 0.9 * law.x_best, resamples=100, seed=0)
        req = p.primary.pods_required
        if req.point is None or not req.unreachable_fraction:
            continue
        seen += 1
        assert "unstable" in codes(p)
        assert (req.ci_high is None) == (req.unreachable_fraction > 0.025)
        assert "extrapolation" in codes(p)  # the peak is far beyond 2 x 8 pods
        if seen == 3:
            break
    assert seen == 3


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"headroom": 0.0}, "headroom"),
        ({"headroom": 1.5}, "headroom"),
        ({"redundancy": -1}, "redundancy"),
    ],
)
def test_rejects_bad_settings(kw, message):
    with pytest.raises(ValueError, match=message):
        plan([1, 2, 3], [1.0, 2.0, 3.0], 10, **kw)
