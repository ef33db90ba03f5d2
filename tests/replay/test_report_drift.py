"""Drift: the slope and its autocorrelation-respecting interval, on simulated series and on
hand-made soak-shaped runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from replay.drift import trend, window_s
from replay.report import build_report

from .report_files import Second, make_results, write


def test_window_length_follows_the_run_length() -> None:
    assert window_s(20 * 60) == 10
    assert window_s(20 * 60 + 1) == 60


def test_an_exact_line_is_found_exactly() -> None:
    x = np.arange(12) / 6.0
    slope = trend(x, 3.0 + 7.5 * x)
    assert slope is not None
    assert slope.estimate == pytest.approx(7.5)
    assert slope.intercept == pytest.approx(3.0)
    assert slope.ci_low <= 7.5 <= slope.ci_high
    assert slope.ci_high - slope.ci_low < 1e-9


def test_too_few_points_give_no_slope() -> None:
    assert trend(np.array([0.0, 1.0]), np.array([1.0, 2.0])) is None
    assert trend(np.array([1.0, 1.0, 1.0]), np.array([1.0, 2.0, 3.0])) is None


def _naive_covers(x: np.ndarray, y: np.ndarray, truth: float) -> bool:
    """Ordinary least squares' interval, independently: it ignores autocorrelation."""
    fit = stats.linregress(x, y)
    t = stats.t.ppf(0.975, x.size - 2)
    return bool(fit.slope - t * fit.stderr <= truth <= fit.slope + t * fit.stderr)


def test_the_interval_holds_its_level_under_autocorrelated_noise() -> None:
    # 240 one-minute windows (a 4-hour soak), AR(1) noise with phi = 0.5: least squares'
    # own interval covers the true slope far less often than 95%; ours stays near it
    rng = np.random.default_rng(7)
    n, phi, truth, reps = 240, 0.5, 2.0, 300
    x = (np.arange(n) + 0.5) / 60.0
    ours = naive = 0
    for _ in range(reps):
        eps = rng.normal(size=n + 50)
        u = np.zeros(n + 50)
        for i in range(1, n + 50):
            u[i] = phi * u[i - 1] + eps[i]
        y = 40.0 + truth * x + u[50:]
        slope = trend(x, y)
        assert slope is not None
        ours += slope.ci_low <= truth <= slope.ci_high
        naive += _naive_covers(x, y, truth)
    # binomial sd at 300 reps is about 0.013 near 0.93
    assert 0.86 <= ours / reps <= 0.99
    assert naive / reps <= ours / reps - 0.08


def _soak(tmp_path: Path, slope_ms_per_s: float, seconds: int = 120) -> Path:
    """A 10 s ramp, a hold of ``seconds`` - 20 s, a 10 s ramp down; 50 requests a second
    whose latency grows by ``slope_ms_per_s`` each second, with seeded noise."""
    rng = np.random.default_rng(3)
    rows = []
    for t in range(seconds):
        spread = t + rng.uniform(0, 1, 50)  # completion moments within the second
        values = 50.0 + slope_ms_per_s * spread + rng.normal(0, 3.0, 50)
        rows.append(Second(50, latencies_ms=np.maximum(values, 1.0)))
    hold = seconds - 20
    cmd = f"replay run --stage 10s:50 --stage {hold}s:50 --stage 10s:1"
    return write(tmp_path / "soak.json", make_results(rows, command_line=cmd))


def test_the_p50_slope_of_a_linearly_drifting_run(tmp_path: Path) -> None:
    truth = 0.5 * 3600  # 0.5 ms a second is 1,800 ms an hour
    doc = build_report([str(_soak(tmp_path, 0.5))]).document
    d = doc["drift"]
    # measured over the hold, stage 2 = [10, 110): ten windows of 10 s
    assert d["span"] == "stage 2" and d["span_s"] == [10, 110]
    assert d["window_s"] == 10 and d["windows"] == 10
    p50 = d["p50_ms_per_hour"]
    assert abs(p50["estimate"] - truth) <= 0.15 * truth
    assert p50["ci_low"] <= truth <= p50["ci_high"]
    # +50 ms over the span on a level of about 55 ms: far more than 10%, so warned
    assert any(w.startswith("p50 rises by") for w in d["warnings"])
    verdict = d["verdict"]
    assert verdict["status"] == "met, drifting"
    assert "soak threshold < 1,000 ms" in verdict["text"]
    assert "this span is 2 min" in verdict["text"]


def test_a_flat_run_draws_no_warning(tmp_path: Path) -> None:
    d = build_report([str(_soak(tmp_path, 0.0))]).document["drift"]
    assert d["warnings"] == []
    assert d["verdict"]["status"] == "met"
    p50 = d["p50_ms_per_hour"]
    assert p50["ci_low"] <= 0 <= p50["ci_high"]


def test_a_run_over_the_soak_thresholds_misses(tmp_path: Path) -> None:
    rows = [Second(100, 1200.0, errors={"500": 1}) for _ in range(40)]
    doc = build_report([str(write(tmp_path / "s.json", make_results(rows)))]).document
    assert doc["drift"]["span"] == "whole run" and doc["drift"]["windows"] == 4
    assert doc["drift"]["verdict"]["status"] == "missed"


def test_drift_needs_three_windows(tmp_path: Path) -> None:
    doc = build_report([str(write(tmp_path / "s.json", make_results([Second(5)] * 25)))]).document
    assert doc["drift"]["p50_ms_per_hour"] is None
    assert doc["drift"]["note"] == "not measured: fewer than 3 windows of 10 s in the run"
