"""What a killed recorder leaves, OUT.partial, repaired under the name it was recording to
(`capture repair OUT.partial -o OUT`, as the README says), and a new recording to OUT
refusing to start over it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from capture.corpus import CorpusMeta, CorpusReader, CorpusWriter, Record

CAPTURE = [sys.executable, "-c", "from capture.cli import main; main()"]
BODIES = [b'{"id":"%032x","name":"t%d"}' % (n, n) for n in range(30)]


def _left_by_a_crash(output: Path) -> Path:
    """OUT.partial with 30 records in whole chunks, as a recorder killed after a flush."""
    meta = CorpusMeta(
        "recorded", "capture record http://127.0.0.1:9", "2026-01-01T00:00:00Z", None, {}
    )
    writer = CorpusWriter(output, meta, chunk_records=8, keep_partial=True)
    for n, body in enumerate(BODIES):
        headers = (("Content-Type", "application/json"),)
        writer.write(Record(n * 1_000_000, "ingest", "POST", "/api/public/traces", headers, body))
    writer.flush()
    writer.abort()  # (keep_partial: the file stays as a crash leaves it)
    assert not output.exists() and writer.partial_path.exists()
    return writer.partial_path


def test_repair_to_the_name_it_was_recording_to_keeps_the_source(tmp_path: Path) -> None:
    output = tmp_path / "prod.atc"
    partial = _left_by_a_crash(output)
    before = partial.read_bytes()
    done = subprocess.run(
        [*CAPTURE, "repair", str(partial), "-o", str(output)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert "30 records" in done.stderr
    with CorpusReader(output) as reader:
        assert reader.header.complete
        assert [r.body for r in reader] == BODIES
    assert partial.read_bytes() == before  # only read
    assert sorted(p.name for p in tmp_path.iterdir()) == ["prod.atc", "prod.atc.partial"]


def test_record_will_not_start_over_an_unfinished_recording(raw: Any, tmp_path: Path) -> None:
    output = tmp_path / "prod.atc"
    partial = _left_by_a_crash(output)
    before = partial.read_bytes()
    done = subprocess.run(
        [*CAPTURE, "record", "--listen", "127.0.0.1:0", "--upstream", raw.url, "-o", str(output)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert f"{partial} exists" in done.stderr and "capture repair" in done.stderr
    assert partial.read_bytes() == before and not output.exists()
