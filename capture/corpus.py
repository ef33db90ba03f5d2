"""The corpus format: a fixed header, zstd-compressed msgpack chunks, and a chunk index.

A corpus is the unit of traffic that flows capture -> replay. The byte layout is specified in
docs/corpus-format.md (format version 1); this module is its only reader and writer.

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
import struct
import zlib
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path
from types import TracebackType
from typing import IO, Any, NamedTuple, overload

import msgpack
import zstandard

from capture.corpus_check import (
    MAX_CHUNK_BYTES,
    MAX_CHUNK_RAW,
    MAX_CHUNK_RECORDS,
    MAX_META,
    UNPACK_LIMITS,
    index_problem,
    record_problem,
    writable_problem,
)

MAGIC = b"ATCORPUS"
FORMAT_VERSION = 1
CHUNK_MAGIC = b"CHNK"
INDEX_MAGIC = b"INDX"

# magic, version, flags, records, duration_ns, chunks, index_offset, meta_len, crc32
_HEADER = struct.Struct(">8sHHQQIQII")
# magic, compressed length, records, crc32 of the compressed payload, first and last offset
_CHUNK = struct.Struct(">4sIIIQQ")
# magic, payload length, crc32 of the payload
_INDEX = struct.Struct(">4sII")
HEADER_SIZE = _HEADER.size
CHUNK_HEADER_SIZE = _CHUNK.size

ENDPOINTS = ("ingest", "list", "get", "search", "metrics", "graphql", "project", "batch", "other")

# Headers that carry credentials never enter a corpus: replay adds the target's own key.
SECRET_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key", "api-key"}
)


class IdKind(IntEnum):
    """What an id span holds, so that replay knows how to rewrite it."""

    TRACE = 0  # the id field of a trace: replay mints a fresh id of the same length
    TRACE_REF = 1  # any other occurrence of a trace id (trace_id fields, names, paths)
    OBSERVATION = 2  # the id field of an observation
    OBSERVATION_REF = 3  # a reference to an observation (parent_observation_id)
    TIMESTAMP = 4  # an ISO-8601 UTC timestamp, moved to the replay's clock
    PROJECT = 5  # a project id, replaced by the target's project


IdSpan = tuple[int, int, int]
"""(start, length, kind): bytes [start, start+length) of a body or path hold an id of a kind."""

_SPAN = struct.Struct("<IHB")  # start, length, kind: 7 bytes a span on disk
_SPANS_EXT = 1  # msgpack extension type code of a packed span array


class IdSpans(Sequence[IdSpan]):
    """The id spans of a body or path, kept packed as they are on disk.

    An ingestion record has ~30 spans; decoding them into tuples on every read cost more
    than the rest of the record together (10 us of 13). Kept packed, a read costs one small
    object, and the spans are unpacked only by whoever iterates them: replay does that
    once per record when it builds the request template.
    """

    __slots__ = ("packed",)

    def __init__(self, packed: bytes = b"") -> None:
        if len(packed) % _SPAN.size:
            raise ValueError(f"packed spans of {len(packed)} bytes: not a multiple of {_SPAN.size}")
        self.packed = bytes(packed)

    @classmethod
    def of(cls, spans: Iterable[IdSpan]) -> IdSpans:
        if isinstance(spans, IdSpans):
            return spans
        return cls(b"".join(_SPAN.pack(start, length, kind) for start, length, kind in spans))

    def __iter__(self) -> Iterator[IdSpan]:
        return _SPAN.iter_unpack(self.packed)

    def __len__(self) -> int:
        return len(self.packed) // _SPAN.size

    @overload
    def __getitem__(self, index: int) -> IdSpan: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[IdSpan]: ...
    def __getitem__(self, index: int | slice) -> IdSpan | Sequence[IdSpan]:
        return tuple(self)[index]

    def __eq__(self, other: object) -> bool:
        if isinstance(other, IdSpans):
            return self.packed == other.packed
        if isinstance(other, Sequence):
            return tuple(self) == tuple(other)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(tuple(self))

    def __repr__(self) -> str:
        return f"IdSpans({list(self)!r})"


def _ext_hook(code: int, data: bytes) -> object:
    if code == _SPANS_EXT:
        return IdSpans(data)
    raise ValueError(f"unknown msgpack extension type {code}")


def _spans_to_wire(spans: Sequence[IdSpan]) -> msgpack.ExtType | list[Any]:
    return msgpack.ExtType(_SPANS_EXT, IdSpans.of(spans).packed) if spans else []


class Record(NamedTuple):
    """One request. Field order is the on-disk order of format version 1."""

    offset_ns: int  # when it was sent, from the corpus start
    endpoint: str  # one of ENDPOINTS
    method: str
    path: str  # path with query string, no scheme or host
    headers: tuple[tuple[str, str], ...]
    body: bytes
    body_ids: Sequence[IdSpan] = ()  # an IdSpans when read from a corpus
    path_ids: Sequence[IdSpan] = ()
    trace: str | None = None  # the trace this request belongs to, for sharding by trace
    status: int | None = None  # recorded response status, when recorded from real traffic
    latency_ns: int | None = None  # recorded response latency


@dataclass(frozen=True)
class CorpusMeta:
    """What a corpus is: kept in the header, shown by `capture inspect`."""

    workload: str
    source: str
    created: str  # ISO-8601 UTC; for synthesised corpora the synthetic start of the traffic
    seed: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_wire(self) -> dict[str, Any]:
        return {
            "workload": self.workload,
            "source": self.source,
            "created": self.created,
            "seed": self.seed,
            "extra": self.extra,
        }

    @classmethod
    def from_wire(cls, obj: Any) -> CorpusMeta:
        if not isinstance(obj, dict):
            raise TypeError("metadata is not a map")
        extra = obj.get("extra") or {}
        if not isinstance(extra, dict):
            raise TypeError("metadata 'extra' is not a map")
        return cls(
            workload=str(obj.get("workload", "")),
            source=str(obj.get("source", "")),
            created=str(obj.get("created", "")),
            seed=obj.get("seed"),
            extra=extra,
        )


class ChunkInfo(NamedTuple):
    """One index entry, plus the number of records in the chunks before it."""

    number: int  # position in the file, from 0
    file_offset: int
    records: int
    first_ns: int
    last_ns: int
    first_seq: int


@dataclass(frozen=True)
class CorpusHeader:
    version: int
    records: int
    duration_ns: int
    meta: CorpusMeta
    chunks: tuple[ChunkInfo, ...]
    complete: bool  # False for a corpus whose writer never finished (read with recover=True)


# --- errors ------------------------------------------------------------------------------


class CorpusError(Exception):
    """A corpus that cannot be read: names the file and, where it applies, the byte offset."""

    def __init__(self, path: str | os.PathLike[str], message: str, offset: int | None = None):
        self.path = str(path)
        self.offset = offset
        self.detail = message
        where = f" at byte {offset}" if offset is not None else ""
        super().__init__(f"{self.path}{where}: {message}")


class UnsupportedVersionError(CorpusError):
    """The corpus was written by a newer format version than this reader knows."""


class CorruptChunkError(CorpusError):
    """A chunk failed its checksum or did not decode; every record before it was delivered."""

    def __init__(self, path: str | os.PathLike[str], chunk: int, offset: int, reason: str):
        self.chunk = chunk
        super().__init__(path, f"chunk {chunk} is corrupt: {reason}", offset)


# --- writing -----------------------------------------------------------------------------


def scrub_headers(headers: Iterable[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    """Drop credentials (Authorization, cookies, API keys): they never enter a corpus."""
    return tuple((k, v) for k, v in headers if k.lower() not in SECRET_HEADERS)


def _record_to_wire(record: Record) -> list[Any]:
    return [
        record.offset_ns,
        record.endpoint,
        record.method,
        record.path,
        [list(h) for h in scrub_headers(record.headers)],
        bytes(record.body),
        _spans_to_wire(record.body_ids),
        _spans_to_wire(record.path_ids),
        record.trace,
        record.status,
        record.latency_ns,
    ]


class CorpusWriter:
    """Writes records, in non-decreasing offset order, to a new corpus file.

    The file is written as ``PATH.partial`` and renamed into place by ``close()``, so a
    reader never sees half a corpus under the final name. On an exception inside a ``with``
    block the partial file is removed, unless ``keep_partial=True`` (a recorder keeps what
    it captured: the partial file reads with ``CorpusReader(path, recover=True)``).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        meta: CorpusMeta,
        *,
        duration_ns: int | None = None,
        chunk_records: int = 2048,
        chunk_bytes: int = 1 << 20,
        level: int = 3,
        keep_partial: bool = False,
        meta_reserve: int = 0,
    ) -> None:
        if not (0 < chunk_records <= MAX_CHUNK_RECORDS and 0 < chunk_bytes <= MAX_CHUNK_BYTES):
            raise ValueError(
                f"chunk_records must be 1 to {MAX_CHUNK_RECORDS} and chunk_bytes 1 to "
                f"{MAX_CHUNK_BYTES}"
            )
        self.path = Path(path)
        self.partial_path = self.path.with_name(self.path.name + ".partial")
        self.meta = meta
        self._declared_duration_ns = duration_ns
        self._chunk_records = chunk_records
        self._chunk_bytes = chunk_bytes
        self._keep_partial = keep_partial
        self._compressor = zstandard.ZstdCompressor(level=level, write_checksum=False)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="corpus-zstd")
        self._compressing: deque[tuple[Future[bytes], int, int, int]] = deque()
        self._packer = msgpack.Packer(use_bin_type=True)
        self._pending: list[list[Any]] = []
        self._pending_bytes = 0
        self._index: list[list[int]] = []
        self._records = 0
        self._last_ns = 0
        self._closed = False
        self._meta_bytes = self._packer.pack(meta.to_wire())
        if meta_reserve > 0:
            self._meta_bytes = _pack_meta(meta, _padded_base(meta) + meta_reserve)
        self._file: IO[bytes] = open(self.partial_path, "wb")  # noqa: SIM115 - closed in close()
        self._file.write(self._header_bytes(records=0, duration_ns=0, chunks=0, index_offset=0))

    def __enter__(self) -> CorpusWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def write(self, record: Record) -> None:
        if self._closed:
            raise ValueError("write to a closed corpus writer")
        if record.offset_ns < self._last_ns:
            raise ValueError(
                f"records must be in time order: offset {record.offset_ns} ns "
                f"after {self._last_ns} ns"
            )
        if record.endpoint not in ENDPOINTS:
            raise ValueError(f"unknown endpoint tag {record.endpoint!r}")
        problem = writable_problem(
            record.offset_ns, record.method, record.path, record.headers, record.body
        )
        if problem:
            raise ValueError(f"record at {record.offset_ns} ns cannot be written: {problem}")
        self._last_ns = record.offset_ns
        wire = _record_to_wire(record)
        self._pending.append(wire)
        self._pending_bytes += len(record.body) + len(record.path) + 64
        if len(self._pending) >= self._chunk_records or self._pending_bytes >= self._chunk_bytes:
            self._flush_chunk()

    def write_all(self, records: Iterable[Record]) -> None:
        for record in records:
            self.write(record)

    def flush(self) -> None:
        """Put every record written so far into whole chunks on disk (a recorder calls this
        now and then, so that a crash loses at most what came since)."""
        self._flush_chunk()
        self._write_compressed(keep=0)
        self._file.flush()

    def set_meta(self, meta: CorpusMeta) -> None:
        """Replace the metadata before `close()`: only within the room the writer was opened
        with (`meta_reserve` bytes more than the first metadata took), else ValueError."""
        self._meta_bytes = _pack_meta(meta, len(self._meta_bytes))
        self.meta = meta

    def _flush_chunk(self) -> None:
        """Hand the pending records to the compression thread; write what it has finished.

        zstd releases the GIL, so compressing chunk k on a thread while the caller builds
        chunk k+1 overlaps the two. At most two chunks wait, which bounds memory.
        """
        if not self._pending:
            return
        raw = self._packer.pack(self._pending)
        self._compressing.append(
            (
                self._pool.submit(self._compressor.compress, raw),
                len(self._pending),
                self._pending[0][0],
                self._pending[-1][0],
            )
        )
        self._pending = []
        self._pending_bytes = 0
        self._write_compressed(keep=2)

    def _write_compressed(self, keep: int) -> None:
        while len(self._compressing) > keep:
            future, records, first_ns, last_ns = self._compressing.popleft()
            payload = future.result()
            offset = self._file.tell()
            self._file.write(
                _CHUNK.pack(
                    CHUNK_MAGIC, len(payload), records, zlib.crc32(payload), first_ns, last_ns
                )
            )
            self._file.write(payload)
            self._index.append([offset, records, first_ns, last_ns])
            self._records += records

    def _header_bytes(
        self, *, records: int, duration_ns: int, chunks: int, index_offset: int
    ) -> bytes:
        fields = (MAGIC, FORMAT_VERSION, 0, records, duration_ns, chunks, index_offset)
        unsigned = _HEADER.pack(*fields, len(self._meta_bytes), 0)
        crc = zlib.crc32(self._meta_bytes, zlib.crc32(unsigned))
        return _HEADER.pack(*fields, len(self._meta_bytes), crc) + self._meta_bytes

    def close(self, duration_ns: int | None = None) -> Path:
        """Flush, write the index, patch the header and move the file into place; a
        `duration_ns` given here replaces the one given when the writer was opened."""
        if self._closed:
            return self.path
        if duration_ns is not None:
            self._declared_duration_ns = duration_ns
        self._flush_chunk()
        self._write_compressed(keep=0)
        self._pool.shutdown()
        index_offset = self._file.tell()
        index_payload = self._packer.pack(self._index)
        self._file.write(_INDEX.pack(INDEX_MAGIC, len(index_payload), zlib.crc32(index_payload)))
        self._file.write(index_payload)
        duration_ns = max(self._declared_duration_ns or 0, self._last_ns)
        self._file.seek(0)
        self._file.write(
            self._header_bytes(
                records=self._records,
                duration_ns=duration_ns,
                chunks=len(self._index),
                index_offset=index_offset,
            )
        )
        self._file.close()
        os.replace(self.partial_path, self.path)
        self._closed = True
        return self.path

    def abort(self) -> None:
        """Stop writing; keep a readable partial file only if asked to."""
        if self._closed:
            return
        self._closed = True
        if self._keep_partial:
            self._flush_chunk()
            self._write_compressed(keep=0)
        self._pool.shutdown(cancel_futures=True)
        self._file.close()
        if not self._keep_partial:
            self.partial_path.unlink(missing_ok=True)


