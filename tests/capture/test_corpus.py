"""The corpus format: round trips, sharding, seeking, recovery and every kind of damage."""

from __future__ import annotations

import random
import struct
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from capture.corpus import (
    ENDPOINTS,
    FORMAT_VERSION,
    HEADER_SIZE,
    SECRET_HEADERS,
    CorpusError,
    CorpusMeta,
    CorpusReader,
    CorpusWriter,
    CorruptChunkError,
    Record,
    UnsupportedVersionError,
    write_corpus,
)

META = CorpusMeta(workload="test", source="unit", created="2026-01-01T00:00:00Z", seed=7)

header_names = st.text(
    st.sampled_from("abcdefghijklmnopqrstuvwxyz-"), min_size=1, max_size=20
).filter(lambda name: name not in SECRET_HEADERS)
# What a request head may hold (RFC 9110): the writer refuses anything else.
paths = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=40).map(
    lambda rest: "/" + rest
)
header_values = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"),
    max_size=30,
)
spans = st.tuples(st.integers(0, 10_000), st.integers(1, 64), st.integers(0, 5))


@st.composite
def records(draw: st.DrawFn, count: int | None = None) -> list[Record]:
    n = count if count is not None else draw(st.integers(0, 30))
    gaps = draw(st.lists(st.integers(0, 10**9), min_size=n, max_size=n))
    out, t = [], 0
    for gap in gaps:
        t += gap
        out.append(
            Record(
                offset_ns=t,
                endpoint=draw(st.sampled_from(ENDPOINTS)),
                method=draw(st.sampled_from(["GET", "POST"])),
                path=draw(paths),
                headers=tuple(draw(st.lists(st.tuples(header_names, header_values), max_size=3))),
                body=draw(st.binary(max_size=120)),
                body_ids=tuple(draw(st.lists(spans, max_size=4))),
                path_ids=tuple(draw(st.lists(spans, max_size=2))),
                trace=draw(st.none() | st.text(max_size=32)),
                status=draw(st.none() | st.integers(100, 599)),
                latency_ns=draw(st.none() | st.integers(0, 10**11)),
            )
        )
    return out


def write(path: Path, recs: list[Record], **options: int) -> Path:
    return write_corpus(path, META, recs, **options)


@settings(
    max_examples=60,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    deadline=None,
)
@given(recs=records(), chunk_records=st.integers(1, 9))
def test_records_round_trip_exactly(tmp_path: Path, recs: list[Record], chunk_records: int) -> None:
    # Whatever the records and chunking, what is read back is what was written.
    path = write(tmp_path / "c.atc", recs, chunk_records=chunk_records)
    with CorpusReader(path) as reader:
        assert list(reader) == recs
        assert reader.header.records == len(recs)
        assert reader.header.meta == META
        assert reader.header.version == FORMAT_VERSION
        assert sum(c.records for c in reader.header.chunks) == len(recs)


@settings(
    max_examples=40,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    deadline=None,
)
@given(recs=records(count=40), shards=st.integers(1, 7))
def test_shards_partition_the_records(tmp_path: Path, recs: list[Record], shards: int) -> None:
    # The chunks of k shards hold every record exactly once, each shard in time order.
    path = write(tmp_path / "c.atc", recs, chunk_records=3)
    with CorpusReader(path) as reader:
        parts = [list(reader.records(shard=i, shards=shards)) for i in range(shards)]
    assert Counter(r for part in parts for r in part) == Counter(recs)
    assert sum(len(p) for p in parts) == len(recs)
    for part in parts:
        assert [r.offset_ns for r in part] == sorted(r.offset_ns for r in part)


@settings(
    max_examples=40,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    deadline=None,
)
@given(recs=records(count=30), data=st.data())
def test_seek_starts_at_the_first_record_at_or_after_the_offset(
    tmp_path: Path, recs: list[Record], data: st.DataObject
) -> None:
    path = write(tmp_path / "c.atc", recs, chunk_records=4)
    start = data.draw(st.integers(0, recs[-1].offset_ns + 1))
    with CorpusReader(path) as reader:
        got = list(reader.records(start_ns=start))
    assert got == [r for r in recs if r.offset_ns >= start]


def test_secret_headers_never_enter_a_corpus(tmp_path: Path) -> None:
    headers = (
        ("Authorization", "Bearer sk_live"),
        ("Cookie", "session=1"),
        ("X-Api-Key", "k"),
        ("Content-Type", "application/json"),
    )
    path = write(tmp_path / "c.atc", [Record(0, "ingest", "POST", "/", headers, b"{}")])
    with CorpusReader(path) as reader:
        (record,) = list(reader)
    assert record.headers == (("Content-Type", "application/json"),)
    assert b"sk_live" not in path.read_bytes()


def test_writer_rejects_out_of_order_records(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="time order"), CorpusWriter(tmp_path / "c.atc", META) as w:
        w.write(Record(5, "list", "GET", "/", (), b""))
        w.write(Record(4, "list", "GET", "/", (), b""))
    # A failed write leaves nothing under either name.
    assert not (tmp_path / "c.atc").exists()
    assert not (tmp_path / "c.atc.partial").exists()


def test_unfinished_corpus_is_readable_in_recovery_mode(tmp_path: Path) -> None:
    recs = [Record(i, "list", "GET", f"/{i}", (), b"x" * i) for i in range(10)]
    writer = CorpusWriter(tmp_path / "c.atc", META, chunk_records=3, keep_partial=True)
    writer.write_all(recs)
    writer.abort()  # the recorder died: no index, header never patched
    partial = tmp_path / "c.atc.partial"
    with pytest.raises(CorpusError, match="unfinished"):
        CorpusReader(partial)
    with CorpusReader(partial, recover=True) as reader:
        assert not reader.header.complete
        assert list(reader) == recs


