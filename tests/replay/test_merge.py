"""`replay merge` is exact: merged percentiles are those of one histogram of every request.

The proof, as a property over random latencies split at random across runs, workers, seconds
and endpoints:

1. merging the runs' results files gives, field for field, the results of one aggregate that
   received every worker's every delta (so timelines add by second, windowed thresholds are
   judged on the same data, and the encoded histograms are the same bytes);
2. its percentiles equal those of ``hdrh``'s own HdrHistogram recording every value one by
   one (an independent implementation);
3. and they are within HdrHistogram's stated precision (3 digits) of numpy's percentiles of
   the raw values.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from hdrh.histogram import HdrHistogram
from hypothesis import example, given, settings
from hypothesis import strategies as st

from replay.aggregate import RunAggregate
from replay.cli import main as replay_main
from replay.cli_merge import merge
from replay.histogram import HIGHEST_US
from replay.merge import merge_results
from replay.recorder import IntervalRecorder
from replay.results import RunMeta, build_results, dumps_results, write_results
from replay.results_read import read_results
from replay.thresholds import evaluate, parse_threshold

US = 1000  # ns
THRESHOLDS = [
    parse_threshold("http_req_duration: p(99)<50"),
    parse_threshold("http_req_duration{endpoint:ingest}: p(95)<20 [window=2s]"),
    parse_threshold("http_req_failed: rate<0.2 [window=3s]"),
]

# One request: (run, worker, second, endpoint, outcome, latency µs, send lag µs).
request = st.tuples(
    st.integers(0, 2),
    st.integers(0, 2),
    st.integers(0, 5),
    st.sampled_from(["ingest", "get"]),
    st.sampled_from(["200", "200", "200", "503", "timeout"]),
    st.integers(0, 2 * 10**6) | st.integers(0, HIGHEST_US + 10**6),
    st.integers(0, 20_000),
)


def meta(i: int) -> RunMeta:
    return RunMeta(
        corpus="corpora/ingestion.atc",
        target="http://staging",
        model="timeline",
        scale=5.0,
        workers=3,
        started=f"2026-03-01T10:00:0{i}Z",
        ended=f"2026-03-01T10:01:0{i}Z",
        version="0.1.0",
        host_cores=4,
        command_line=f"replay run --scale 5x --out run{i}.json",
    )


def deltas_of(requests: list[tuple[Any, ...]]) -> dict[int, list[bytes]]:
    """Each run's workers' deltas, second by second (every worker flushes every second)."""
    out: dict[int, list[bytes]] = {}
    for run in {r[0] for r in requests}:
        for worker in range(3):
            rec = IntervalRecorder(run * 3 + worker)  # a process of its own in one big run
            for second in range(6):
                for r in requests:
                    if r[:3] == (run, worker, second):
                        intended = second * 10**9
                        sent = intended + r[6] * US
                        rec.offered()
                        rec.record(r[3], r[4], intended, sent, intended + r[5] * US)
                out.setdefault(run, []).append(rec.flush(second, inflight=worker))
    return out


def strip_meta(results: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in results.items() if k != "meta"}


@settings(max_examples=30, deadline=None)
@given(st.lists(request, min_size=1, max_size=250))
@example([(0, 0, 0, "ingest", "200", 262143, 0)])  # 262.143 ms * 1000 fell below 262143 µs
def test_merged_results_are_exactly_one_run_over_the_same_requests(
    requests: list[tuple[Any, ...]],
) -> None:
    deltas = deltas_of(requests)
    files = []
    one = RunAggregate()
    for run, run_deltas in sorted(deltas.items()):
        agg = RunAggregate()
        for d in run_deltas:
            agg.add(d)
            one.add(d)
        agg.set_duration(6.0)
        results = build_results(agg, meta(run), evaluate(THRESHOLDS, agg))
        files.append(json.loads(dumps_results(results)))  # through the file format
    one.set_duration(6.0)
    merged = merge_results(files)
    expected = build_results(one, meta(0), evaluate(THRESHOLDS, one))
    # 1. Field for field the results of one aggregate of every delta.
    assert strip_meta(merged) == json.loads(dumps_results(strip_meta(expected)))

    # 2. Percentiles of hdrh's own histogram of every value, recorded one by one.
    values = [min(r[5], HIGHEST_US) for r in requests]
    reference = HdrHistogram(1, HIGHEST_US, 3)
    for v in values:
        reference.record_value(v)
    block = merged["latency_ms"]
    for key, p in (("p50", 50), ("p90", 90), ("p95", 95), ("p99", 99), ("p999", 99.9)):
        assert block[key] == reference.get_value_at_percentile(p) / 1000
    assert block["max"] == reference.get_max_value() / 1000
    assert block["count"] == len(requests) == merged["totals"]["requests"]
    assert block["clamped"] == sum(r[5] > HIGHEST_US for r in requests)

    # 3. Within 3 significant digits of numpy's percentile of the raw values. HdrHistogram
    # ranks with round-half-up where inverted_cdf takes the ceiling: allow one rank either
    # side, then the bucket's width (< 1/1024 of the value).
    ordered = np.sort(np.array(values))
    n = len(ordered)
    for key, p in (("p50", 50), ("p90", 90), ("p99", 99)):
        exact = float(np.percentile(ordered, p, method="inverted_cdf"))
        rank = int(np.searchsorted(ordered, exact, side="left"))
        low = ordered[max(rank - 1, 0)]
        high = ordered[min(rank + 1, n - 1)]
        got_us = round(block[key] * 1000, 6)  # ms back to µs: 262.143 * 1000 < 262143
        assert low <= got_us <= high + max(high / 1024, 1)
        assert math.isclose(got_us, exact, rel_tol=1e-3, abs_tol=1) or low != high


@settings(max_examples=10, deadline=None)
@given(st.lists(request, min_size=1, max_size=120))
def test_timelines_merge_by_second(requests: list[tuple[Any, ...]]) -> None:
    deltas = deltas_of(requests)
    files = []
    for run, run_deltas in sorted(deltas.items()):
        agg = RunAggregate()
        for d in run_deltas:
            agg.add(d)
        files.append(build_results(agg, meta(run), []))
    merged = merge_results(files)
    for entry in merged["timeline"]:
        same_second = [r for r in requests if r[2] == entry["t"]]
        assert entry["requests"] == len(same_second)
        assert entry["offered"] == len(same_second)
        assert entry["errors"] == sum(r[4] in ("503", "timeout") for r in same_second)
        assert entry["inflight"] == sum(3 for run in deltas)  # workers 0+1+2 in every run
        if same_second:
            reference = HdrHistogram(1, HIGHEST_US, 3)
            for r in same_second:
                reference.record_value(min(r[5], HIGHEST_US))
            assert entry["p99_ms"] == reference.get_value_at_percentile(99) / 1000


def test_merge_of_one_file_reproduces_it() -> None:
    requests = [
        (0, w, s, "ingest", "200", 1000 * (w + s + 1), 5) for w in range(3) for s in range(6)
    ]
    agg = RunAggregate()
    for d in deltas_of(requests)[0]:
        agg.add(d)
    original = build_results(agg, meta(0), evaluate(THRESHOLDS, agg))
    again = merge_results([original], ["run0.json"])
    assert strip_meta(again) == strip_meta(original)
    assert (
        again["meta"]["workers"] == 3 and "merged from 1 run: run0.json" in again["meta"]["notes"]
    )


def test_merged_metadata() -> None:
    files = []
    for i in (0, 1):
        agg = RunAggregate()
        for d in deltas_of([(0, 0, 0, "get", "200", 100, 1)])[0]:
            agg.add(d)
        m = meta(i)
        m.notes = [f"note of run {i}"]
        m.scale = 5.0 if i == 0 else 2.0
        files.append(build_results(agg, m, []))
    merged = merge_results(files, ["a.json", "b.json"])["meta"]
    assert merged["workers"] == 6 and merged["host_cores"] == 8
    assert merged["started"] == "2026-03-01T10:00:00Z"
    assert merged["ended"] == "2026-03-01T10:01:01Z"
    assert merged["scale"] is None  # they differ, and a note says so
    assert any("differ in scale" in n for n in merged["notes"])
    assert "a.json: note of run 0" in merged["notes"]


# -- the command ----------------------------------------------------------------------------
def results_file(tmp_path: Path, name: str, latency_us: int, thresholds: list[str]) -> Path:
    agg = RunAggregate()
    rec = IntervalRecorder(0)
    for second in range(3):
        for _ in range(50):
            rec.offered()
            rec.record("ingest", "200", 0, 0, latency_us * US)
        agg.add(rec.flush(second, 0))
    ths = [parse_threshold(t) for t in thresholds]
    path = tmp_path / name
    write_results(path, build_results(agg, meta(0), evaluate(ths, agg)))
    return path


def run_merge(*args: str) -> subprocess.CompletedProcess[str]:
    """`replay merge` as the console script runs it."""
    code = "from replay.cli import main; main(prog_name='replay')"
    return subprocess.run(
        [sys.executable, "-c", code, "merge", *args], capture_output=True, text=True, timeout=60
    )


def test_merge_command_writes_merged_results_and_prints_the_summary(tmp_path: Path) -> None:
    a = results_file(tmp_path, "a.json", 10_000, ["http_req_duration: p(99)<500"])
    b = results_file(tmp_path, "b.json", 20_000, ["http_req_duration: p(99)<500"])
    out = tmp_path / "c.json"
    done = run_merge(str(a), str(b), "-o", str(out))
    assert done.returncode == 0, done.stderr
    merged = read_results(out)
    assert merged["totals"]["requests"] == 300
    assert merged["latency_ms"]["p50"] == pytest.approx(10.0, rel=1e-3)
    assert merged["latency_ms"]["max"] == pytest.approx(20.0, rel=1e-3)
    assert "✓ http_req_duration: p(99)<500" in done.stdout
    assert "http_reqs" in done.stdout and "300" in done.stdout


def test_a_threshold_failing_on_the_merged_data_exits_99(tmp_path: Path) -> None:
    a = results_file(tmp_path, "a.json", 10_000, ["http_req_duration: max<15"])
    b = results_file(tmp_path, "b.json", 20_000, [])  # passes alone: no thresholds
    done = run_merge(str(a), str(b))
    assert done.returncode == 99
    assert "✗ http_req_duration: max<15" in done.stdout
    extra = CliRunner().invoke(merge, [str(b), "--threshold", "http_req_duration: p(50)<15"])
    assert extra.exit_code == 99 and "✗ http_req_duration: p(50)<15" in extra.output


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no such file"),
        ("{not json", "not JSON (line 1, column 2"),
        ('{"schema": "k6-results/1"}', "schema: 'k6-results/1', expected 'replay-results/1'"),
        ("[1, 2]", "expected a JSON object"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    tmp_path: Path, content: str | None, message: str
) -> None:
    bad = tmp_path / "bad.json"
    if content is not None:
        bad.write_text(content)
    good = results_file(tmp_path, "good.json", 1000, [])
    done = run_merge(str(good), str(bad))
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert str(bad) in done.stderr and message in done.stderr
    standalone = CliRunner().invoke(merge, [str(good), str(bad)])
    assert standalone.exit_code == 2 and message in standalone.output


def test_a_wrong_field_is_named_with_its_path(tmp_path: Path) -> None:
    path = results_file(tmp_path, "r.json", 1000, [])
    doc = json.loads(path.read_text())
    doc["timeline"][1]["series"][0]["latency"] = "not-a-histogram"
    path.write_text(json.dumps(doc))
    done = run_merge(str(path))
    assert done.returncode == 2
    assert "timeline[1].series[0].latency: not an HdrHistogram encoding" in done.stderr
    doc["totals"]["requests"] = "many"
    path.write_text(json.dumps(doc))
    done = run_merge(str(path))
    assert done.returncode == 2 and "totals.requests: expected an integer" in done.stderr


def test_a_bad_threshold_or_output_directory_is_one_line(tmp_path: Path) -> None:
    good = results_file(tmp_path, "good.json", 1000, [])
    done = run_merge(str(good), "--threshold", "http_req_durtion: p(99)<5")
    assert done.returncode == 2 and done.stderr.count("\n") == 1
    assert "'http_req_durtion'" in done.stderr
    done = run_merge(str(good), "-o", str(tmp_path / "nowhere" / "c.json"))
    assert done.returncode == 2 and "does not exist" in done.stderr
    # Under click's own runner too (the `replay` group as installed): no usage block.
    for args in (["--threshold", "http_req_failed: rate<lots", str(good)], []):
        standalone = CliRunner().invoke(replay_main, ["merge", *args])
        assert standalone.exit_code == 2
        assert standalone.stderr.startswith("replay merge: error: ")
        assert standalone.stderr.count("\n") == 1 and "Usage" not in standalone.stderr


def test_merge_is_mounted_on_replay() -> None:
    cli = pytest.importorskip("replay.cli")
    assert cli.main.commands["merge"] is merge


def _run_with(corpus: str, seconds: int, sent: int, dropped: int) -> dict[str, Any]:
    """A run of `seconds` seconds: each second `sent` answered requests and `dropped` drops."""
    agg = RunAggregate()
    rec = IntervalRecorder(0)
    for second in range(seconds):
        due = second * 10**9
        for i in range(sent):
            rec.offered()
            rec.record("ingest", "200", due + i, due + i, due + i + 5 * 10**6)
        for _ in range(dropped):
            rec.offered()
            rec.drop("ingest", due)
        agg.add(rec.flush(second, inflight=0))
    agg.set_duration(float(seconds))
    m = meta(0)
    m.corpus = corpus
    return build_results(agg, m, [])


def test_merging_runs_with_drops_different_durations_and_corpora() -> None:
    # run A: 3 s of 10 sent + 2 dropped each second over corpus a; run B: 5 s of 4 sent + 1
    # dropped over corpus b. Side by side: counts add, the duration is the longest run's
    # (docs/results-format.md, the merge rule), and the differing corpora are noted.
    a = _run_with("a.atc", seconds=3, sent=10, dropped=2)
    b = _run_with("b.atc", seconds=5, sent=4, dropped=1)
    merged = merge_results([a, b], sources=["a.json", "b.json"])
    totals = merged["totals"]
    assert totals["requests"] == 3 * 10 + 5 * 4
    assert totals["dropped"] == 3 * 2 + 5 * 1
    assert totals["offered"] == 3 * 12 + 5 * 5
    assert totals["duration_s"] == 5.0
    assert len(merged["timeline"]) == 5
    assert [s["dropped"] for s in merged["timeline"]] == [3, 3, 3, 1, 1]
    assert merged["meta"]["corpus"] != "a.atc"
    notes = merged["meta"]["notes"]
    assert any("differ in corpus" in n and "a.atc" in n and "b.atc" in n for n in notes), notes
    assert merged["load_generator"]["limited"] is True
