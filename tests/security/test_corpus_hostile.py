"""A corpus is data, never protocol, and a crafted one ends in one line, fast, in bounded
memory: `capture inspect` and `replay run` refuse it (exit 2) naming file, chunk and record,
and the writer never writes what they refuse."""

from __future__ import annotations

import socket
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgpack
import pytest
import zstandard
from hostile import (
    META,
    assert_one_line_error,
    corpus_bytes,
    good_record,
    run_command,
    zstd_frame_declaring,
)

from capture.corpus import CorpusMeta, CorpusReader, CorpusWriter, CorruptChunkError, Record

MB = 1024 * 1024

INJECTIONS = {
    "header value with CRLF": {"headers": [["content-type", "a\r\nAuthorization: Bearer other"]]},
    "path with a request line": {"path": "/x HTTP/1.1\r\nX-Injected: 1\r\n"},
    "path with a space": {"path": "/a b"},
    "path without a slash": {"path": "http://elsewhere.example/"},
    "method with a space": {"method": "GET /x HTTP/1.1\r\n"},
    "header name with a colon": {"headers": [["X-A: b\r\nX-C", "d"]]},
    "header name empty": {"headers": [["", "d"]]},
    "NUL in a header value": {"headers": [["x-a", "b\x00c"]]},
    "bare LF in a header value": {"headers": [["x-a", "b\nX-Injected: 1"]]},
}


@pytest.mark.parametrize("change", INJECTIONS.values(), ids=list(INJECTIONS))
def test_inspect_refuses_a_record_that_would_inject(
    write_bytes: Callable[[str, bytes], Path], change: dict[str, Any]
) -> None:
    records = [good_record(0), good_record(1_000, **change), good_record(2_000)]
    path = write_bytes("inject.atc", corpus_bytes(records))
    ran = run_command("capture", "inspect", str(path))
    line = assert_one_line_error(ran, "capture inspect: error:", str(path), "chunk 0", "record 1")
    assert "\r" not in line  # the bad value is shown escaped, not as control characters


@pytest.mark.parametrize("change", INJECTIONS.values(), ids=list(INJECTIONS))
def test_the_writer_refuses_what_readers_refuse(tmp_path: Path, change: dict[str, Any]) -> None:
    fields = dict(zip(Record._fields, good_record(0, **change), strict=True))
    fields["headers"] = tuple(tuple(h) for h in fields["headers"])
    meta = CorpusMeta("t", "test", "2026-01-01T00:00:00Z")
    with CorpusWriter(tmp_path / "w.atc", meta) as writer, pytest.raises(ValueError):
        writer.write(Record(**fields))


