"""A worker's shard by chunk: each record once over K workers (and segments), every trace
in one worker, and the same timeline schedule in total as sharding by trace (no network)."""

from __future__ import annotations

import dataclasses
import random
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from worker_shards import NS, OPEN, builder, config, shard

from capture.chunkshard import declare, split_traces
from capture.corpus import CorpusReader, Record, write_corpus
from replay import pacing
from replay.pacing import TimelineEntry
from replay.shard import Shard

PER = 13  # records per chunk


def grouped(tmp_path: Path, source: Path, *, whole: bool, seed: int = 7) -> Path:
    """`source`'s records in chunks of PER, each chunk cut into traces of 1-4 requests that
    never cross a chunk boundary; the header says so when `whole`."""
    rng = random.Random(seed)
    with CorpusReader(source) as reader:
        meta, duration, records = reader.header.meta, reader.header.duration_ns, list(reader)
    named: list[Record] = []
    for start in range(0, len(records), PER):
        chunk = records[start : start + PER]
        at = 0
        while at < len(chunk):
            n = min(rng.randint(1, 4), len(chunk) - at)
            trace = f"t{start}-{at}"
            named += [r._replace(trace=trace) for r in chunk[at : at + n]]
            at += n
    # (synthetic ingestion is known to keep traces whole: undeclared, it names another source)
    meta = declare(meta) if whole else dataclasses.replace(meta, source="recorded")
    path = tmp_path / f"grouped-{whole}.atc"
    write_corpus(path, meta, named, duration_ns=duration, chunk_records=PER)
    return path


def loaded_counting(
    cfg: Any, monkeypatch: pytest.MonkeyPatch
) -> tuple[Shard, list[int], list[tuple[int, int, str]]]:
    """The shard `cfg` describes, loaded with every chunk it decodes counted (their numbers,
    in order) and what its progress heard (every 10 records)."""
    import replay.shard

    decoded: list[int] = []
    stream = CorpusReader.stream_chunk

    def counted(self: CorpusReader, chunk: Any) -> Any:
        decoded.append(chunk.number)
        return stream(self, chunk)

    build = builder(cfg)
    monkeypatch.setattr(CorpusReader, "stream_chunk", counted)
    monkeypatch.setattr(replay.shard, "LOAD_PROGRESS_EVERY", 10)
    heard: list[tuple[int, int, str]] = []
    s = Shard(cfg, build, lambda *a: heard.append(a))
    OPEN.append(s)
    return s, decoded, heard


def entries(s: Shard) -> list[TimelineEntry]:
    return [e for e, _t in s.one_pass()]


@pytest.fixture
def corpora(synth_corpus: Any, tmp_path: Path) -> tuple[Path, Path]:
    source = synth_corpus("ingestion", rate=200, seconds=1)
    whole = grouped(tmp_path, source, whole=True)
    with CorpusReader(whole) as reader:
        assert list(split_traces(reader)) == []  # (the layout keeps traces whole)
    return whole, grouped(tmp_path, source, whole=False)


