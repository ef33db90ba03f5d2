"""The corpus format: a fixed header, zstd-compressed msgpack chunks, and a chunk index.

A corpus is the unit of traffic that flows capture -> replay. The byte layout is specified in
docs/corpus-format.md (format version 1); this module reads it, corpus_writer.py writes it and
corpus_format.py holds their shared vocabulary (every name is importable from here).

    header   48 bytes, fixed: magic, version, record count, duration, chunk count,
             index offset, metadata length, CRC-32 of header and metadata
    metadata msgpack map: workload, source, created, seed, extra
    chunks   each a 32-byte frame header (CRC-32 of the payload, record count, first and last
             offset) and one zstd frame holding a msgpack array of records
    index    one entry per chunk: file offset, record count, first and last offset (ns)

Every chunk decodes on its own, so a reader streams with one chunk in memory, seeks by
bisecting the index on time offsets, and shard i of k reads chunks i, i+k, i+2k... without
touching the others. The header is written last (the writer seeks back to patch it), so a
corpus whose writer died has index_offset 0 and is still readable chunk by chunk with
``recover=True``.
"""

from __future__ import annotations

import bisect
import os
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import msgpack
import zstandard

from capture.corpus_check import (
    MAX_CHUNK_RAW,
    MAX_CHUNK_RECORDS,
    MAX_META,
    UNPACK_LIMITS,
    index_problem,
    record_problem,
)
from capture.corpus_format import (
    _CHUNK,
    _HEADER,
    _INDEX,
    CHUNK_HEADER_SIZE,
    CHUNK_MAGIC,
    ENDPOINTS,
    FORMAT_VERSION,
    HEADER_SIZE,
    INDEX_MAGIC,
    MAGIC,
    SECRET_HEADERS,
    ChunkInfo,
    CorpusError,
    CorpusHeader,
    CorpusMeta,
    CorruptChunkError,
    IdKind,
    IdSpan,
    IdSpans,
    Record,
    UnfinishedCorpusError,
    UnsupportedVersionError,
    _ext_hook,
    scrub_headers,
)
from capture.corpus_writer import (
    CorpusWriter,
    _pack_meta,
    _padded_base,
    partial_path,
    write_corpus,
)

__all__ = [
    "CHUNK_HEADER_SIZE",
    "CHUNK_MAGIC",
    "ENDPOINTS",
    "FORMAT_VERSION",
    "HEADER_SIZE",
    "INDEX_MAGIC",
    "MAGIC",
    "SECRET_HEADERS",
    "ChunkInfo",
    "CorpusError",
    "CorpusHeader",
    "CorpusMeta",
    "CorpusReader",
    "CorpusWriter",
    "CorruptChunkError",
    "IdKind",
    "IdSpan",
    "IdSpans",
    "Record",
    "UnsupportedVersionError",
    "_pack_meta",
    "_padded_base",
    "partial_path",
    "scrub_headers",
    "write_corpus",
]


def _read_header(path: Path, f: IO[bytes], size: int) -> tuple[tuple[Any, ...], CorpusMeta]:
    if size == 0:
        raise CorpusError(path, "empty file, not a corpus")
    raw = f.read(HEADER_SIZE)
    if len(raw) < len(MAGIC) or raw[: len(MAGIC)] != MAGIC:
        raise CorpusError(path, f"not a corpus: expected magic {MAGIC!r}, found {raw[:8]!r}", 0)
    if len(raw) < HEADER_SIZE:
        raise CorpusError(path, f"truncated header ({size} bytes, need {HEADER_SIZE})", size)
    fields = _HEADER.unpack(raw)
    version = fields[1]
    if version > FORMAT_VERSION:
        raise UnsupportedVersionError(
            path,
            f"format version {version} is newer than this reader (version {FORMAT_VERSION}); "
            "upgrade agenttrace-loadtools",
            8,
        )
    if version < 1:
        raise CorpusError(path, f"invalid format version {version}", 8)
    meta_len, crc = fields[7], fields[8]
    if meta_len > MAX_META:
        raise CorpusError(path, f"metadata of {meta_len:,} bytes (at most {MAX_META:,})", 40)
    meta_bytes = f.read(meta_len)
    if len(meta_bytes) < meta_len:
        raise CorpusError(path, "truncated metadata", HEADER_SIZE + len(meta_bytes))
    unsigned = _HEADER.pack(*fields[:8], 0)
    if zlib.crc32(meta_bytes, zlib.crc32(unsigned)) != crc:
        raise CorpusError(path, "header checksum mismatch (header or metadata damaged)", 0)
    try:
        meta = CorpusMeta.from_wire(msgpack.unpackb(meta_bytes, raw=False, **UNPACK_LIMITS))
    except (ValueError, TypeError, msgpack.UnpackException) as exc:
        raise CorpusError(path, f"unreadable metadata: {exc}", HEADER_SIZE) from None
    return fields, meta


