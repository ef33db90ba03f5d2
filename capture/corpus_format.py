"""The corpus format's vocabulary: its constants, record and metadata types, id spans,
errors, and the wire form of a record. corpus_writer.py writes it and corpus.py reads it;
docs/corpus-format.md gives the bytes."""

from __future__ import annotations

import os
import struct
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from itertools import chain
from typing import Any, NamedTuple, overload

import msgpack

from capture.errors import InputError

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
        """`spans` (3-tuples) packed by one `struct.pack` call (struct.error out of range)."""
        if isinstance(spans, IdSpans):
            return spans
        spans = tuple(spans)
        return cls(struct.pack("<" + "IHB" * len(spans), *chain.from_iterable(spans)))

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


class CorpusError(InputError):
    """A corpus that cannot be read: names the file and, where it applies, the byte offset.
    It is bad input like any other (capture.errors.InputError), only built from the corpus's
    own terms."""

    def __init__(self, path: str | os.PathLike[str], message: str, offset: int | None = None):
        self.offset = offset
        self.detail = message
        where = f"byte {offset}" if offset is not None else ""
        super().__init__(message, path=path, where=where)
        self.args = (f"{self.path}{f' at {where}' if where else ''}: {message}",)

    def __str__(self) -> str:
        return str(self.args[0])


class UnsupportedVersionError(CorpusError):
    """The corpus was written by a newer format version than this reader knows."""


class UnfinishedCorpusError(CorpusError):
    """The corpus's writer never closed it (no index, as a crash leaves it): sound up to its
    last whole chunk, readable with ``recover=True``."""


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
