"""The end-of-run summary and the progress line (replay/summary.py)."""

from __future__ import annotations

import pytest

from replay.aggregate import ProgressSnapshot, RunAggregate
from replay.recorder import IntervalRecorder
from replay.results import RunMeta, build_results
from replay.summary import format_ms, format_value, render_progress, render_summary
from replay.thresholds import evaluate, parse_threshold

MS = 1_000_000  # ns
META = RunMeta(
    corpus="mixed",
    target="https://staging.example",
    model="timeline",
    scale=5.0,
    workers=4,
    started="2026-03-01T10:00:00Z",
    ended="2026-03-01T10:00:20Z",
    host_cores=4,
)


def run(drops: int = 0, seconds: int = 20) -> RunAggregate:
    agg = RunAggregate()
    rec = IntervalRecorder(0)
    for k in range(seconds):
        rec.offered(40 + drops)
        for i in range(20):
            rec.record("ingest", "200", 0, 0, (80 if k == seconds - 1 else 12) * MS)
            rec.record("list", "200" if i else "503", 0, 0, 300 * MS)
        for _ in range(drops):
            rec.drop("ingest", 0)
        agg.add(rec.flush(k, inflight=7))
    return agg


def summary(agg: RunAggregate, thresholds: list[str]) -> str:
    verdicts = evaluate([parse_threshold(t) for t in thresholds], agg)
    return render_summary(build_results(agg, META, verdicts))


def test_summary_shows_thresholds_trends_endpoints_and_errors() -> None:
    text = summary(
        run(),
        [
            "http_req_duration{endpoint:ingest}: p(99)<100",
            "http_req_duration{endpoint:ingest}: p(99)<50 [window=5s]",
            "http_req_failed: rate<0.01",
        ],
    )
    assert "THRESHOLDS (2 of 3 failed)" in text
    assert "✓ http_req_duration{endpoint:ingest}: p(99)<100" in text
    assert "✗ http_req_duration{endpoint:ingest}: p(99)<50 [window=5s]" in text
    assert "worst window 15s-20s, 1 of 16 windows failed" in text  # only the last second
    assert "✗ http_req_failed: rate<0.01" in text and "rate=2.50%" in text
    row = next(line for line in text.splitlines() if line.lstrip().startswith("http_req_duration."))
    for stat in ("avg=", "min=", "med=", "max=", "p(90)=", "p(95)=", "p(99)=", "p(99.9)="):
        assert stat in row
    assert "{ endpoint:ingest }" in text and "{ endpoint:list }" in text
    assert "http_req_duration_uncorrected" in text and "send_lag" in text
    assert "20 out of 800" in text  # http_req_failed
    assert "503=20" in text  # errors by kind
    assert "not the target, was the limit" not in text
    assert "mixed" in text and "scale 5x" in text and "https://staging.example" in text


def test_summary_says_the_generator_was_the_limit_when_it_dropped() -> None:
    text = summary(run(drops=3), [])
    assert "The load generator, not the target, was the limit" in text
    assert "60 requests dropped" in text
    assert "THRESHOLDS" not in text  # none given, none shown


def test_summary_columns_line_up() -> None:
    text = summary(run(), [])
    colons = {line.index(": ") for line in text.splitlines() if "....: " in line}
    assert len(colons) == 1


@pytest.mark.parametrize(
    ("ms", "shown"),
    [(None, "-"), (0.85, "850µs"), (1.234, "1.23ms"), (12.34, "12.3ms"), (312.4, "312ms"),
     (1234.0, "1.23s"), (125_000.0, "2m05s")],
)  # fmt: skip
def test_format_ms(ms: float | None, shown: str) -> None:
    assert format_ms(ms) == shown


@pytest.mark.parametrize(
    ("threshold", "value", "shown"),
    [
        ("http_req_duration: p(99)<500", 85.3, "p(99)=85.3ms"),
        ("http_req_failed: rate<0.01", 0.0123, "rate=1.23%"),
        ("http_reqs: rate>100", 250.0, "rate=250.0/s"),
        ("dropped_requests: count<1", 3.0, "count=3"),
        ("http_req_duration: p(99)<500", None, "no data"),
    ],
)
def test_verdict_values_in_their_units(threshold: str, value: float | None, shown: str) -> None:
    assert format_value(threshold, value) == shown


def snapshot() -> ProgressSnapshot:
    agg = run(drops=1, seconds=12)
    return agg.latest()


def test_progress_line_on_a_terminal() -> None:
    line = render_progress(snapshot(), 50.0, tty=True)
    assert "\r" not in line and "\n" not in line
    assert line.startswith("[====" + " " * 16 + "]")  # 12 s of 50: 4 of 20
    # The latest second: 20 ingests at 80 ms, 20 lists at 300 ms, one of them a 503.
    for part in ("12s/50s", "offered 41/s", "achieved 40/s", "p50 80.1ms", "p99 300ms",
                 "errors 12 (2.50%)", "inflight 7", "dropped 12"):  # fmt: skip
        assert part in line


def test_progress_line_as_plain_text_and_without_a_total() -> None:
    plain = render_progress(snapshot(), 90.0, tty=False)
    assert plain.startswith("replay 12s/1m30s") and "[" not in plain and "\n" not in plain
    assert render_progress(snapshot(), None, tty=False).startswith("replay 12s ")
    empty = render_progress(RunAggregate().latest(), 30.0, tty=False)
    assert "p50 -" in empty and "errors 0 " in empty