def _padded_base(meta: CorpusMeta) -> int:
    """Bytes of the metadata map with an empty `pad` entry."""
    return len(msgpack.packb({**meta.to_wire(), "pad": b""}, use_bin_type=True))


def _pack_meta(meta: CorpusMeta, size: int) -> bytes:
    """The metadata map, padded to exactly `size` bytes with a bin entry that readers ignore:
    `pad`, or `pad_`/`pad__` for the sizes msgpack's bin heads (2, 3 or 5 bytes) would skip.
    ValueError when it does not fit."""
    base = _padded_base(meta)
    for longer in range(3):
        room = size - base - longer
        n = room if room <= 255 else room - 1 if room <= 65536 else room - 3
        wire = {**meta.to_wire(), "pad" + "_" * longer: bytes(max(n, 0))}
        packed: bytes = msgpack.packb(wire, use_bin_type=True)
        if len(packed) == size:
            return packed
    raise ValueError(f"metadata of {base} bytes does not fit in {size}")


def write_corpus(
    path: str | os.PathLike[str],
    meta: CorpusMeta,
    records: Iterable[Record],
    *,
    duration_ns: int | None = None,
    **options: Any,
) -> Path:
    """Write a whole corpus from an iterable of records."""
    with CorpusWriter(path, meta, duration_ns=duration_ns, **options) as writer:
        writer.write_all(records)
    return Path(path)


# --- reading -----------------------------------------------------------------------------


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
            raise CorpusError(
                self.path,
                "unfinished corpus (its writer never closed it); read it with recover=True "
                "or `capture inspect --recover`",
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