def _chunks_from_index(
    path: Path, f: IO[bytes], size: int, fields: tuple[Any, ...]
) -> list[ChunkInfo]:
    index_offset, n_chunks, n_records = fields[6], fields[5], fields[3]
    data_start = HEADER_SIZE + fields[7]
    if n_chunks > (size - data_start) // CHUNK_HEADER_SIZE:
        raise CorpusError(path, f"header claims {n_chunks:,} chunks: more than the file holds", 28)
    if n_records > n_chunks * MAX_CHUNK_RECORDS:
        raise CorpusError(path, f"header claims {n_records:,} records in {n_chunks} chunks", 12)
    if index_offset < data_start or index_offset + _INDEX.size > size:
        raise CorpusError(
            path,
            f"truncated: the index should start at byte {index_offset} but the file has "
            f"{size} bytes",
            size,
        )
    f.seek(index_offset)
    magic, length, crc = _INDEX.unpack(f.read(_INDEX.size))
    if magic != INDEX_MAGIC:
        raise CorpusError(path, f"index magic missing (found {magic!r})", index_offset)
    if length > size - index_offset - _INDEX.size:
        raise CorpusError(path, f"truncated index (it claims {length:,} bytes)", index_offset)
    payload = f.read(length)
    if zlib.crc32(payload) != crc:
        raise CorpusError(path, "index checksum mismatch", index_offset)
    try:
        entries = msgpack.unpackb(payload, raw=False, **UNPACK_LIMITS)
    except _DECODE_ERRORS as exc:
        raise CorpusError(path, f"undecodable index: {exc}", index_offset) from None
    problem = index_problem(entries, n_chunks, data_start, index_offset)
    if problem:
        raise CorpusError(path, problem, index_offset)
    chunks: list[ChunkInfo] = []
    seq = 0
    for i, (offset, records, first_ns, last_ns) in enumerate(entries):
        chunks.append(ChunkInfo(i, offset, records, first_ns, last_ns, seq))
        seq += records
    if seq != n_records:
        raise CorpusError(
            path, f"index counts {seq} records, header says {n_records}", index_offset
        )
    return chunks


def _chunks_by_scan(f: IO[bytes], start: int, size: int) -> list[ChunkInfo]:
    """Walk chunk frames from `start`; stop at the first frame that is not whole."""
    chunks: list[ChunkInfo] = []
    seq, offset, previous_ns = 0, start, 0
    while offset + CHUNK_HEADER_SIZE <= size:
        f.seek(offset)
        magic, length, records, _crc, first_ns, last_ns = _CHUNK.unpack(f.read(CHUNK_HEADER_SIZE))
        if magic != CHUNK_MAGIC or offset + CHUNK_HEADER_SIZE + length > size:
            break
        if not (0 < records <= MAX_CHUNK_RECORDS and previous_ns <= first_ns <= last_ns):
            break
        previous_ns = last_ns
        chunks.append(ChunkInfo(len(chunks), offset, records, first_ns, last_ns, seq))
        seq += records
        offset += CHUNK_HEADER_SIZE + length
    return chunks


_DECODE_ERRORS = (zstandard.ZstdError, ValueError, TypeError, msgpack.UnpackException)
_STREAM_PIECE = 128 << 10  # bytes of records decompressed and fed at a time: ~0.1 ms


