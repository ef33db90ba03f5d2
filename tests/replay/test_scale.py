"""Fractional --scale end to end: the offered count is the corpus's times the factor, and
every copy of a record lands as a trace of its own in the sandbox."""

from __future__ import annotations

import json
import math
import sqlite3
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

from capture.corpus import CorpusReader


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[Any]:
    from sandbox.process import start_sandbox

    sb = start_sandbox(db=tmp_path / "sandbox.db", api_keys={"sk-scale": "proj-scale"})
    try:
        yield sb
    finally:
        sb.stop(timeout=30)


@pytest.mark.parametrize("factor", ["0.5x", "2.5x", "1.1x"])
def test_fractional_scale_offers_the_scaled_count_with_unique_ids(
    replay: Any, synth_corpus: Any, sandbox: Any, tmp_path: Path, factor: str
) -> None:
    # One pass of N records at scale s offers s·N requests (rounded down: a record is sent
    # as many whole times as s allows, the fractions carried from record to record), spread
    # over two workers. Each is an ingest of a fresh trace: the sandbox holds that many.
    corpus = synth_corpus(rate=60, seconds=2, seed=11)
    with CorpusReader(corpus) as reader:
        records = reader.header.records
    expected = math.floor(records * Fraction(factor[:-1]))
    out = tmp_path / "r.json"
    args = ["--target", sandbox.url, "--api-key", sandbox.api_key, "--scale", factor]
    done = replay(str(corpus), *args, "--workers", "2", "--out", str(out))
    assert done.returncode == 0, done.stderr
    totals = json.loads(out.read_text())["totals"]
    assert abs(totals["offered"] - expected) <= max(1, expected // 100), (totals, expected)
    assert totals["requests"] == totals["offered"] and totals["dropped"] == 0
    sandbox.flush()
    with sqlite3.connect(sandbox.db) as db:
        traces = db.execute("SELECT count(DISTINCT id) FROM traces").fetchone()[0]
    assert traces == totals["ok"] == totals["requests"]
