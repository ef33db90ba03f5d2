"""capture/repair.py on corpora damaged by hand, and the writer's hooks recorders use
(flush, set_meta within reserved room)."""

from __future__ import annotations

from pathlib import Path

import msgpack
import pytest

from capture.corpus import HEADER_SIZE, CorpusMeta, CorpusReader, CorpusWriter, Record
from capture.repair import repair

META = CorpusMeta("recorded", "test", "2026-01-01T00:00:00.000Z", extra={"k": 1})


def _records(n: int) -> list[Record]:
    return [Record(i * 1_000_000, "other", "GET", f"/r/{i}", (), b"x%d" % i) for i in range(n)]


def _write(path: Path, records: list[Record], *, finish: bool) -> CorpusWriter:
    writer = CorpusWriter(path, META, chunk_records=10, keep_partial=True, meta_reserve=256)
    for record in records:
        writer.write(record)
    writer.flush()
    if finish:
        writer.close()
    return writer


def test_an_unfinished_corpus_cut_inside_its_last_chunk(tmp_path: Path) -> None:
    records = _records(35)
    writer = _write(tmp_path / "a.atc", records, finish=False)
    partial = writer.partial_path
    writer._file.close()  # as a killed process leaves it: no index, header never patched
    size = partial.stat().st_size
    with partial.open("r+b") as f:
        f.truncate(size - 5)  # the last chunk (records 30..34) is no longer whole
    report = repair(partial, tmp_path / "fixed.atc")
    assert (report.records, report.chunks_kept, report.chunks_dropped) == (30, 3, 0)
    assert not report.complete
    with CorpusReader(tmp_path / "fixed.atc") as reader:
        assert list(reader) == records[:30]
        assert reader.header.meta.extra["repaired"]["records"] == 30
        assert reader.header.meta.extra["k"] == 1


def test_a_finished_corpus_with_a_damaged_chunk_keeps_the_others(tmp_path: Path) -> None:
    records = _records(30)
    _write(tmp_path / "b.atc", records, finish=True)
    with CorpusReader(tmp_path / "b.atc") as reader:
        second = reader.header.chunks[1].file_offset
    raw = bytearray((tmp_path / "b.atc").read_bytes())
    raw[second + 40] ^= 0xFF  # a byte of chunk 1's compressed payload: its CRC fails
    (tmp_path / "b.atc").write_bytes(bytes(raw))
    report = repair(tmp_path / "b.atc", tmp_path / "fixed.atc")
    assert (report.records, report.chunks_kept, report.chunks_dropped) == (20, 2, 1)
    assert "chunk 1" in report.dropped[0]
    with CorpusReader(tmp_path / "fixed.atc") as reader:
        assert list(reader) == records[:10] + records[20:]


def test_set_meta_rewrites_the_metadata_in_its_reserved_room(tmp_path: Path) -> None:
    writer = CorpusWriter(tmp_path / "c.atc", META, meta_reserve=300)
    first_len = len(writer._meta_bytes)
    writer.write(_records(1)[0])
    writer.set_meta(CorpusMeta("recorded", "test", META.created, extra={"counts": list(range(50))}))
    writer.close()
    with CorpusReader(tmp_path / "c.atc") as reader:
        assert reader.header.meta.extra == {"counts": list(range(50))}
        assert reader.header.chunks[0].file_offset == HEADER_SIZE + first_len
    with pytest.raises(ValueError, match="does not fit"):
        too_big = CorpusWriter(tmp_path / "d.atc", META, meta_reserve=10)
        too_big.set_meta(CorpusMeta("recorded", "test", META.created, extra={"x": "y" * 100}))
    too_big.abort()


def test_metadata_padding_fits_every_room(tmp_path: Path) -> None:
    # msgpack's bin8 holds up to 255 bytes behind a 2-byte head, bin16 256..65535 behind 3,
    # bin32 more behind 5: rooms 256, 65537 and 65538 fall between two heads and are
    # reached with a longer key instead
    from capture.corpus import _pack_meta, _padded_base

    base = _padded_base(META)
    for room in [*range(0, 300), 65530, 65536, 65537, 65538, 65539, 70000]:
        packed = _pack_meta(META, base + room)
        assert len(packed) == base + room
        assert msgpack.unpackb(packed)["extra"] == {"k": 1}
