"""Sharding by chunk: each record exactly once over K readers, every trace in one reader."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from capture.chunkshard import (
    Split,
    chunk_shard,
    declare,
    split_traces,
    walk_chunks,
    whole_trace_chunks,
)
from capture.corpus import CorpusMeta, CorpusReader, Record, write_corpus
from capture.synth import SynthSpec, corpus_meta, synthesize
from corpora import bundled_path

META = CorpusMeta("ingestion", "test", "2026-01-01T00:00:00Z")


def request(offset_ns: int, trace: str | None) -> Record:
    return Record(offset_ns, "ingest", "POST", "/api/public/traces", (), b"{}", (), (), trace)


@st.composite
def whole_trace_layouts(draw: st.DrawFn) -> tuple[int, list[str | None]]:
    """(records per chunk, the trace of each record): chunks of `per` records (the last one
    may be shorter), each cut into traces of 1-4 requests or trace-less records, so that no
    trace crosses a chunk boundary."""
    per = draw(st.integers(1, 8))
    chunks = draw(st.integers(1, 12))
    traces: list[str | None] = []
    for chunk in range(chunks):
        size = per if chunk < chunks - 1 else draw(st.integers(1, per))
        left, group = size, 0
        while left:
            n = draw(st.integers(1, min(4, left)))
            name = None if draw(st.booleans()) and n == 1 else f"c{chunk}-g{group}"
            traces += [name] * n
            left, group = left - n, group + 1
    return per, traces


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(layout=whole_trace_layouts())
def test_over_k_readers_each_record_once_and_every_trace_in_one(
    layout: tuple[int, list[str | None]], tmp_path: Path
) -> None:
    per, traces = layout
    records = [request(i * 1000, trace) for i, trace in enumerate(traces)]
    path = write_corpus(
        tmp_path / "c.atc", declare(META), records, duration_ns=len(records) * 1000,
        chunk_records=per,
    )  # fmt: skip
    with CorpusReader(path) as reader:
        assert whole_trace_chunks(reader.header)
        assert list(split_traces(reader)) == []
        for shards in range(1, 6):
            seen: list[int] = []
            owner: dict[str | None, set[int]] = defaultdict(set)
            for shard in range(shards):
                got = list(chunk_shard(reader, shard, shards))
                assert [i for i, _r in got] == sorted(i for i, _r in got)  # corpus order
                for index, record in got:
                    assert record == records[index]
                    seen.append(index)
                    owner[record.trace].add(shard)
            assert sorted(seen) == list(range(len(records)))  # each exactly once
            assert all(len(owner[t]) == 1 for t in owner if t is not None)


def test_a_trace_across_chunks_is_found_and_is_why_the_header_must_say(tmp_path: Path) -> None:
    # chunks of 2: [a, b] [c, a] -> a is split, and chunk sharding over 2 readers parts it
    records = [request(i, t) for i, t in enumerate(["a", "b", "c", "a"])]
    path = write_corpus(tmp_path / "c.atc", META, records, duration_ns=10, chunk_records=2)
    with CorpusReader(path) as reader:
        assert not whole_trace_chunks(reader.header)
        assert list(split_traces(reader)) == [Split("a", 0, 1, 3)]
        shards = [{r.trace for _i, r in chunk_shard(reader, s, 2)} for s in range(2)]
    assert "a" in shards[0] and "a" in shards[1]


def test_synthetic_ingestion_is_known_to_keep_traces_whole(tmp_path: Path) -> None:
    spec = SynthSpec("ingestion", 200.0, 3 * 10**9, seed=4)
    path = write_corpus(
        tmp_path / "i.atc", corpus_meta(spec), synthesize(spec), duration_ns=spec.duration_ns,
        chunk_records=7,
    )  # fmt: skip
    with CorpusReader(path) as reader:
        assert len(reader.header.chunks) > 50
        assert whole_trace_chunks(reader.header)
        assert list(split_traces(reader)) == []


def test_mixed_and_query_corpora_are_not_assumed_whole() -> None:
    with CorpusReader(bundled_path("mixed")) as reader:
        assert not whole_trace_chunks(reader.header)
        assert next(split_traces(reader), None) is not None  # its gets read earlier traces
    with CorpusReader(bundled_path("query")) as reader:
        assert not whole_trace_chunks(reader.header)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    offsets=st.lists(st.integers(0, 50), min_size=1, max_size=40),
    per=st.integers(1, 6),
    shards=st.integers(1, 4),
    after=st.integers(-1, 45),
)
def test_a_chunk_walk_has_the_whole_corpus_gaps(
    offsets: list[int], per: int, shards: int, after: int, tmp_path: Path
) -> None:
    # the gap after a record is to the next record of the corpus, whichever shard holds it
    times = sorted(offsets)
    records = [request(t, f"t{i}") for i, t in enumerate(times)]
    path = write_corpus(
        tmp_path / "w.atc", declare(META), records, duration_ns=100, chunk_records=per
    )
    period = times[-1] + 7
    expected = {
        i: (times[i + 1] if i + 1 < len(times) else period) - times[i]
        for i in range(after + 1, len(times))
    }
    got: dict[int, int] = {}
    with CorpusReader(path) as reader:
        for shard in range(shards):
            for index, gap, record in walk_chunks(reader, shard, shards, period, after):
                assert index not in got and record == records[index]
                got[index] = gap
    assert got == expected
