"""`replay run` as a user runs it: each load model, rates, ids in the sandbox, thresholds."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from capture.corpus import CorpusReader

NS = 1_000_000_000


def _results(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    assert data["schema"] == "replay-results/1"
    return data


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[Any]:
    from sandbox.process import start_sandbox

    sb = start_sandbox(db=tmp_path / "sandbox.db", api_keys={"sk-run-test": "proj-run"})
    try:
        yield sb
    finally:
        sb.stop(timeout=30)


def test_embedded_sandbox_scaled_run(replay: Any, synth_corpus: Any, tmp_path: Path) -> None:
    # no --target: the sandbox is started, used, stopped, and the summary says so
    out = tmp_path / "r.json"
    corpus = synth_corpus(rate=30, seconds=2)
    done = replay(str(corpus), "--scale", "2x", "--workers", "1", "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert "embedded sandbox" in done.stdout
    results = _results(out)
    with CorpusReader(corpus) as reader:
        records = reader.header.records
    assert results["totals"]["requests"] == 2 * records
    assert results["totals"]["ok"] == 2 * records  # the sandbox accepted every trace
    assert results["meta"]["model"] == "timeline" and results["meta"]["scale"] == 2.0


def test_scaled_ids_land_as_distinct_traces(
    replay: Any, synth_corpus: Any, sandbox: Any, tmp_path: Path
) -> None:
    # 3x over 2 workers: three times as many distinct traces (and observations) land
    corpus = synth_corpus(rate=40, seconds=2, seed=5)
    with CorpusReader(corpus) as reader:
        records = list(reader)
    observations = sum(r.body.count(b'"trace_id"') for r in records)
    args = ["--target", sandbox.url, "--api-key", sandbox.api_key, "--scale", "3x"]
    done = replay(str(corpus), *args, "--workers", "2", "--out", str(tmp_path / "r.json"))
    assert done.returncode == 0, done.stderr
    sandbox.flush()
    with sqlite3.connect(sandbox.db) as db:
        traces = db.execute("SELECT count(DISTINCT id) FROM traces").fetchone()[0]
        obs = db.execute("SELECT count(DISTINCT id) FROM observations").fetchone()[0]
    assert traces == 3 * len(records)
    assert obs == 3 * observations
    assert _results(tmp_path / "r.json")["totals"]["ok"] == 3 * len(records)


def test_rate_model_is_exact_over_workers(
    replay: Any, synth_corpus: Any, tiny_server: Any, stats: Any, tmp_path: Path
) -> None:
    # --rate 200 for 2 s over 2 workers: exactly 400 due, and the server saw what we counted
    url = tiny_server()
    out = tmp_path / "r.json"
    done = replay(str(synth_corpus()), "--target", url, "--rate", "200", "--duration", "2s",
                  "--workers", "2", "--out", str(out))  # fmt: skip
    assert done.returncode == 0, done.stderr
    totals = _results(out)["totals"]
    assert totals["offered"] == 400
    assert totals["requests"] == stats(url)["requests"] >= 396
    assert totals["dropped"] == 0


def test_a_generator_that_falls_behind_says_so(
    replay: Any, synth_corpus: Any, tiny_server: Any, tmp_path: Path
) -> None:
    # 300,000/s from one worker for half a second: far more than it can send (dropped at
    # --max-inflight, or never sent when the worker fell behind). The results still account
    # for all 150,000 due requests, and the summary names the generator as the limit.
    url = tiny_server()
    out = tmp_path / "r.json"
    done = replay(str(synth_corpus()), "--target", url, "--rate", "300000", "--duration",
                  "500ms", "--workers", "1", "--out", str(out))  # fmt: skip
    assert done.returncode == 0, done.stderr
    results = _results(out)
    totals = results["totals"]
    assert totals["offered"] == 150_000
    assert totals["requests"] + totals["dropped"] == 150_000 and totals["dropped"] > 0
    assert results["load_generator"]["limited"] is True
    # the notes split the drops by cause, and the parts add up to the total
    counts = {}
    for note in results["meta"]["notes"]:
        for cause in ("never sent", "--max-inflight"):
            if cause in note:
                counts[cause] = int(note.split(" requests")[0].split()[-1].replace(",", ""))
    assert counts and sum(counts.values()) == totals["dropped"], results["meta"]["notes"]


def test_drops_at_max_inflight_are_told_apart(
    replay: Any, synth_corpus: Any, tiny_server: Any, tmp_path: Path
) -> None:
    # 200/s against 100 ms answers over 2 connections: the worker keeps its schedule but
    # most requests find both connections busy; the note names --max-inflight, not lag
    url = tiny_server("--delay-ms", "100")
    out = tmp_path / "r.json"
    done = replay(str(synth_corpus()), "--target", url, "--rate", "200", "--duration", "1s",
                  "--workers", "1", "--max-inflight", "2", "--out", str(out))  # fmt: skip
    assert done.returncode == 0, done.stderr
    results = _results(out)
    dropped = results["totals"]["dropped"]
    assert dropped > 150
    notes = results["meta"]["notes"]
    assert f"{dropped:,} requests were dropped because they came due while a worker had " \
        "--max-inflight requests outstanding (2 in all)" in " ".join(notes)  # fmt: skip
    assert not any("never sent" in n for n in notes)


def test_a_corpus_beyond_memory_is_spooled_where_asked_and_left_nowhere(
    replay: Any, synth_corpus: Any, tiny_server: Any, tmp_path: Path
) -> None:
    # ~16,000 ingestion traces (~60 MB of requests) exceed a worker's 48 MB template cache:
    # the worker spools them, in $TMPDIR or --spool-dir, and the file is gone at the end
    corpus = synth_corpus("ingestion", rate=8000, seconds=2)
    url = tiny_server()
    tmpdir, chosen = tmp_path / "tmp", tmp_path / "chosen"
    tmpdir.mkdir()
    chosen.mkdir()
    for extra, where in (([], tmpdir), (["--spool-dir", str(chosen)], chosen)):
        out = tmp_path / "r.json"
        done = replay(str(corpus), "--target", url, "--rate", "400", "--duration", "1s",
                      "--workers", "1", "--out", str(out), *extra,
                      env={"TMPDIR": str(tmpdir)})  # fmt: skip
        assert done.returncode == 0, done.stderr
        spooled = [ln for ln in done.stderr.splitlines() if "templates spooled to" in ln]
        assert len(spooled) == 1 and f"spooled to {where} (" in spooled[0], done.stderr
        totals = _results(out)["totals"]
        assert totals["requests"] == totals["offered"] == 400 and totals["dropped"] == 0
        assert list(where.iterdir()) == []  # unlinked from the start: nothing left behind


def test_merge_is_exact(replay: Any, synth_corpus: Any, tiny_server: Any, tmp_path: Path) -> None:
    # per-second timeline, per-endpoint counts and histograms all add up to the totals
    url = tiny_server()
    out = tmp_path / "r.json"
    done = replay(str(synth_corpus("mixed", rate=60, seconds=2)), "--target", url,
                  "--workers", "2", "--out", str(out))  # fmt: skip
    assert done.returncode == 0, done.stderr
    results = _results(out)
    total = results["totals"]["requests"]
    assert sum(e["requests"] for e in results["endpoints"].values()) == total
    assert sum(s["requests"] for s in results["histograms"]["series"]) == total
    assert results["latency_ms"]["count"] == total
    if "timeline" in results:
        assert sum(i["requests"] for i in results["timeline"]) == total


def test_poisson_arrivals(replay: Any, synth_corpus: Any, tiny_server: Any, tmp_path: Path) -> None:
    # 300/s Poisson for 2 s: 600 expected (sd ~25), reproducible by --seed
    url = tiny_server()
    counts = []
    for _ in range(2):
        out = tmp_path / "p.json"
        done = replay(str(synth_corpus()), "--target", url, "--rate", "300", "--arrival",
                      "poisson", "--duration", "2s", "--workers", "2", "--seed", "4",
                      "--out", str(out))  # fmt: skip
        assert done.returncode == 0, done.stderr
        counts.append(_results(out)["totals"]["offered"])
    assert counts[0] == counts[1]
    assert 500 < counts[0] < 700


def test_stages_ramp(replay: Any, synth_corpus: Any, tiny_server: Any, tmp_path: Path) -> None:
    # ramp 0 -> 200/s over 1 s, hold 1 s: 100 + 200 = 300 requests, fewer in the first second
    url = tiny_server()
    out = tmp_path / "s.json"
    done = replay(str(synth_corpus()), "--target", url, "--stage", "1s:200", "--stage",
                  "1s:200", "--workers", "1", "--out", str(out))  # fmt: skip
    assert done.returncode == 0, done.stderr
    results = _results(out)
    assert abs(results["totals"]["offered"] - 300) <= 2
    assert results["meta"]["model"] == "rate"


def test_closed_model(replay: Any, synth_corpus: Any, tiny_server: Any, tmp_path: Path) -> None:
    url = tiny_server("--delay-ms", "5")
    out = tmp_path / "c.json"
    done = replay(str(synth_corpus()), "--target", url, "--vus", "4", "--think-time", "10ms",
                  "--duration", "2s", "--workers", "2", "--out", str(out))  # fmt: skip
    assert done.returncode == 0, done.stderr
    totals = _results(out)["totals"]
    # 4 VUs, each at most one request per 15 ms for 2 s
    assert 100 <= totals["requests"] <= 4 * 2000 // 15
    assert totals["dropped"] == 0


def test_progress_lines_when_stderr_is_not_a_terminal(
    replay: Any, synth_corpus: Any, tiny_server: Any
) -> None:
    url = tiny_server()
    done = replay(str(synth_corpus(seconds=3)), "--target", url, "--workers", "1")
    assert done.returncode == 0, done.stderr
    lines = [ln for ln in done.stderr.splitlines() if "offered" in ln]
    assert len(lines) >= 2 and "\r" not in done.stderr


def test_threshold_failure_exits_99(
    replay: Any, synth_corpus: Any, tiny_server: Any, tmp_path: Path
) -> None:
    url = tiny_server("--delay-ms", "20")
    out = tmp_path / "t.json"
    done = replay(str(synth_corpus()), "--target", url, "--workers", "1", "--out", str(out),
                  "--threshold", "http_req_duration: p(99)<5",
                  "--threshold", "http_req_failed: rate<1%")  # fmt: skip
    assert done.returncode == 99, done.stderr
    verdicts = {v["threshold"]: v["ok"] for v in _results(out)["thresholds"]}
    assert sorted(verdicts.values()) == [False, True]


def test_thresholds_that_hold_exit_0(replay: Any, synth_corpus: Any, tiny_server: Any) -> None:
    url = tiny_server()
    done = replay(str(synth_corpus()), "--target", url, "--workers", "1",
                  "--threshold", "http_req_duration: p(99)<2s")  # fmt: skip
    assert done.returncode == 0, done.stderr


def test_abort_on_fail_stops_early(
    replay: Any, synth_corpus: Any, tiny_server: Any, tmp_path: Path
) -> None:
    # every request fails: the error-rate threshold fails after the first second, not at 20 s
    url = tiny_server("--status", "503")
    out = tmp_path / "a.json"
    done = replay(str(synth_corpus()), "--target", url, "--rate", "50", "--duration", "20s",
                  "--workers", "1", "--threshold", "http_req_failed: rate<10%",
                  "--abort-on-fail", "--out", str(out), timeout=30)  # fmt: skip
    assert done.returncode == 99, done.stderr
    results = _results(out)
    assert results["totals"]["offered"] < 50 * 6
    assert any("stopped early" in n for n in results["meta"]["notes"])


@pytest.mark.parametrize(
    "args",
    [
        ["--threshold", "p99 under 5"],  # not the grammar
        ["--abort-on-fail"],  # nothing to abort on
        ["--vus", "2", "--rate", "5"],  # two load models
        ["--rate", "5", "--scale", "2x"],  # scale is for the corpus timeline
        ["--stage", "10s"],  # a stage needs a rate
        ["--arrival", "poisson"],  # poisson needs a rate
    ],
)
def test_bad_combinations_are_one_line(replay: Any, args: list[str]) -> None:
    done = replay("--target", "http://127.0.0.1:9", *args)
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "error" in done.stderr and "Traceback" not in done.stderr


def test_a_stage_ramps_down_to_zero(
    replay: Any, synth_corpus: Any, tiny_server: Any, tmp_path: Path
) -> None:
    # the README's ramp down: 200/s held 1 s, then to 0 over 1 s: 200 + 100 = 300 offered
    out = tmp_path / "z.json"
    done = replay(str(synth_corpus()), "--target", tiny_server(), "--rate", "200",
                  "--stage", "1s:200", "--stage", "1s:0", "--workers", "1",
                  "--out", str(out))  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert abs(_results(out)["totals"]["offered"] - 300) <= 2