# --- damage ---------------------------------------------------------------------------


@pytest.fixture
def corpus(tmp_path: Path) -> tuple[Path, list[Record]]:
    recs = [
        Record(i * 1000, "ingest", "POST", "/api/public/traces", (), bytes(50)) for i in range(20)
    ]
    return write(tmp_path / "c.atc", recs, chunk_records=5), recs


def test_empty_file(tmp_path: Path) -> None:
    (tmp_path / "e.atc").write_bytes(b"")
    with pytest.raises(CorpusError, match="empty file"):
        CorpusReader(tmp_path / "e.atc")


def test_wrong_magic(tmp_path: Path) -> None:
    (tmp_path / "x.atc").write_bytes(b'{"not": "a corpus"}' * 5)
    with pytest.raises(CorpusError, match="not a corpus") as info:
        CorpusReader(tmp_path / "x.atc")
    assert info.value.offset == 0


def test_newer_version_is_refused_by_name(corpus: tuple[Path, list[Record]]) -> None:
    path, _ = corpus
    data = bytearray(path.read_bytes())
    struct.pack_into(">H", data, 8, FORMAT_VERSION + 1)
    path.write_bytes(bytes(data))
    with pytest.raises(UnsupportedVersionError, match=f"version {FORMAT_VERSION + 1} is newer"):
        CorpusReader(path)


def test_truncated_file_names_where(corpus: tuple[Path, list[Record]]) -> None:
    path, _ = corpus
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CorpusError, match="truncated") as info:
        CorpusReader(path)
    assert info.value.offset == len(data) // 2


def test_truncated_header(tmp_path: Path, corpus: tuple[Path, list[Record]]) -> None:
    path, _ = corpus
    path.write_bytes(path.read_bytes()[: HEADER_SIZE - 5])
    with pytest.raises(CorpusError, match="truncated header"):
        CorpusReader(path)


def test_flipped_header_bit_fails_the_checksum(corpus: tuple[Path, list[Record]]) -> None:
    path, _ = corpus
    data = bytearray(path.read_bytes())
    data[HEADER_SIZE + 3] ^= 0x10  # inside the metadata
    path.write_bytes(bytes(data))
    with pytest.raises(CorpusError, match="checksum"):
        CorpusReader(path)


def test_corrupt_chunk_mid_stream_delivers_everything_before_it(
    corpus: tuple[Path, list[Record]],
) -> None:
    path, recs = corpus
    with CorpusReader(path) as reader:
        third = reader.header.chunks[2]
    data = bytearray(path.read_bytes())
    data[third.file_offset + 40] ^= 0xFF  # a byte of chunk 2's payload
    path.write_bytes(bytes(data))
    delivered = []
    with CorpusReader(path) as reader, pytest.raises(CorruptChunkError) as info:
        for record in reader:
            delivered.append(record)
    assert info.value.chunk == 2
    assert info.value.offset == third.file_offset
    assert "chunk 2" in str(info.value)
    assert delivered == recs[:10]


def test_missing_path_and_directory(tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match="no such file"):
        CorpusReader(tmp_path / "missing.atc")
    with pytest.raises(CorpusError, match="directory"):
        CorpusReader(tmp_path)


@settings(
    max_examples=80,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    deadline=None,
)
@given(position=st.integers(0, 10**6), bit=st.integers(0, 7))
def test_any_single_bit_flip_is_detected_or_harmless(
    tmp_path: Path, position: int, bit: int
) -> None:
    # A flipped bit anywhere gives a CorpusError or, if it only touched unused bits, the
    # same records; never a wrong record and never another exception.
    recs = [Record(i, "get", "GET", f"/t/{i}", (("A", "b"),), bytes([i]) * 20) for i in range(12)]
    path = write(tmp_path / "b.atc", recs, chunk_records=4)
    data = bytearray(path.read_bytes())
    data[position % len(data)] ^= 1 << bit
    path.write_bytes(bytes(data))
    try:
        with CorpusReader(path) as reader:
            got = list(reader)
    except CorpusError:
        return
    assert got == recs


def test_streamed_records_equal_bulk_chunks_across_many_pieces(tmp_path: Path) -> None:
    # Records that straddle the streaming reader's piece boundaries, in chunks of several
    # pieces, both very compressible and not: streaming gives exactly the bulk decode.
    rng = random.Random(5)
    recs = [
        Record(i, "ingest", "POST", "/t", (), rng.randbytes(rng.randrange(1, 90_000)) * (i % 2 + 1))
        for i in range(40)
    ]
    path = write(tmp_path / "big.atc", recs, chunk_records=13)
    with CorpusReader(path) as reader:
        streamed = list(reader.records())
        bulk = [r for chunk in reader.header.chunks for r in reader.read_chunk(chunk)]
    assert streamed == bulk == recs


def test_stream_of_a_damaged_chunk_gives_nothing_of_it(corpus: tuple[Path, list[Record]]) -> None:
    path, _ = corpus
    with CorpusReader(path) as reader:
        second = reader.header.chunks[1]
    data = bytearray(path.read_bytes())
    data[second.file_offset + 36] ^= 0x01
    path.write_bytes(bytes(data))
    with CorpusReader(path) as reader, pytest.raises(CorruptChunkError):
        next(reader.stream_chunk(second))
