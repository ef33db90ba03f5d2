"""Phases and recovery on hand-made runs, with every answer worked out by hand."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hdrh.histogram import HdrHistogram

from replay.phases import parse_phases, run_phases, stages_from_command
from replay.recovery import find_recovery
from replay.report import build_report
from replay.report_series import ReportError

from .report_files import Second, make_results, write


def _hdr(value_ms: float, p: float = 99) -> float:
    """What HdrHistogram (hdrh, not our code) reports for values all equal to value_ms."""
    h = HdrHistogram(1, 3_600_000_000, 3)
    h.record_value(round(value_ms * 1000))
    return float(h.get_value_at_percentile(p)) / 1000


def _spans(meta: dict[str, Any], duration: float) -> list[tuple[str, float, float]]:
    return [(p.name, p.start_s, p.end_s) for p in run_phases(meta, duration).phases]


def test_the_guides_spike_test_from_its_stages() -> None:
    # k6/spike-test.js: 1m to 10, 30s to 500, hold 2m, 30s down to 10, 2m at 10
    meta = {"command_line": "replay run --stage 1m:10 --stage 30s:500 --stage 2m:500 "
            "--stage 30s:10 --stage 2m:10 --out r.json"}  # fmt: skip
    run = run_phases(meta, 360.0)
    assert run.spike_shaped and run.source == "stages"
    assert _spans(meta, 360.0) == [
        ("baseline", 0, 60), ("ramp-up", 60, 90), ("spike", 90, 210), ("drop", 210, 240),
        ("recovery", 240, 360),
    ]  # fmt: skip


def test_a_soak_is_not_spike_shaped_and_keeps_its_stages() -> None:
    # k6/soak-test.js: no load before the ramp, so no baseline to recover to
    meta = {"command_line": "replay run --stage 5m:50 --stage 4h:50 --stage 5m:0"}
    assert _spans(meta, 4 * 3600 + 600) == [
        ("stage 1", 0, 300), ("stage 2", 300, 14700), ("stage 3", 14700, 15000),
    ]  # fmt: skip
    assert not run_phases(meta, 15000).spike_shaped


def test_a_second_peak_after_the_drop_is_not_a_spike_shape() -> None:
    meta = {"command_line": "replay run --rate=100 --stage=30s:100 --stage 10s:300 --stage 20s:300 "
            "--stage 10s:100 --stage 30s:100 --stage 10s:300"}  # fmt: skip
    run = run_phases(meta, 110)
    assert not run.spike_shaped
    assert [p.name for p in run.phases] == [f"stage {i}" for i in range(1, 7)]


def test_stages_read_from_the_command_line() -> None:
    assert stages_from_command("replay run --rate 1.5k --stage 90s:2k --stage 250ms:0") == (
        1500.0,
        [(90.0, 2000.0), (0.25, 0.0)],
    )
    assert stages_from_command("replay run --rate 100 --duration 1m") is None
    assert stages_from_command("replay run --stage 'unbalanced") is None


def test_scenario_stages_add_up_into_one_curve() -> None:
    # A: 10/s for 100 s. B from 30 s: 0 -> 100 over 10 s, hold 20 s, down to 0 over 10 s.
    # Sum: 10 until 30, up to 110 at 40, 110 until 60, down to 10 at 70, 10 until 100.
    meta = {
        "command_line": "ignored when scenarios give stages",
        "scenarios": [
            {"name": "a", "rate": 10, "stages": [{"duration_s": 100, "target_rps": 10}]},
            {"name": "b", "rate": 0, "start_s": 30, "stages": [
                {"duration_s": 10, "target_rps": 100}, {"duration_s": 20, "target_rps": 100},
                {"duration_s": 10, "target_rps": 0}]},
        ],
    }  # fmt: skip
    run = run_phases(meta, 100)
    assert run.source == "scenario stages" and run.spike_shaped
    assert [(p.name, p.start_s, p.end_s, p.rate_from, p.rate_to) for p in run.phases] == [
        ("baseline", 0, 30, 10, 10), ("ramp-up", 30, 40, 10, 110), ("spike", 40, 60, 110, 110),
        ("drop", 60, 70, 110, 10), ("recovery", 70, 100, 10, 10),
    ]  # fmt: skip


def test_merged_runs_with_different_stages_get_one_phase() -> None:
    same = {"command_line": "replay run --stage 10s:5 ; replay run --stage 10s:5"}
    assert _spans(same, 10) == [("stage 1", 0, 10)]
    differ = run_phases({"command_line": "replay run --stage 10s:5 ; replay run --stage 9s:5"}, 10)
    assert [p.name for p in differ.phases] == ["run"]
    assert differ.notes


def test_phases_given_by_hand() -> None:
    assert [(p.name, p.start_s, p.end_s) for p in parse_phases("spike=90s-3m30s, baseline=0-1m")
            ] == [("baseline", 0, 60), ("spike", 90, 210)]  # fmt: skip
    cut = run_phases({}, 100, "baseline=0-50,spike=50-120")
    assert cut.spike_shaped and cut.named("spike") is not None
    assert cut.named("spike").end_s == 100  # type: ignore[union-attr]
    assert cut.notes == ("phase 'spike' cut at the run's end (100 s)",)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("spike", "is not a phase"),
        ("spike=60", "START-END"),
        ("spike=90-60", "must end after it starts"),
        ("a=0-1,a=1-2", "named twice"),
        ("a=0-soon", "not a duration"),
        ("a=0-1,,b=1-2", "an empty phase"),
        ("late=200-300", "after the run's end"),
    ],
)
def test_bad_phases_are_refused(text: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        run_phases({}, 100, text)


# -- recovery -------------------------------------------------------------------------
SPIKE = (
    "replay run --rate 100 --stage 10s:100 --stage 1s:300 --stage 5s:300 --stage 1s:100 "
    "--stage 13s:100"
)  # baseline [0,10), ramp-up [10,11), spike [11,16), drop [16,17), recovery [17,30)


def _spike_run(good_from: int, error_second: int | None = None) -> list[Second]:
    seconds = [Second(100, 20.0) for _ in range(10)]  # baseline: every request 20 ms
    seconds += [Second(300, 200.0) for _ in range(6)]  # 10..15: the spike, 200 ms
    seconds += [Second(100, 150.0) for _ in range(16, 21)]  # still draining
    seconds += [Second(100, 22.0), Second(100, 40.0)]  # 21 good, 22 bad again
    seconds += [Second(100, 24.0) for _ in range(23, 30)]  # good from 23
    if error_second is not None:
        seconds[error_second] = Second(100, 24.0, errors={"503": 2})
    assert len(seconds) == 30 and good_from == 23
    return seconds


def test_recovery_worked_out_by_hand(tmp_path: Path) -> None:
    path = write(tmp_path / "r.json", make_results(_spike_run(23), command_line=SPIKE))
    doc = build_report([str(path)]).document
    # baseline p99: 20 ms as HdrHistogram holds it; limit max(1.1 x, + 5 ms) = + 5 ms
    base = _hdr(20.0)
    rec = doc["recovery"]
    assert rec["baseline_p99_ms"] == base
    assert rec["p99_limit_ms"] == pytest.approx(base + 5)
    # 21 is good (22 ms) but 22 is not (40 ms); 23..27 are five good seconds: t = 23, F = 16
    assert rec["recovered"] is True
    assert rec["recovered_at_s"] == 23
    assert rec["recovery_s"] == 7.0
    assert rec["fall_s"] == 16
    assert "5 consecutive seconds" in rec["definition"]
    phases = {p["name"]: p for p in doc["phases"]}
    assert list(phases) == ["baseline", "ramp-up", "spike", "drop", "recovery"]
    assert phases["spike"]["seconds"] == [11, 16]
    assert phases["spike"]["offered_rps"] == 300 and phases["spike"]["achieved_rps"] == 300
    assert phases["spike"]["p99_ms"] == _hdr(200.0) and phases["spike"]["p50_ms"] == _hdr(200.0)
    assert phases["baseline"]["p50_ms"] == _hdr(20.0, 50)
    assert phases["baseline"]["error_rate"] == 0.0
    # recovery [17, 30): 4 s at 150 ms, one 22, one 40, seven 24: p99 of 1,300 values is the
    # 1,287th: 150 ms; p50 the 650th: 24 ms
    assert phases["recovery"]["p99_ms"] == _hdr(150.0)
    assert phases["recovery"]["p50_ms"] == _hdr(24.0, 50)


def test_an_error_burst_keeps_the_run_unrecovered(tmp_path: Path) -> None:
    # 2% errors in second 25 (limit 0% + 1 point): 23, 24 then 26..29 are only four in a row
    path = write(tmp_path / "r.json", make_results(_spike_run(23, 25), command_line=SPIKE))
    rec = build_report([str(path)]).document["recovery"]
    assert rec["recovered"] is False
    assert rec["recovery_s"] is None
    assert "before the run ended" in rec["note"]


def test_recovery_needs_a_spike_shaped_run(tmp_path: Path) -> None:
    path = write(tmp_path / "r.json", make_results([Second(10)] * 20))
    doc = build_report([str(path)]).document
    assert doc["recovery"]["recovered"] is None
    assert [p["name"] for p in doc["phases"]] == ["run"]
    # the same run with phases named by hand: recovered at once (fall at 15, good from 15)
    doc = build_report([str(path)], "baseline=0-10,spike=10-15").document
    assert doc["recovery"]["recovered"] is True
    assert doc["recovery"]["recovery_s"] == 0.0


def test_find_recovery_counts_from_a_fractional_fall() -> None:
    p99 = np.array([10.0] * 5 + [99.0] * 3 + [10.0] * 6)
    err = np.zeros(p99.size)
    rec = find_recovery(p99, err, 5.4, 10.0, 0.0)
    # the first whole second at or after 5.4 is 6; good from 8 -> 8 - 5.4
    assert rec.recovered and rec.recovery_s == pytest.approx(2.6)
    # a second with nothing completed is not good
    p99[9] = np.nan
    assert find_recovery(p99, err, 5.4, 10.0, 0.0).recovered is False


def test_a_bad_phases_option_is_a_report_error(tmp_path: Path) -> None:
    path = write(tmp_path / "r.json", make_results([Second(10)] * 5))
    with pytest.raises(ReportError, match="--phases: 'x=9-1'"):
        build_report([str(path)], "x=9-1")


def test_a_ramping_vus_scenario_gives_the_spike_phases() -> None:
    # what `replay run --scenario spike` records: VU stages (target_vus), the guide's spike
    # test shape, 1 -> 10 over 60 s, to 500 over 30 s, hold 120 s, to 10 over 30 s, 120 s
    stages = [(60, 10), (30, 500), (120, 500), (30, 10), (120, 10)]
    meta = {
        "scenarios": [
            {
                "name": "spike",
                "executor": "ramping-vus",
                "start_s": 0.0,
                "start_vus": 1,
                "stages": [{"duration_s": d, "target_vus": v} for d, v in stages],
            }
        ]
    }
    phases = run_phases(meta, 360.0)
    assert [(p.name, p.start_s, p.end_s) for p in phases.phases] == [
        ("baseline", 0.0, 60.0),
        ("ramp-up", 60.0, 90.0),
        ("spike", 90.0, 210.0),
        ("drop", 210.0, 240.0),
        ("recovery", 240.0, 360.0),
    ]
