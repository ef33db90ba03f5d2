"""`capture` as a user runs it: a real subprocess, one line and status 2 for bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from capture.corpus import CorpusReader
from corpora import bundled_path


def capture(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from capture.cli import main; main()", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_synth_then_inspect_json(tmp_path: Path) -> None:
    out = tmp_path / "q.atc"
    done = capture(
        "synth",
        "--workload",
        "query",
        "--rate",
        "40",
        "--duration",
        "5s",
        "--seed",
        "2",
        "-o",
        str(out),
    )
    assert done.returncode == 0, done.stderr
    shown = capture("inspect", str(out), "--json")
    assert shown.returncode == 0, shown.stderr
    stats = json.loads(shown.stdout)
    assert {
        "records",
        "duration_s",
        "mean_rate",
        "peak_rate",
        "endpoints",
        "format_version",
    } <= set(stats)
    with CorpusReader(out) as reader:
        assert stats["records"] == reader.header.records
    assert sum(stats["endpoints"].values()) == stats["records"]
    assert stats["duration_s"] == 5.0
    assert stats["peak_rate"] >= stats["mean_rate"] > 0


def test_inspect_human_output_names_what_matters() -> None:
    shown = capture("inspect", str(bundled_path("mixed")))
    assert shown.returncode == 0
    for word in (
        "records",
        "duration",
        "peak",
        "endpoints",
        "body bytes",
        "compression",
        "version 1",
    ):
        assert word in shown.stdout


def damaged(tmp_path: Path, how: str) -> Path:
    data = bundled_path("query").read_bytes()
    path = tmp_path / f"{how}.atc"
    if how == "truncated":
        path.write_bytes(data[: len(data) - 100])
    elif how == "bitflip":
        flipped = bytearray(data)
        flipped[len(data) // 2] ^= 0x04
        path.write_bytes(bytes(flipped))
    elif how == "magic":
        path.write_bytes(b"NOTACORP" + data[8:])
    elif how == "newer":
        path.write_bytes(data[:8] + (99).to_bytes(2, "big") + data[10:])
    elif how == "empty":
        path.write_bytes(b"")
    return path


@pytest.mark.parametrize(
    ("how", "says"),
    [
        ("truncated", "truncated"),
        ("bitflip", "corrupt"),
        ("magic", "not a corpus"),
        ("newer", "newer"),
        ("empty", "empty"),
    ],
)
def test_damaged_corpus_is_one_line_and_status_2(tmp_path: Path, how: str, says: str) -> None:
    path = damaged(tmp_path, how)
    done = capture("inspect", str(path))
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert says in lines[0] and str(path) in lines[0]
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["inspect", "/nonexistent/c.atc"], "no such file"),
        (["inspect", "/"], "directory"),
        (
            ["synth", "--workload", "ingestion", "--rate", "-1", "--duration", "5", "-o", "x"],
            "--rate",
        ),
        (
            ["synth", "--workload", "ingestion", "--rate", "5", "--duration", "abc", "-o", "x"],
            "--duration",
        ),
        (
            ["synth", "--workload", "nonsense", "--rate", "5", "--duration", "5", "-o", "x"],
            "--workload",
        ),
        (
            [
                "synth",
                "--workload",
                "query",
                "--rate",
                "5",
                "--duration",
                "5",
                "-o",
                "/nonexistent/x",
            ],
            "does not exist",
        ),
    ],
)
def test_bad_input_is_one_line_and_status_2(args: list[str], says: str) -> None:
    done = capture(*args)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert says in lines[0]
    assert "Traceback" not in done.stderr
