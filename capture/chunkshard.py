"""Sharding a corpus by chunk: each of K readers decodes only its own chunks, and still every
trace's requests reach one reader.

Sharding record by record (a hash of the trace id) keeps a trace's requests together but
makes every reader decode the whole corpus to find its share, so the total work grows with
the number of readers. Sharding by chunk (`CorpusReader.chunks(shard=, shards=)`: chunk n
goes to reader n mod K) costs each reader only its share, and keeps traces together exactly
when no trace has requests in two chunks. The format cannot say that by itself, so it is
known one of two ways, both read from the header alone (`whole_trace_chunks`):

- the writer declares it: `CorpusMeta.extra[WHOLE_TRACE_CHUNKS]` is true (`declare()`), for
  a writer that cuts chunks only between traces;
- the writer is known to make it so: `capture synth --workload ingestion` writes every trace
  as one request (its model: each arrival is a new trace), so no trace can span chunks.

`split_traces()` checks a corpus the long way (it decodes every chunk and keeps one entry per
trace), for tests and for a writer that wants to verify before it declares.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import NamedTuple

from capture.corpus import CorpusHeader, CorpusMeta, CorpusReader, Record

WHOLE_TRACE_CHUNKS = "whole_trace_chunks"  # CorpusMeta.extra key: no trace spans two chunks

# (source, workload) of writers whose model puts every trace in one request
_ONE_REQUEST_TRACES = frozenset({("synth", "ingestion")})


def declare(meta: CorpusMeta) -> CorpusMeta:
    """`meta` saying that no trace of the corpus has requests in two chunks."""
    return dataclasses.replace(meta, extra={**meta.extra, WHOLE_TRACE_CHUNKS: True})


def whole_trace_chunks(header: CorpusHeader) -> bool:
    """Whether no trace of this corpus has requests in two chunks, known from its header."""
    meta = header.meta
    if meta.extra.get(WHOLE_TRACE_CHUNKS) is True:
        return True
    return (meta.source, meta.workload) in _ONE_REQUEST_TRACES


class Split(NamedTuple):
    """A trace with requests in two chunks: where it was first seen, and where again."""

    trace: str
    first_chunk: int
    chunk: int
    record: int  # corpus index of the request in `chunk`


def split_traces(reader: CorpusReader) -> Iterator[Split]:
    """Every request whose trace already had a request in an earlier chunk (decodes the whole
    corpus; memory grows with the number of traces)."""
    first: dict[str, int] = {}
    for chunk, records in reader.iter_chunks():
        for position, record in enumerate(records):
            if record.trace is None:
                continue
            seen = first.setdefault(record.trace, chunk.number)
            if seen != chunk.number:
                yield Split(record.trace, seen, chunk.number, chunk.first_seq + position)


def chunk_shard(reader: CorpusReader, shard: int, shards: int) -> Iterator[tuple[int, Record]]:
    """(corpus index, record) of shard `shard` of `shards` by chunk, in corpus order, decoding
    only that shard's chunks. Trace affinity holds when `whole_trace_chunks(reader.header)`."""
    for chunk in reader.chunks(shard=shard, shards=shards):
        yield from enumerate(reader.stream_chunk(chunk), chunk.first_seq)


def walk_chunks(
    reader: CorpusReader, shard: int, shards: int, period_ns: int, after: int = -1
) -> Iterator[tuple[int, int, Record]]:
    """(corpus index, gap, record) of shard `shard` of `shards` by chunk, after corpus index
    `after`: `gap` is the time to the next record of the whole corpus (or to `period_ns` for
    the last), taken from the next chunk's first offset in the index at a chunk's end, so the
    chunks of other shards are never decoded."""
    chunks = reader.header.chunks
    for chunk in reader.chunks(shard=shard, shards=shards):
        if chunk.first_seq + chunk.records <= after + 1:
            continue
        following = chunks[chunk.number + 1].first_ns if chunk.number + 1 < len(chunks) else None
        end_ns = period_ns if following is None else following
        held: Record | None = None
        index = chunk.first_seq - 1
        for record in reader.stream_chunk(chunk):
            if held is not None and index > after:
                yield index, record.offset_ns - held.offset_ns, held
            held, index = record, index + 1
        if held is not None and index > after:
            yield index, end_ns - held.offset_ns, held
