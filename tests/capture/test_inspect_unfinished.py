"""`capture inspect` on a corpus whose writer died: its whole chunks, marked incomplete; a
file that is not a corpus, or a finished one with a damaged index, stays one line, exit 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from capture.corpus import CorpusMeta, CorpusWriter, Record

META = CorpusMeta("recorded", "test", "2026-01-01T00:00:00.000Z")
CHUNK = 10  # records a chunk


def capture(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from capture.cli import main; main()", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def _records(n: int) -> list[Record]:
    return [Record(i * 1_000_000, "other", "GET", f"/r/{i}", (), b"x%d" % i) for i in range(n)]


def _abandoned(tmp_path: Path, n: int) -> Path:
    """A writer given n records, flushed, then dropped as a killed process leaves it, with
    its last chunk cut short: (n // CHUNK) - 1 whole chunks survive when n % CHUNK == 0."""
    writer = CorpusWriter(tmp_path / "a.atc", META, chunk_records=CHUNK, keep_partial=True)
    writer.write_all(_records(n))
    writer.flush()
    writer._file.close()  # no index, header never patched
    partial = writer.partial_path
    with partial.open("r+b") as f:
        f.truncate(partial.stat().st_size - 5)
    return partial


def test_plain_inspect_reads_an_unfinished_corpus(tmp_path: Path) -> None:
    partial = _abandoned(tmp_path, 40)  # 4 chunks written, the 4th cut: 3 whole, 30 records
    plain = capture("inspect", str(partial))
    assert plain.returncode == 0, plain.stderr
    lines = plain.stdout.splitlines()
    incomplete = [x for x in lines if x.startswith("incomplete")]
    assert len(incomplete) == 1
    assert "3 whole chunks with 30 records recovered" in incomplete[0]
    assert f"capture repair {partial} -o OUT" in incomplete[0]
    assert any(x.split() == ["records", "30", "in", "3", "chunks"] for x in lines)

    as_json = json.loads(capture("inspect", str(partial), "--json").stdout)
    assert (as_json["incomplete"], as_json["complete"]) == (True, False)
    assert (as_json["records"], as_json["chunks"]) == (30, 3)
    assert as_json["endpoints"] == {"other": 30}
    recovered = json.loads(capture("inspect", str(partial), "--json", "--recover").stdout)
    assert recovered == as_json  # --recover is still accepted, with the same result


def test_a_finished_corpus_is_not_incomplete(tmp_path: Path) -> None:
    path = tmp_path / "done.atc"
    with CorpusWriter(path, META, chunk_records=CHUNK) as writer:
        writer.write_all(_records(25))
    shown = capture("inspect", str(path))
    assert shown.returncode == 0 and "incomplete" not in shown.stdout
    as_json = json.loads(capture("inspect", str(path), "--json").stdout)
    assert (as_json["incomplete"], as_json["records"], as_json["chunks"]) == (False, 25, 3)


def test_not_a_corpus_or_a_damaged_index_stays_an_error(tmp_path: Path) -> None:
    text = tmp_path / "notes.atc"
    text.write_text("these are notes, not a corpus\n")
    path = tmp_path / "done.atc"
    with CorpusWriter(path, META, chunk_records=CHUNK) as writer:
        writer.write_all(_records(25))
    data = bytearray(path.read_bytes())
    data[-3] ^= 0xFF  # inside the index payload: its checksum no longer matches
    damaged = tmp_path / "damaged.atc"
    damaged.write_bytes(bytes(data))
    for bad, why in ((text, "not a corpus"), (damaged, "index checksum mismatch")):
        for flags in ((), ("--json",)):
            shown = capture("inspect", str(bad), *flags)
            assert shown.returncode == 2 and shown.stdout == ""
            assert shown.stderr.count("\n") == 1 and why in shown.stderr
            assert str(bad) in shown.stderr
