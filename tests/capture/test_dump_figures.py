"""capture dump's JSON and capture inspect's observations-per-trace and inter-arrival figures."""

from __future__ import annotations

import base64
import json
import math
import statistics
import subprocess
import sys
from pathlib import Path

from capture.corpus import CorpusMeta, Record, write_corpus


def capture(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from capture.cli import main; main()", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def _trace(n: int) -> bytes:
    return json.dumps(
        {"id": "t", "observations": [{"id": str(i), "type": "SPAN"} for i in range(n)]}
    ).encode()


def _batch(traces: int, observations: int) -> bytes:
    events = [{"type": "trace-create", "body": {}}] * traces
    events += [{"type": "generation-create", "body": {}}] * observations
    events += [{"type": "span-update", "body": {}}]  # an update creates nothing
    return json.dumps({"batch": events}).encode()


def _corpus(tmp_path: Path) -> tuple[Path, list[Record]]:
    offsets_s = [0.0, 0.5, 0.75, 2.0, 2.0, 5.0]
    bodies = [_trace(3), _trace(0), b"\x00\x1b[31mred\xff", _batch(2, 5), b"", _trace(7)]
    endpoints = ["ingest", "ingest", "other", "batch", "list", "ingest"]
    recs = [
        Record(int(t * 1e9), ep, "POST", "/api/public/traces", (("Content-Type", "x"),), body)
        for t, ep, body in zip(offsets_s, endpoints, bodies, strict=True)
    ]
    path = tmp_path / "c.atc"
    write_corpus(path, CorpusMeta("recorded", "test", "2026-01-01T00:00:00.000Z"), recs)
    return path, recs


def test_inspect_figures(tmp_path: Path) -> None:
    path, _recs = _corpus(tmp_path)
    stats = json.loads(capture("inspect", str(path), "--json").stdout)
    traffic = stats["traffic"]
    # traces: 3 ingests (3, 0, 7 observations) and 2 trace-creates with 5 generations
    assert traffic["observations_per_trace"] == (3 + 0 + 7 + 5) / 5
    assert traffic["opaque_records"] == 1
    gaps = [0.5, 0.25, 1.25, 0.0, 3.0]
    mean = statistics.fmean(gaps)
    assert abs(traffic["interarrival_s"]["mean"] - mean) < 1e-12
    assert abs(traffic["interarrival_s"]["cv"] - statistics.pstdev(gaps) / mean) < 1e-12
    # the p99 gap by nearest rank (kept in a bounded histogram: within 0.4 %)
    nearest = sorted(gaps)[math.ceil(0.99 * len(gaps)) - 1]
    assert abs(traffic["interarrival_s"]["p99"] - nearest) <= nearest * 0.004
    human = capture("inspect", str(path)).stdout
    assert "3.00 observations per trace" in human and "CV 1.08" in human  # sqrt(5.875 / 5) / 1.0


def test_dump_json_and_jsonl(tmp_path: Path) -> None:
    path, recs = _corpus(tmp_path)
    whole = capture("dump", str(path))
    assert whole.returncode == 0
    objects = json.loads(whole.stdout)
    assert [o["t_s"] for o in objects] == [r.offset_ns / 1e9 for r in recs]
    for obj, rec in zip(objects, recs, strict=True):
        assert set(obj) == {"t_s", "method", "path", "headers", "body"} or "body_b64" in obj
        assert obj["headers"] == [["Content-Type", "x"]]
        if "body_b64" in obj:
            assert base64.b64decode(obj["body_b64"]) == rec.body
        else:
            assert obj["body"].encode() == rec.body
    assert "body_b64" in objects[2] and "body" not in objects[2]
    assert "\x1b" not in whole.stdout and "\x00" not in whole.stdout  # nothing for a terminal
    lines = capture("dump", str(path), "--jsonl", "--limit", "2").stdout.splitlines()
    assert [json.loads(line) for line in lines] == objects[:2]
    empty = capture("dump", str(path), "--limit", "0")
    assert json.loads(empty.stdout) == []


def test_dump_bad_corpus_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.atc"
    bad.write_bytes(b"not a corpus")
    result = capture("dump", str(bad))
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "bad.atc" in result.stderr
    assert result.stdout == ""  # no opening bracket of an array that never comes
    missing = capture("dump", str(tmp_path / "missing.atc"))
    assert missing.returncode == 2 and missing.stdout == "" and "missing.atc" in missing.stderr