@pytest.fixture
def listener() -> Iterator[str]:
    """A loopback socket that accepts connections: a target that passes replay's probe."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    sock.close()


@pytest.mark.parametrize(
    "change",
    [INJECTIONS["header value with CRLF"], INJECTIONS["path with a request line"]],
    ids=["header", "path"],
)
def test_replay_refuses_a_record_that_would_inject(
    write_bytes: Callable[[str, bytes], Path], listener: str, change: dict[str, Any]
) -> None:
    records = [good_record(0), good_record(1_000), good_record(2_000, **change)]
    path = write_bytes("inject.atc", corpus_bytes(records))
    ran = run_command(
        "replay", "run", str(path), "--target", listener, "--workers", "1", "-q", timeout=120
    )
    assert_one_line_error(ran, str(path), "chunk 0", "record 2")


# --- crafted structures --------------------------------------------------------------------

GOOD = [good_record(0), good_record(1_000)]


def _bomb_payload() -> bytes:
    """A zstd frame of one record whose body is 40 MiB of zeros: about 2 KB on disk."""
    record = good_record(0, body=bytes(40 * MB))
    return zstandard.ZstdCompressor().compress(msgpack.packb([record], use_bin_type=True))


CRAFTED: dict[str, Callable[[], bytes]] = {
    "frame declaring 1 TiB": lambda: corpus_bytes(
        GOOD, payload=zstd_frame_declaring(1 << 40), frame_records=2
    ),
    "body larger than any record may be": lambda: corpus_bytes(
        [good_record(0)], payload=_bomb_payload()
    ),
    "garbage index": lambda: corpus_bytes(GOOD, index=b"\xc1\xff garbage"),
    "index an int": lambda: corpus_bytes(GOOD, index=5),
    "index entries of 3 fields": lambda: corpus_bytes(GOOD, index=[[100, 2, 0]]),
    "index offsets strings": lambda: corpus_bytes(GOOD, index=[["100", 2, 0, 1_000]]),
    "index counts fewer records than the chunk": lambda: corpus_bytes(
        GOOD, index=[[48 + len(msgpack.packb(_meta())), 1, 0, 1_000]], header_records=1
    ),
    "header claims 10^12 records": lambda: corpus_bytes(GOOD, header_records=10**12),
    "header claims 10^9 chunks": lambda: corpus_bytes(GOOD, header_chunks=10**9),
    "offset a string": lambda: corpus_bytes([good_record(0), good_record("1000")]),
    "body a string": lambda: corpus_bytes([good_record(0), good_record(1, body="text")]),
    "headers an int": lambda: corpus_bytes([good_record(0), good_record(1, headers=7)]),
    "record of 3 fields": lambda: corpus_bytes([good_record(0), [1, "ingest", "GET"]]),
    "record a map": lambda: corpus_bytes([good_record(0), {"offset_ns": 1}]),
    "endpoint unknown": lambda: corpus_bytes([good_record(0), good_record(1, endpoint="x")]),
    "offsets out of order": lambda: corpus_bytes([good_record(5_000), good_record(1_000)]),
}


def _meta() -> dict[str, Any]:
    return dict(META)


@pytest.mark.parametrize("make", CRAFTED.values(), ids=list(CRAFTED))
def test_inspect_refuses_a_crafted_corpus_in_one_line(
    write_bytes: Callable[[str, bytes], Path], make: Callable[[], bytes]
) -> None:
    path = write_bytes("crafted.atc", make())
    ran = run_command("capture", "inspect", str(path))
    assert_one_line_error(ran, "capture inspect: error:", str(path))
    assert ran.peak_rss_mb < 300, f"{ran.peak_rss_mb:.0f} MB"


@pytest.mark.parametrize("name", ["frame declaring 1 TiB", "index an int", "offset a string"])
def test_replay_refuses_a_crafted_corpus_in_one_line(
    write_bytes: Callable[[str, bytes], Path], listener: str, name: str
) -> None:
    path = write_bytes("crafted.atc", CRAFTED[name]())
    ran = run_command(
        "replay", "run", str(path), "--target", listener, "--workers", "1", "-q", timeout=120
    )
    assert_one_line_error(ran, str(path))


def test_the_reader_names_chunk_and_record(write_bytes: Callable[[str, bytes], Path]) -> None:
    # Every record before the damaged one is delivered, then the error names where it is.
    records = [good_record(0), good_record(1), good_record(2, method="G T")]
    path = write_bytes("c.atc", corpus_bytes(records))
    seen = []
    with CorpusReader(path) as reader, pytest.raises(CorruptChunkError) as caught:
        seen.extend(reader.records())
    assert len(seen) == 2
    assert caught.value.chunk == 0
    assert "record 2" in str(caught.value) and "method" in str(caught.value)


def test_a_zlib_crc_is_not_enough_to_pass(write_bytes: Callable[[str, bytes], Path]) -> None:
    # The index's checksum matches (it was written for the garbage): the structure is checked
    data = corpus_bytes(GOOD, index=[[1, 2, 3, 4], [5, 6, 7, 8]])
    path = write_bytes("c.atc", data)
    ran = run_command("capture", "inspect", str(path))
    assert_one_line_error(ran, "index")
    assert zlib.crc32(data) != 0


def test_inspect_prints_no_control_characters_from_metadata(
    write_bytes: Callable[[str, bytes], Path],
) -> None:
    metadata = {**META, "workload": "w\x1b]0;owned\x07\x1b[2J", "extra": {"command": "a\rb"}}
    path = write_bytes("meta.atc", corpus_bytes(GOOD, metadata=metadata))
    ran = run_command("capture", "inspect", str(path))
    assert ran.status == 0, ran.stderr
    assert not any(ord(c) < 0x20 and c != "\n" for c in ran.stdout)
    assert "w]0;owned" in ran.stdout and "made by      ab" in ran.stdout