class CorpusReader:
    """Reads a corpus chunk by chunk: constant memory, seekable, shardable.

    Opening validates the header and the index; a damaged chunk is found when it is read,
    and raises CorruptChunkError after every record before it has been delivered.
    """

    def __init__(self, path: str | os.PathLike[str], *, recover: bool = False) -> None:
        self.path = Path(path)
        if self.path.is_dir():
            raise CorpusError(self.path, "is a directory, not a corpus file")
        try:
            self._file: IO[bytes] = open(self.path, "rb")  # noqa: SIM115 - closed in close()
        except FileNotFoundError:
            raise CorpusError(self.path, "no such file") from None
        except OSError as exc:
            raise CorpusError(self.path, f"cannot open: {exc.strerror}") from None
        try:
            self._size = os.fstat(self._file.fileno()).st_size
            self.header = self._load_header(recover)
        except BaseException:
            self._file.close()
            raise
        self._decompressor = zstandard.ZstdDecompressor()
        self._ends = [c.last_ns for c in self.header.chunks]

    def _load_header(self, recover: bool) -> CorpusHeader:
        fields, meta = _read_header(self.path, self._file, self._size)
        complete = fields[6] != 0
        data_start = HEADER_SIZE + fields[7]
        if complete and not recover:
            chunks = _chunks_from_index(self.path, self._file, self._size, fields)
            records, duration_ns = fields[3], fields[4]
        elif recover:
            chunks = _chunks_by_scan(self._file, data_start, self._size)
            records = sum(c.records for c in chunks)
            duration_ns = max(fields[4], chunks[-1].last_ns if chunks else 0)
        else:
            raise UnfinishedCorpusError(
                self.path,
                "unfinished corpus (its writer never closed it): `capture inspect` shows its "
                "whole chunks, `capture repair FILE -o OUT` makes them a valid corpus",
                32,
            )
        return CorpusHeader(fields[1], records, duration_ns, meta, tuple(chunks), complete)

    def __enter__(self) -> CorpusReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._file.close()

    @property
    def file_size(self) -> int:
        return self._size

    def _payload(self, chunk: ChunkInfo) -> tuple[bytes, int]:
        """A chunk's compressed payload, checked whole (CRC-32), and its record count."""
        f = self._file
        f.seek(chunk.file_offset)
        head = f.read(CHUNK_HEADER_SIZE)
        if len(head) < CHUNK_HEADER_SIZE:
            raise self._corrupt(chunk, "truncated frame header")
        magic, length, records, crc, first, last = _CHUNK.unpack(head)
        if magic != CHUNK_MAGIC:
            raise self._corrupt(chunk, "frame magic missing")
        if (records, first, last) != (chunk.records, chunk.first_ns, chunk.last_ns):
            raise self._corrupt(
                chunk,
                f"frame says {records} records at {first}..{last} ns, the index "
                f"{chunk.records} at {chunk.first_ns}..{chunk.last_ns} ns",
            )
        if length > self._size - chunk.file_offset - CHUNK_HEADER_SIZE:
            raise self._corrupt(chunk, f"truncated: the frame claims {length:,} bytes")
        payload = f.read(length)
        if len(payload) < length:
            raise self._corrupt(chunk, f"truncated: {len(payload)} of {length} bytes")
        if zlib.crc32(payload) != crc:
            raise self._corrupt(chunk, "checksum mismatch")
        return payload, records

    def _corrupt(self, chunk: ChunkInfo, reason: str) -> CorruptChunkError:
        return CorruptChunkError(self.path, chunk.number, chunk.file_offset, reason)

    def read_chunk(self, chunk: ChunkInfo) -> list[Record]:
        """Decode one chunk at once; raises CorruptChunkError naming it if it is damaged."""
        payload, records = self._payload(chunk)
        self._check_content_size(chunk, payload)
        try:
            wire = msgpack.unpackb(
                self._decompressor.decompress(payload, max_output_size=MAX_CHUNK_RAW),
                use_list=False,
                raw=False,
                ext_hook=_ext_hook,
                **UNPACK_LIMITS,
            )
        except _DECODE_ERRORS as exc:
            raise self._corrupt(chunk, f"undecodable: {exc}") from None
        if not isinstance(wire, tuple) or len(wire) != records:
            count = len(wire) if isinstance(wire, tuple) else "no array of"
            raise self._corrupt(chunk, f"holds {count} records, frame says {records}")
        previous = chunk.first_ns
        for i, fields in enumerate(wire):
            self._check_record(chunk, i, fields, previous)
            previous = fields[0]
        return [Record._make(r) for r in wire]

    def _check_content_size(self, chunk: ChunkInfo, payload: bytes) -> None:
        """Refuse a frame declaring more than a chunk may hold, before inflating it."""
        try:
            declared = zstandard.frame_content_size(payload)
        except zstandard.ZstdError as exc:
            raise self._corrupt(chunk, f"undecodable: {exc}") from None
        if declared > MAX_CHUNK_RAW:
            raise self._corrupt(
                chunk, f"declares {declared:,} bytes of records (at most {MAX_CHUNK_RAW:,})"
            )

    def _check_record(self, chunk: ChunkInfo, i: int, fields: Any, previous_ns: int) -> None:
        """Damage unless the record is well formed and in its chunk's time order."""
        problem = record_problem(fields, ENDPOINTS, IdSpans)
        if problem is None and not previous_ns <= fields[0] <= chunk.last_ns:
            problem = f"offset {fields[0]} ns is out of order"
        if problem:
            raise self._corrupt(
                chunk, f"record {i} (record {chunk.first_seq + i} of the corpus): {problem}"
            )

    def stream_chunk(self, chunk: ChunkInfo) -> Iterator[Record]:
        """Decode one chunk a slice at a time: the same records as `read_chunk`, but no
        single step decompresses or unpacks more than `_STREAM_PIECE` bytes of records, so a
        replay worker pulling records between sends never stalls on a whole chunk. The
        payload's checksum is verified before the first record is given out."""
        payload, records = self._payload(chunk)
        self._check_content_size(chunk, payload)
        unpacker = msgpack.Unpacker(
            use_list=False,
            raw=False,
            ext_hook=_ext_hook,
            max_buffer_size=MAX_CHUNK_RAW,
            **UNPACK_LIMITS,
        )
        inflated = 0
        previous = chunk.first_ns
        try:
            with self._decompressor.stream_reader(payload) as raw:
                piece = raw.read(_STREAM_PIECE)
                inflated += len(piece)
                unpacker.feed(piece)
                count = unpacker.read_array_header()
                if count != records:
                    raise self._corrupt(chunk, f"holds {count} records, frame says {records}")
                for i in range(count):
                    while True:
                        try:
                            record = unpacker.unpack()
                            break
                        except msgpack.OutOfData:
                            piece = raw.read(_STREAM_PIECE)
                            inflated += len(piece)
                            if not piece:
                                raise self._corrupt(chunk, "ends inside a record") from None
                            if inflated > MAX_CHUNK_RAW:
                                raise self._corrupt(
                                    chunk, f"inflates past {MAX_CHUNK_RAW:,} bytes"
                                ) from None
                            unpacker.feed(piece)
                    self._check_record(chunk, i, record, previous)
                    previous = record[0]
                    yield Record._make(record)
        except _DECODE_ERRORS as exc:
            raise self._corrupt(chunk, f"undecodable: {exc}") from None

    def chunks(self, *, shard: int = 0, shards: int = 1, start_ns: int = 0) -> list[ChunkInfo]:
        """The chunks of shard `shard` of `shards` (every k-th chunk) that reach past start_ns."""
        if shards < 1 or not 0 <= shard < shards:
            raise ValueError(f"shard {shard} of {shards} does not exist")
        first = bisect.bisect_left(self._ends, start_ns)
        return [c for c in self.header.chunks[first:] if c.number % shards == shard]

    def iter_chunks(
        self, *, shard: int = 0, shards: int = 1, start_ns: int = 0
    ) -> Iterator[tuple[ChunkInfo, list[Record]]]:
        for chunk in self.chunks(shard=shard, shards=shards, start_ns=start_ns):
            records = self.read_chunk(chunk)
            if chunk.first_ns < start_ns:
                records = [r for r in records if r.offset_ns >= start_ns]
            yield chunk, records

    def records(self, *, shard: int = 0, shards: int = 1, start_ns: int = 0) -> Iterator[Record]:
        """Stream records in time order from start_ns, optionally of one shard of chunks,
        decoding each chunk record by record (`stream_chunk`)."""
        for chunk in self.chunks(shard=shard, shards=shards, start_ns=start_ns):
            if chunk.first_ns < start_ns:
                yield from (r for r in self.stream_chunk(chunk) if r.offset_ns >= start_ns)
            else:
                yield from self.stream_chunk(chunk)

    def __iter__(self) -> Iterator[Record]:
        return self.records()
