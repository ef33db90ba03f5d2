"""Results files: the replay-results/1 document, writing, reading and validation."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from replay.aggregate import RunAggregate
from replay.histogram import HIGHEST_US, LatencyHistogram
from replay.merge import aggregate_from_results, merge_results
from replay.recorder import IntervalRecorder
from replay.results import (
    SCHEMA,
    SEND_LAG_LIMIT_MS,
    ResultsError,
    RunMeta,
    build_results,
    dumps_results,
    generator_limit_reasons,
    outcome_kind,
    write_results,
)
from replay.results_read import read_results, validate_results
from replay.thresholds import evaluate, parse_threshold

MS = 1_000_000  # ns
META = RunMeta(
    corpus="ingestion",
    target="http://127.0.0.1:8080",
    model="timeline",
    scale=5.0,
    speed=1.0,
    workers=2,
    started="2026-03-01T10:00:00.000Z",
    ended="2026-03-01T10:00:03.500Z",
    version="0.1.0",
    host_cores=8,
    command_line="replay run ingestion --scale 5x --out r.json",
    notes=["target: the embedded sandbox"],
)


def sample_run(lag_ms: float = 1.0, drops: int = 0, slow_us: int = 0) -> RunAggregate:
    """Two workers, three seconds: ingest 200s at 20 ms, gets at 5 ms with 503s and timeouts."""
    agg = RunAggregate()
    for worker in range(2):
        rec = IntervalRecorder(worker)
        for second in range(3):
            base = second * 10**9
            rec.offered(21 + drops)
            for i in range(10):
                rec.record("ingest", "200", base, base + int(lag_ms * MS), base + 20 * MS + i)
                outcome = "200" if i < 8 else ("503" if i == 8 else "timeout")
                rec.record("get", outcome, base, base + int(lag_ms * MS), base + 5 * MS)
            rec.record("get", "304", base, base, base + (slow_us * 1000 or MS))
            for _ in range(drops):
                rec.drop("ingest", base)
            agg.add(rec.flush(second, inflight=3))
    agg.set_duration(3.5)
    return agg


def test_the_document_has_every_field_the_issue_lists() -> None:
    agg = sample_run()
    verdicts = evaluate([parse_threshold("http_req_failed: rate<0.01")], agg)
    r = build_results(agg, META, verdicts)
    validate_results(r)
    assert r["schema"] == SCHEMA == "replay-results/1"
    for key in ("corpus", "target", "scale", "speed", "workers", "started", "ended", "version",
                "host_cores", "command_line", "notes", "model", "rate"):  # fmt: skip
        assert key in r["meta"]
    t = r["totals"]
    assert (t["requests"], t["ok"], t["errors"], t["dropped"], t["offered"]) == (
        126,
        114,
        12,
        0,
        126,
    )
    assert t["achieved_rps"] == pytest.approx(126 / 3.5) and t["offered_rps"] == t["achieved_rps"]
    for block in ("latency_ms", "latency_uncorrected_ms", "send_lag_ms"):
        assert {"p50", "p90", "p95", "p99", "p999", "max"} <= set(r[block])
    assert r["endpoints"]["ingest"]["latency_ms"]["p50"] == pytest.approx(20.0, rel=1e-3)
    assert r["endpoints"]["get"]["outcomes"] == {"200": 48, "304": 6, "503": 6, "timeout": 6}
    assert r["outcomes"]["503"]["kind"] == "http_error"
    assert r["outcomes"]["timeout"]["kind"] == "transport_error"
    assert r["outcomes"]["304"]["kind"] == "ok"
    assert r["errors"] == {"503": 6, "timeout": 6}
    assert [e["t"] for e in r["timeline"]] == [0, 1, 2]
    assert r["timeline"][0]["inflight"] == 6  # summed over the two workers
    assert r["thresholds"][0]["ok"] is False  # 12 errors in 126
    whole = LatencyHistogram()
    for s in r["histograms"]["series"]:
        whole.merge(LatencyHistogram.decode(s["latency"]))
    assert whole.count == 126 and whole.percentile(99) == r["latency_ms"]["p99"]


@pytest.mark.parametrize(
    ("outcome", "kind"),
    [("200", "ok"), ("302", "ok"), ("429", "http_error"), ("500", "http_error"),
     ("reset", "transport_error"), ("malformed", "transport_error")],
)  # fmt: skip
def test_outcome_kinds(outcome: str, kind: str) -> None:
    assert outcome_kind(outcome) == kind


@pytest.mark.parametrize(
    ("dropped", "lag_p99", "limited"),
    [
        (0, 1.0, False),  # on schedule, nothing dropped: the target set the pace
        (1, 1.0, True),  # a single drop means a worker was at --max-inflight
        (0, SEND_LAG_LIMIT_MS, False),  # at the limit is still fine
        (0, SEND_LAG_LIMIT_MS + 0.5, True),  # late sends: the generator fell behind
        (0, None, False),  # nothing sent
    ],
)
def test_generator_limit_criterion(dropped: int, lag_p99: float | None, limited: bool) -> None:
    assert bool(generator_limit_reasons(dropped, 100, lag_p99)) is limited


def test_drops_and_lag_are_reported_as_the_generators_limit() -> None:
    calm = build_results(sample_run(), META, [])
    assert calm["load_generator"] == {"limited": False, "reasons": []}
    dropping = build_results(sample_run(drops=2), META, [])
    assert dropping["totals"]["dropped"] == 12
    assert dropping["endpoints"]["ingest"]["dropped"] == 12
    assert dropping["load_generator"]["limited"]
    assert "12 requests dropped" in dropping["load_generator"]["reasons"][0]
    late = build_results(sample_run(lag_ms=40), META, [])
    assert (
        late["load_generator"]["limited"] and "send lag p99" in late["load_generator"]["reasons"][0]
    )


def test_clamped_latencies_are_said_in_the_results() -> None:
    r = build_results(sample_run(slow_us=HIGHEST_US + 5), META, [])
    assert r["latency_ms"]["clamped"] == 6
    assert any("recorded as 1 hour" in n for n in r["meta"]["notes"])
    series = [s for s in r["histograms"]["series"] if s["outcome"] == "304"]
    assert series[0]["clamped"] == [6, 6, 0]
    back = aggregate_from_results(r)
    assert back.whole().histogram("latency").clamped == 6


def test_write_then_read_round_trips(tmp_path: Path) -> None:
    r = build_results(sample_run(), META, [])
    path = tmp_path / "r.json"
    write_results(path, r)
    assert read_results(path) == json.loads(json.dumps(r))
    lines = path.read_text().splitlines()
    # One line per timeline second, so files diff and grep well.
    assert sum(1 for line in lines if line.lstrip().startswith('{"t":')) == 3
    assert not list(tmp_path.glob(".*tmp"))  # the temporary file is gone


def test_empty_run_is_valid() -> None:
    r = build_results(RunAggregate(), META, [])
    validate_results(r)
    assert r["totals"]["requests"] == 0 and r["latency_ms"]["p99"] is None
    assert json.loads(dumps_results(r)) == r


def _broken(mutate: Any) -> dict[str, Any]:
    r = json.loads(dumps_results(build_results(sample_run(), META, [])))
    mutate(r)
    return r


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda r: r.pop("totals"), "f.json: totals: missing"),
        (lambda r: r["totals"].update(requests=-1), "f.json: totals.requests: negative"),
        (lambda r: r["totals"].update(ok=1.5), "totals.ok: expected an integer, found float"),
        (lambda r: r["latency_ms"].update(p99="fast"), "latency_ms.p99: expected"),
        (lambda r: r["meta"].update(workers="two"), "f.json: meta.workers: expected an integer"),
        (lambda r: r["meta"].pop("model"), "meta.model: missing"),
        (lambda r: r["timeline"][2].pop("series"), "f.json: timeline[2].series: missing"),
        (
            lambda r: r["timeline"][1]["series"][0].update(requests=True),
            "timeline[1].series[0].requests: expected an integer, found True",
        ),
        (
            lambda r: r["histograms"]["series"][0].update(clamped=[1]),
            "histograms.series[0].clamped",
        ),
        (lambda r: r.update(thresholds=[{"threshold": 5, "ok": True}]), "thresholds[0].threshold"),
        (lambda r: r.update(schema="replay-results/2"), "f.json: schema: 'replay-results/2'"),
    ],
)
def test_validation_names_the_file_and_field(mutate: Any, message: str) -> None:
    with pytest.raises(ResultsError) as info:
        validate_results(_broken(mutate), "f.json")
    assert message in str(info.value)


def test_a_cut_timeline_is_refused_when_merging() -> None:
    r = _broken(lambda r: r["timeline"].pop())
    with pytest.raises(ResultsError, match=r"add up to 84 requests but totals\.requests is 126"):
        merge_results([r], ["cut.json"])


def test_a_threshold_text_that_no_longer_parses_is_named() -> None:
    r = _broken(lambda r: r["thresholds"].append({"threshold": "latency: p(99)<5", "ok": True}))
    with pytest.raises(ResultsError, match=r"x.json: thresholds\[0\].threshold: .*'latency'"):
        merge_results([r], ["x.json"])


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "not JSON (line 1, column 1"),
        (b"\xff\xfe", "cannot read"),
        (b'{"schema": "replay-results/1"}', "meta: missing"),
    ],
)
def test_read_results_errors(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "r.json"
    path.write_bytes(content)
    with pytest.raises(ResultsError) as info:
        read_results(path)
    assert str(info.value).startswith(str(path)) and message in str(info.value)
    with pytest.raises(ResultsError, match="is a directory"):
        read_results(tmp_path)


def test_meta_round_trips() -> None:
    assert RunMeta.from_json(META.to_json()) == META