@pytest.mark.parametrize("cache_bytes", [48 << 20, 1])  # cached, spooled
@pytest.mark.parametrize(("workers", "segments"), [(2, 1), (3, 1), (2, 2), (1, 3)])
def test_over_k_workers_every_record_once_and_every_trace_in_one(
    corpora: tuple[Path, Path], workers: int, segments: int, cache_bytes: int
) -> None:
    whole, _ = corpora
    with CorpusReader(whole) as reader:
        traces = [r.trace for r in reader]
        offsets = [r.offset_ns for r in reader]
        chunks = len(reader.header.chunks)
    everything = shard(config(whole))  # one worker: every record, the whole corpus's gaps
    assert everything.sharding == "trace"  # (one shard: nothing to split)
    expected = entries(everything)
    assert [e.record for e in expected] == list(range(len(traces)))
    got: list[TimelineEntry] = []
    owner: dict[str, tuple[int, int]] = {}
    for segment in range(segments):
        for worker in range(workers):
            s = shard(config(whole, worker=worker, workers=workers, segment=segment,
                             segments=segments, cache_bytes=cache_bytes))  # fmt: skip
            assert s.sharding == "chunk" and s.mine > 0
            assert (s.spool is not None) == (cache_bytes == 1)
            mine = entries(s)
            assert len(mine) == s.mine
            # whole chunks, one shard's of workers x segments
            held = {e.record // PER for e in mine}
            assert len({c % (workers * segments) for c in held}) == 1
            for e in mine:
                assert e.offset_ns == offsets[e.record]
                assert owner.setdefault(traces[e.record] or "", (segment, worker)) == (
                    segment, worker,
                )  # fmt: skip
            got += mine
    assert chunks >= workers * segments
    assert sorted(got, key=lambda e: e.record) == expected  # each once, with its gap


@pytest.mark.parametrize("scale", [1.0, 2.5, 0.4])
@pytest.mark.parametrize("duration", [0.3, 2.5])  # within the first pass; looping
def test_the_timeline_schedule_is_the_trace_sharded_one_in_total(
    corpora: tuple[Path, Path], scale: float, duration: float
) -> None:
    whole, undeclared = corpora
    duration_ns = int(duration * NS)

    def schedule(corpus: Path, expect: str, cache_bytes: int) -> Counter[int]:
        dues: Counter[int] = Counter()
        for worker in range(3):
            s = shard(config(corpus, worker=worker, workers=3, scale=scale,
                             duration_ns=duration_ns, cache_bytes=cache_bytes))  # fmt: skip
            assert s.sharding == expect
            plan = pacing.timeline(s.one_pass, s.records, s.period_ns,
                                   pacing.as_fraction(scale), 1.0, duration_ns)  # fmt: skip
            dues.update(due for due, _t in plan)
        return dues

    by_trace = schedule(undeclared, "trace", 48 << 20)
    assert sum(by_trace.values()) > 0
    assert schedule(whole, "chunk", 48 << 20) == by_trace
    assert schedule(whole, "chunk", 1) == by_trace  # spooled as far as the run reaches


def test_too_few_chunks_or_an_undeclared_corpus_shards_by_trace(
    corpora: tuple[Path, Path],
) -> None:
    whole, undeclared = corpora
    with CorpusReader(whole) as reader:
        chunks = len(reader.header.chunks)
    assert shard(config(undeclared, workers=2)).sharding == "trace"
    assert shard(config(whole, workers=chunks + 1)).sharding == "trace"
    assert shard(config(whole, workers=chunks)).sharding == "chunk"


@pytest.mark.parametrize("beyond", ["on disk", "decoded"])
def test_loading_by_chunk_reads_and_reports_only_this_workers_chunks(
    corpora: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, beyond: str
) -> None:
    # progress counts the records of this worker's chunks (chunks 1, 3, 5, ... for worker 1
    # of 2), and no other chunk is decoded. A shard whose chunks take more than the cache on
    # disk is spooled without being measured (each chunk decoded once); one that only
    # decodes to more than the cache is measured first, then spooled
    whole, _ = corpora
    with CorpusReader(whole) as reader:
        chunks = reader.header.chunks
        decoded_size = sum(
            len(r.body) + len(r.path) + 512
            for c in chunks if c.number % 2 == 1 for r in reader.read_chunk(c)
        )  # fmt: skip
    mine = sum(c.records for c in chunks if c.number % 2 == 1)
    packed = sum(
        chunks[c.number + 1].file_offset - c.file_offset
        for c in chunks[:-1] if c.number % 2 == 1
    )  # fmt: skip
    assert 0 < packed < decoded_size
    cache = packed - 1 if beyond == "on disk" else packed
    cfg = config(whole, worker=1, workers=2, cache_bytes=cache)
    s, decoded, heard = loaded_counting(cfg, monkeypatch)
    assert s.mine == mine and s.spool is not None and s.spool.count == mine
    every = list(range(10, mine + 1, 10))
    spooling = [(n, mine, "spool") for n in every]
    if beyond == "on disk":
        assert heard == spooling
        assert sorted(decoded) == [c.number for c in chunks if c.number % 2 == 1]
    else:
        assert heard == [(n, mine, "read") for n in every] + spooling
        assert {n % 2 for n in decoded} == {1}


def test_a_worker_says_how_its_shard_was_cut(corpora: tuple[Path, Path]) -> None:
    from replay.worker import Worker

    whole, undeclared = corpora
    said = []
    for corpus in (whole, undeclared):
        cfg = config(corpus, worker=1, workers=2, model="rate", rate=10.0, max_inflight=0)
        worker = Worker(cfg, None)
        info = worker.load()
        assert worker.shard is not None
        worker.shard.close()
        said.append(info["sharding"])
    assert said == ["chunk", "trace"]


@pytest.mark.parametrize("beyond", ["on disk", "decoded"])
def test_a_worker_alone_sizes_the_whole_corpus_from_its_header(
    corpora: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, beyond: str
) -> None:
    # One worker's shard is the whole corpus, even sharded by trace: when its chunks take
    # more than the cache on disk it is spooled without being measured (each chunk decoded
    # once, progress only while spooling); when only its decoded size is beyond the cache
    # it is measured first, as before
    _, by_trace = corpora
    with CorpusReader(by_trace) as reader:
        chunks, total = reader.header.chunks, reader.header.records
    packed = chunks[-1].file_offset - chunks[0].file_offset  # every chunk but the last
    cache = packed - 1 if beyond == "on disk" else packed
    cfg = config(by_trace, cache_bytes=cache)
    s, decoded, heard = loaded_counting(cfg, monkeypatch)
    assert s.sharding == "trace" and s.mine == total
    assert s.spool is not None and s.spool.count == total
    spooling = [(n, total, "spool") for n in range(10, total + 1, 10)]
    if beyond == "on disk":
        assert heard == spooling
        assert decoded == [c.number for c in chunks]
    else:
        assert heard == [(n, total, "read") for n in range(10, total + 1, 10)] + spooling
        assert decoded == [c.number for c in chunks] * 2
