"""Threshold grammar, judging over the run and over windows, abort checks, exit status."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from capture.corpus import ENDPOINTS
from replay.aggregate import RunAggregate
from replay.cli_types import THRESHOLD
from replay.recorder import ERROR_KINDS, IntervalRecorder
from replay.thresholds import (
    AGGREGATIONS,
    EXIT_THRESHOLD_FAILED,
    Threshold,
    decidable_early,
    evaluate,
    evaluate_interval,
    exit_status,
    first_failure,
    parse_threshold,
)

MS = 1_000_000  # ns
T = parse_threshold


# -- grammar ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # the guide's ingestion threshold
        ("http_req_duration: p(99)<500", Threshold("http_req_duration", "p", "<", 500.0, 99.0)),
        # a tag filter and a window
        (
            "http_req_duration{endpoint:ingest}: p(99)<500 [window=10s]",
            Threshold("http_req_duration", "p", "<", 500.0, 99.0, "ingest", None, 10),
        ),
        # failure rate as a fraction, or a percentage
        ("http_req_failed: rate<0.01", Threshold("http_req_failed", "rate", "<", 0.01)),
        ("http_req_failed: rate<1%", Threshold("http_req_failed", "rate", "<", 0.01)),
        # duration units: seconds and microseconds become ms
        ("http_req_duration: p(99)<2s", Threshold("http_req_duration", "p", "<", 2000.0, 99.0)),
        ("send_lag: max<=250us", Threshold("send_lag", "max", "<=", 0.25)),
        # fractional percentile, spaces anywhere between tokens
        (
            "  http_req_duration_uncorrected { status : 5xx } :  p( 99.9 ) >= 3  ",
            Threshold("http_req_duration_uncorrected", "p", ">=", 3.0, 99.9, None, "5xx"),
        ),
        # both tags, an error kind as status, a count
        (
            "http_reqs{endpoint:get,status:timeout}: count==0",
            Threshold("http_reqs", "count", "==", 0.0, None, "get", "timeout"),
        ),
        # minutes in a window; med and avg
        (
            "http_req_duration: med!=7 [window=2m]",
            Threshold("http_req_duration", "med", "!=", 7.0, window_s=120),
        ),
        ("dropped_requests: rate<0.001", Threshold("dropped_requests", "rate", "<", 0.001)),
        ("http_reqs: rate>100", Threshold("http_reqs", "rate", ">", 100.0)),
        ("http_req_duration: avg<1e2", Threshold("http_req_duration", "avg", "<", 100.0)),
    ],
)
def test_valid_thresholds(text: str, expected: Threshold) -> None:
    parsed = T(text)
    assert parsed == expected
    assert T(str(parsed)) == parsed  # the canonical text parses back equal


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("", "empty"),
        ("http_req_durtion: p(99)<500", "'http_req_durtion'"),  # a typo in the metric
        ("http_req_duration{endpoint:ingets}: p(99)<5", "'ingets'"),  # unknown endpoint
        ("http_req_duration{group:ingest}: p(99)<5", "'group'"),  # a k6 tag we do not keep
        ("http_req_duration{endpoint}: p(99)<5", "'endpoint'"),  # no value
        ("http_req_duration{endpoint:get,endpoint:list}: p(99)<5", "twice"),
        ("http_req_duration{status:600}: p(99)<5", "'600'"),  # not a status
        ("dropped_requests{status:503}: count<1", "no status"),
        ("http_req_duration{endpoint:ingest: p(99)<5", "unclosed"),
        ("http_req_duration p(99)<500", "expected ':'"),
        ("http_req_duration: p99<500", "'p99'"),  # k6 writes p(99)
        ("http_req_duration: p(abc)<500", "p(abc)"),
        ("http_req_duration: p(101)<500", "p(101)"),
        ("http_req_duration: rate<0.1", "'rate'"),  # not an aggregation of durations
        ("http_req_failed: p(99)<1", "'p(99)'"),
        ("http_req_duration: p(99)", "nothing"),  # no comparison
        ("http_req_duration: p(99)=>5", "'=>5'"),
        ("http_req_duration: p(99)<fast", "'fast'"),
        ("http_req_duration: p(99)<5kg", "'kg'"),
        ("http_reqs: count<5%", "'%'"),
        ("http_req_failed: rate<0.01 [window=1.5s]", "'1.5s'"),
        ("http_req_failed: rate<0.01 [windw=10s]", "[windw=10s]"),
        ("http_req_failed: rate<0.01 [window=soon]", "'soon'"),
        ("http_req_failed: rate<0.01 [window=10s", "[window=10s"),
    ],
)
def test_bad_thresholds_name_the_bad_part(text: str, names: str) -> None:
    with pytest.raises(ValueError) as info:
        T(text)
    assert names in str(info.value)
    assert "\n" not in str(info.value)


@st.composite
def thresholds(draw: st.DrawFn) -> Threshold:
    metric = draw(st.sampled_from(sorted(AGGREGATIONS)))
    aggregation = draw(st.sampled_from(AGGREGATIONS[metric]))
    percentile = None
    if aggregation == "p":
        percentile = draw(st.floats(0, 100, allow_nan=False).map(lambda p: round(p, 3)))
    status = None
    if metric != "dropped_requests":
        codes = st.integers(100, 599).map(str)
        classes = st.sampled_from(["1xx", "2xx", "3xx", "4xx", "5xx"])
        status = draw(st.none() | codes | classes | st.sampled_from(ERROR_KINDS))
    return Threshold(
        metric=metric,
        aggregation=aggregation,
        op=draw(st.sampled_from(["<", "<=", ">", ">=", "==", "!="])),
        value=draw(st.floats(0, 1e9, allow_nan=False) | st.integers(0, 10**6).map(float)),
        percentile=percentile,
        endpoint=draw(st.none() | st.sampled_from(ENDPOINTS)),
        status=status,
        window_s=draw(st.none() | st.integers(1, 7200)),
    )


@settings(deadline=None)
@given(thresholds())
def test_canonical_text_round_trips(t: Threshold) -> None:
    assert T(str(t)) == t


@settings(max_examples=60, deadline=None)
@given(thresholds(), st.text(st.characters(categories=["Ll", "Nd"]), min_size=1, max_size=8))
def test_a_wrong_word_anywhere_is_named(t: Threshold, junk: str) -> None:
    text = str(t)
    # Each damage puts `bad` where a word belongs; the error must quote it.
    metric_typo = "x" + junk + "_metric"
    damaged = [
        (text.replace(t.metric, metric_typo, 1), metric_typo),
        (text.replace(t.aggregation_name, "q" + junk, 1), "q" + junk),
    ]
    if t.endpoint:
        damaged.append((text.replace(f"endpoint:{t.endpoint}", f"endpoint:z{junk}", 1), "z" + junk))
    for bad_text, bad in damaged:
        with pytest.raises(ValueError) as info:
            T(bad_text)
        assert repr(bad) in str(info.value) or bad in str(info.value)


# -- judging ---------------------------------------------------------------------------------
def run_of(
    seconds: int,
    slow_at: set[int],
    n: int = 100,
    errors_at: frozenset[int] = frozenset(),
    n_errors: int = 5,
) -> RunAggregate:
    """n requests a second: 10 ms each, 900 ms in the seconds of ``slow_at``; ``n_errors``
    of the n are 503s in the seconds of ``errors_at``."""
    agg = RunAggregate()
    rec = IntervalRecorder(0)
    for k in range(seconds):
        rec.offered(n)
        for i in range(n):
            latency = 900 * MS if k in slow_at else 10 * MS
            status = "503" if k in errors_at and i < n_errors else "200"
            rec.record("ingest" if i % 2 else "get", status, 0, 0, latency)
        agg.add(rec.flush(k, 0))
    return agg


def test_whole_run_verdict_and_value() -> None:
    agg = run_of(20, slow_at={19})
    (verdict,) = evaluate([T("http_req_duration: p(99)<500")], agg)
    # 100 slow of 2,000: p(99) is 900 ms and the whole-run threshold fails.
    assert not verdict.ok and verdict.value == pytest.approx(900.0, rel=1e-3)
    (verdict,) = evaluate([T("http_req_duration: p(90)<500")], agg)
    assert verdict.ok and verdict.value == pytest.approx(10.0, rel=1e-3)


def test_a_failure_in_the_last_seconds_is_not_averaged_away_by_windows() -> None:
    # 10 % errors in the last 2 of 60 seconds: 0.33 % over the run, 2 % in the last window.
    agg = run_of(60, slow_at=set(), errors_at=frozenset({58, 59}), n_errors=10)
    whole, windowed = evaluate(
        [T("http_req_failed: rate<0.01"), T("http_req_failed: rate<0.01 [window=10s]")], agg
    )
    assert whole.ok and whole.value == pytest.approx(20 / 6000)
    assert not windowed.ok
    assert windowed.value == pytest.approx(0.02)  # 20 errors in 1,000 requests...
    assert windowed.window == (50, 60)  # ...in the window holding both bad seconds
    assert windowed.windows == 51  # [0,10) .. [50,60)
    assert windowed.failed_windows == 2  # [49,59) has 1 %: not below 0.01 either
    assert windowed.first_failed_window == (49, 59)


def test_windowed_verdict_names_worst_and_first_failed_window() -> None:
    agg = run_of(20, slow_at={15})
    (v,) = evaluate([T("http_req_duration: p(99)<500 [window=5s]")], agg)
    assert not v.ok
    assert v.windows == 16  # [0,5) .. [15,20)
    assert v.failed_windows == 5  # the windows that hold second 15: starts 11..15
    assert v.first_failed_window == (11, 16)
    assert v.window is not None and v.window[0] <= 15 < v.window[1]
    assert v.value == pytest.approx(900.0, rel=1e-3)


def test_a_run_shorter_than_its_window_is_judged_whole_and_says_so() -> None:
    (v,) = evaluate([T("http_req_duration: p(99)<500 [window=1m]")], run_of(5, slow_at=set()))
    assert v.ok and v.window is None and "shorter" in v.note


def test_no_data_passes_visibly_but_a_count_is_zero() -> None:
    agg = run_of(3, slow_at=set())
    no_data, count = evaluate(
        [
            T("http_req_duration{endpoint:graphql}: p(99)<5"),
            T("http_reqs{endpoint:graphql}: count>0"),
        ],
        agg,
    )
    assert no_data.ok and no_data.value is None and no_data.note == "no data"
    assert not count.ok and count.value == 0.0


def test_rates_and_counts() -> None:
    agg = RunAggregate()
    rec = IntervalRecorder(0)
    rec.offered(10)
    for status in ("200",) * 6 + ("404", "timeout"):
        rec.record("list", status, 0, 0, MS)
    rec.drop("list", 0)
    rec.drop("list", 0)
    agg.add(rec.flush(0, 0))
    agg.set_duration(2.0)
    verdicts = evaluate(
        [
            T("http_req_failed: rate<0.3"),  # 2 of 8 sent
            T("http_req_failed{status:timeout}: count==1"),
            T("http_reqs: rate==4"),  # 8 in 2 s
            T("dropped_requests: rate==0.2"),  # 2 of 10 offered
            T("dropped_requests{endpoint:list}: rate==0.2"),  # 2 of 8 sent + 2 dropped
            T("http_req_duration: count==8"),
        ],
        agg,
    )
    assert [v.value for v in verdicts] == [0.25, 1.0, 4.0, 0.2, 0.2, 8.0]
    assert [v.ok for v in verdicts] == [True, True, True, True, True, True]


@pytest.mark.parametrize(
    ("text", "early"),
    [
        ("http_reqs: count<100", True),  # counts only grow: a failure now is final
        ("http_reqs: count>100", False),  # may still get there
        ("http_req_duration: max<500", True),
        ("http_req_duration: max>5", False),
        ("http_req_duration: min>1", True),  # min only falls
        ("http_req_duration: min<1", False),
        ("http_req_duration: p(99)<500", True),  # judged on the data so far, as k6
        ("http_req_failed: rate<0.01", True),
        ("http_reqs: count==100", False),
    ],
)
def test_which_whole_run_thresholds_abort_early(text: str, early: bool) -> None:
    assert decidable_early(T(text)) is early


def test_abort_check_judges_the_window_that_just_ended() -> None:
    agg = run_of(12, slow_at={10})
    ths = [T("http_req_duration: p(99)<500 [window=3s]"), T("http_reqs: count>100000")]
    assert first_failure(ths, agg, k=1) is None  # no full window yet; count>N waits
    assert first_failure(ths, agg, k=9) is None
    failed = first_failure(ths, agg, k=10)
    assert failed is not None and failed.window == (8, 11)
    assert "p(99)<500" in str(failed) and "8s-11s" in str(failed)
    assert [v.ok for v in evaluate_interval(ths, agg, 11)] == [False]
    assert first_failure(ths, agg) is not None  # by default: the newest complete interval


def test_exit_status_is_99_when_any_threshold_fails() -> None:
    agg = run_of(2, slow_at=set())
    held = evaluate([T("http_req_duration: p(99)<500")], agg)
    failed = evaluate([T("http_req_duration: p(99)<500"), T("http_req_duration: max<1")], agg)
    assert EXIT_THRESHOLD_FAILED == 99
    assert exit_status(held) == 0 and exit_status(failed) == 99
    assert failed[1].to_json()["ok"] is False and failed[1].to_json()["threshold"] == (
        "http_req_duration: max<1"
    )


def test_click_type_parses_once_and_fails_in_one_line() -> None:
    @click.command()
    @click.option("--threshold", type=THRESHOLD, multiple=True)
    def cmd(threshold: tuple[Threshold, ...]) -> None:
        click.echo(" | ".join(str(t) for t in threshold))

    ok = CliRunner().invoke(cmd, ["--threshold", "http_req_failed: rate<1%"])
    assert ok.exit_code == 0 and ok.output.strip() == "http_req_failed: rate<0.01"
    bad = CliRunner().invoke(cmd, ["--threshold", "http_req_failed: rate<lots"])
    assert bad.exit_code == 2
    assert "Invalid value for '--threshold'" in bad.output and "'lots'" in bad.output
