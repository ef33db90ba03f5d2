"""Execution segments: K parts of one run whose union is exactly the whole run."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from capture.corpus import CorpusReader
from replay import pacing
from replay.config import shard_of
from replay.merge import merge_results
from replay.results import ResultsError
from replay.rewrite import IdMinter
from replay.segments import (
    ExecutionSegment,
    hit_stride,
    join_segments,
    parse_segment,
    parse_start_at,
    segment_from_env,
    share,
)

NS = 1_000_000_000
ROOT = Path(__file__).resolve().parent.parent.parent


def replay_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "replay.cli_run", *args]


def replay_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("API_KEY", "PROJECT_ID")}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


# per segment, its own worker count: machines of a Job need not have the same cores
layouts = st.lists(st.integers(1, 5), min_size=1, max_size=6)


@settings(deadline=None)  # a busy CI machine: no per-example time limit
@given(layouts, st.lists(st.one_of(st.none(), st.text(min_size=1, max_size=12)), max_size=60))
def test_every_record_has_exactly_one_segment_and_worker(
    workers: list[int], traces: list[str | None]
) -> None:
    k = len(workers)
    for index, trace in enumerate(traces):
        owners = [
            (i, w)
            for i in range(k)
            for w in range(workers[i])
            if shard_of(trace, index, workers[i], i, k) == w
        ]
        assert len(owners) == 1, (trace, index, owners)


@settings(deadline=None)  # a busy CI machine: no per-example time limit
@given(layouts, st.text(min_size=1, max_size=12), st.integers(0, 1000), st.integers(0, 1000))
def test_a_traces_requests_stay_in_one_segment(
    workers: list[int], trace: str, a: int, b: int
) -> None:
    # two records of the same trace, anywhere in the corpus, go to the same segment and worker
    k = len(workers)

    def where(index: int) -> tuple[int, int]:
        found = [
            (i, shard_of(trace, index, workers[i], i, k))
            for i in range(k)
            if shard_of(trace, index, workers[i], i, k) >= 0
        ]
        assert len(found) == 1
        return found[0]

    assert where(a) == where(b)


def test_one_segment_is_the_unsegmented_rule() -> None:
    # K = 1 changes nothing: the worker of a record is its key mod W, as before segments
    import zlib

    for w in (1, 2, 3, 7):
        for index, trace in enumerate(["a", "trace-2", None, "x" * 32, None]):
            key = zlib.crc32(trace.encode()) if trace else index
            assert shard_of(trace, index, w) == key % w


curves = st.one_of(
    st.builds(lambda r, d: pacing.RateCurve([(d, r, r)]), st.floats(0.5, 500), st.integers(1, 3)),
    st.builds(
        lambda a, b, c: pacing.RateCurve([(NS, a, b), (NS, b, c)]),
        st.floats(0, 300),
        st.floats(0, 300),
        st.floats(0, 300),
    ),
)


@settings(deadline=None)  # a busy CI machine: no per-example time limit
@given(curves, layouts)
@example(pacing.RateCurve([(NS, 100.0, 100.0)]), [1, 1, 1])  # 100/s over 3: 34, 33, 33
def test_arrival_hits_of_all_segments_are_exactly_the_whole_run(
    curve: pacing.RateCurve, workers: list[int]
) -> None:
    whole = list(pacing.uniform_hits(curve, 0, 1))
    k = len(workers)
    parts: list[list[int]] = []
    for i in range(k):
        mine: list[int] = []
        for w in range(workers[i]):
            mine.extend(pacing.uniform_hits(curve, *hit_stride(i, k, w, workers[i])))
        parts.append(mine)
    # disjoint and together the whole schedule, hit for hit
    assert Counter(t for part in parts for t in part) == Counter(whole)
    # each segment offers its 1/K of the hits, to within one, whatever K and the rate
    for part in parts:
        assert abs(len(part) - len(whole) / k) <= 1


@settings(deadline=None)  # a busy CI machine: no per-example time limit
@given(layouts, st.integers(1, 3))
def test_poisson_segments_superpose_to_the_whole_intensity(workers: list[int], seed: int) -> None:
    # each worker of each segment draws 1/(K*W_i)... of the intensity; the K segments
    # together expect the whole count. Checked on the expectation of the drawn counts with
    # a wide bound: 2,000 expected arrivals, five standard deviations (about 224).
    curve = pacing.RateCurve([(2 * NS, 1000.0, 1000.0)])
    k = len(workers)
    total = 0
    for i in range(k):
        for w in range(workers[i]):
            first, stride = hit_stride(i, k, w, workers[i])
            # a segment's workers share the segment's 1/K: intensity 1/(K·W_i) each
            total += sum(1 for _ in pacing.poisson_hits(curve, seed, first, k * workers[i]))
            assert stride == k * workers[i]
    assert abs(total - 2000) < 5 * 2000**0.5


@settings(deadline=None)  # a busy CI machine: no per-example time limit
@given(st.integers(0, 10_000), layouts)
def test_vus_are_split_as_evenly_as_integers_allow(total: int, workers: list[int]) -> None:
    k = len(workers)
    per_segment = [
        sum(share(total, i, k, w, workers[i]) for w in range(workers[i])) for i in range(k)
    ]
    assert sum(per_segment) == total
    assert max(per_segment) - min(per_segment) <= 1
    for i in range(k):
        within = [share(total, i, k, w, workers[i]) for w in range(workers[i])]
        assert max(within) - min(within) <= 1


def test_segment_syntax() -> None:
    assert parse_segment("2/3") == ExecutionSegment(2, 3)
    assert str(parse_segment(" 0/1 ")) == "0/1"
    for bad in ("3/3", "1", "a/3", "-1/3", "1/0", "1/3/4"):
        with pytest.raises(ValueError):
            parse_segment(bad)
    assert segment_from_env(4, {"JOB_COMPLETION_INDEX": "3"}) == ExecutionSegment(3, 4)
    with pytest.raises(ValueError, match="JOB_COMPLETION_INDEX"):
        segment_from_env(4, {})
    with pytest.raises(ValueError, match="does not exist"):
        segment_from_env(4, {"JOB_COMPLETION_INDEX": "4"})


def test_start_at_reads_unix_seconds_and_rfc3339() -> None:
    # 2026-11-29T06:00:00Z is 1,795,932,000 s after the epoch (worked out with date -d)
    assert parse_start_at("2026-11-29T06:00:00Z") == 1_795_932_000 * NS
    assert parse_start_at("2026-11-29T07:00:00+01:00") == 1_795_932_000 * NS
    assert parse_start_at("1795932000.25") == 1_795_932_000 * NS + NS // 4
    for bad in ("soon", "2026-11-29T06:00:00", "nan", "-5", "1e30"):
        with pytest.raises(ValueError):
            parse_start_at(bad)


def test_joining_segments_says_what_is_missing() -> None:
    assert join_segments([None, None], ["a", "b"]) == (None, [])
    label, notes = join_segments(["0/3", "1/3", "2/3"], ["a", "b", "c"])
    assert label is None and "whole run" in notes[0]
    label, notes = join_segments(["2/3", "0/3"], ["a", "b"])
    assert label == "0,2/3" and "1/3" in notes[0]
    with pytest.raises(ValueError, match="both"):
        join_segments(["0/2", "0/2"], ["a", "b"])
    with pytest.raises(ValueError, match="split differently"):
        join_segments(["0/2", "1/3"], ["a", "b"])
    with pytest.raises(ValueError, match="whole run"):
        join_segments(["0/2", None], ["a", "b"])


@settings(deadline=None)  # a busy CI machine: no per-example time limit
@given(
    st.integers(0, 255), st.integers(0, 255), st.integers(0, 99), st.integers(0, 99),
    st.integers(0, 2**62), st.integers(0, 2**62), st.integers(1, 100),
)  # fmt: skip
def test_minted_ids_differ_across_segments_whatever_the_nonces(
    w1: int, w2: int, s1: int, s2: int, n1: int, n2: int, k: int
) -> None:
    s1, s2 = s1 % k, s2 % k
    if (w1, s1) == (w2, s2):
        return
    original = "0123456789abcdef0123456789abcdef"
    a = IdMinter(w1, n1, s1, k).prefix(original)
    b = IdMinter(w2, n2, s2, k).prefix(original)
    assert a != b


# --- K real processes on loopback -------------------------------------------------------


def _results(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_three_segments_started_together_make_the_whole_run(
    synth_corpus: Any, tiny_server: Any, stats: Any, procs: list[Any], tmp_path: Path
) -> None:
    # --rate 300 for 2 s is 600 hits; three segments started by one --start-at offer 200
    # each, and their merge is the run: offered 600, every one answered, on one clock
    url = tiny_server()
    corpus = str(synth_corpus())
    start_at = time.time() + 12  # room for three interpreters to load on a busy machine
    outs = [tmp_path / f"seg{i}.json" for i in range(3)]
    for i, out in enumerate(outs):
        cmd = replay_command(corpus, "--target", url, "--rate", "300", "--duration", "2s",
                             "--workers", "1", "--segment", f"{i}/3", "--start-at",
                             f"{start_at:.3f}", "--max-start-skew", "30s", "--out", str(out),
                             "-q")  # fmt: skip
        procs.append(
            subprocess.Popen(
                cmd,
                env=replay_env(),
                cwd=ROOT,
                text=True,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
        )
    for proc in procs:
        _out, err = proc.communicate(timeout=90)
        assert proc.returncode == 0, err
    parts = [_results(out) for out in outs]
    assert [p["meta"]["segment"] for p in parts] == ["0/3", "1/3", "2/3"]
    assert [p["totals"]["offered"] for p in parts] == [200, 200, 200]
    for part in parts:
        started = datetime.fromisoformat(part["meta"]["started"].replace("Z", "+00:00"))
        if part["meta"]["start_late_ms"] == 0:  # ready in time: it began at --start-at
            assert abs(started.timestamp() - start_at) < 0.002
    merged = merge_results(parts, [o.name for o in outs])
    assert merged["totals"]["offered"] == 600
    assert merged["totals"]["requests"] == stats(url)["requests"] >= 594
    assert "segment" not in merged["meta"]
    assert any("the whole run" in note for note in merged["meta"]["notes"])
    # two of three: the merge says which part is missing
    partial = merge_results(parts[:2], ["a", "b"])
    assert partial["meta"]["segment"] == "0,1/3"
    assert any("2/3" in note for note in partial["meta"]["notes"])


def test_segments_write_distinct_traces_into_one_sandbox(
    replay: Any, synth_corpus: Any, tmp_path: Path
) -> None:
    # the ingestion corpus at 3x in three segments: every acknowledged trace is distinct
    from sandbox.process import start_sandbox

    corpus = synth_corpus(rate=30, seconds=2, seed=9)
    with CorpusReader(corpus) as reader:
        records = reader.header.records
    with start_sandbox(db=tmp_path / "sb.db", api_keys={"sk-seg": "proj-seg"}) as sb:
        oks = 0
        for i in range(3):
            out = tmp_path / f"s{i}.json"
            workers = str(1 + i % 2)  # machines of one Job may differ in cores
            done = replay(str(corpus), "--target", sb.url, "--scale", "3x", "--workers", workers,
                          "--segment", f"{i}/3", "--out", str(out), "-q",
                          env={"API_KEY": "sk-seg"})  # fmt: skip
            assert done.returncode == 0, done.stderr
            oks += _results(out)["totals"]["ok"]
        sb.flush()
        with sqlite3.connect(sb.db) as db:
            traces = db.execute("SELECT count(DISTINCT id) FROM traces").fetchone()[0]
    assert oks == 3 * records
    assert traces == 3 * records


def test_a_segment_ready_after_its_start_refuses_to_run(replay: Any, synth_corpus: Any) -> None:
    done = replay(str(synth_corpus()), "--rate", "10", "--duration", "1s", "--workers", "1",
                  "--segment", "0/2", "--start-at", f"{time.time() - 5:.3f}")  # fmt: skip
    assert done.returncode == 2
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "--start-at" in lines[0] and "--max-start-skew" in lines[0]


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--segment", "3/3"], "does not exist"),
        (["--segment", "1/2", "--segments", "3"], "disagree"),
        (["--segments", "3"], "JOB_COMPLETION_INDEX"),
        (["--start-at", "tomorrow"], "RFC 3339"),
    ],
)
def test_bad_segment_options_are_one_line(replay: Any, args: list[str], says: str) -> None:
    done = replay("--rate", "10", "--duration", "1s", *args)
    assert done.returncode == 2
    assert says in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_merge_refuses_segments_of_different_splits() -> None:
    from replay.aggregate import RunAggregate
    from replay.results import RunMeta, build_results

    a, b = (
        build_results(RunAggregate(), RunMeta(corpus="c", target="t", model="rate", segment=s), [])
        for s in ("0/2", "1/3")
    )
    with pytest.raises(ResultsError, match="split differently"):
        merge_results([a, b], ["a", "b"])


@settings(max_examples=20, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 2), st.integers(0, 3), st.integers(1, 3_000_000)),
        min_size=1,
        max_size=200,
    )
)
def test_merged_segments_equal_one_run_of_the_same_latencies(
    requests: list[tuple[int, int, int]],
) -> None:
    # the same recorded latencies (segment, second, latency µs), once split into three
    # segment files and merged, once in one aggregate: the same histograms, to the byte
    from replay.aggregate import RunAggregate
    from replay.recorder import IntervalRecorder
    from replay.results import RunMeta, build_results, dumps_results

    def run_of(rows: list[tuple[int, int, int]], worker: int) -> RunAggregate:
        agg = RunAggregate()
        rec = IntervalRecorder(worker)
        for second in range(4):
            for _seg, s, lat in rows:
                if s == second:
                    rec.offered()
                    rec.record("ingest", "200", s * NS, s * NS, s * NS + lat * 1000)
            agg.add(rec.flush(second, inflight=0))
        agg.set_duration(4.0)
        return agg

    parts = []
    for seg in range(3):
        agg = run_of([r for r in requests if r[0] == seg], seg)
        meta = RunMeta(corpus="c", target="t", model="rate", segment=f"{seg}/3")
        parts.append(json.loads(dumps_results(build_results(agg, meta, []))))
    merged = merge_results(parts, ["s0", "s1", "s2"])
    whole = json.loads(
        dumps_results(build_results(run_of(requests, 0), RunMeta("c", "t", "rate"), []))
    )
    for key in ("latency_ms", "totals"):
        assert merged[key] == whole[key]
    assert "segment" not in merged["meta"]
