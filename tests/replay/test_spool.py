"""The template spool, alone and as a worker's shard uses it (no network)."""

from __future__ import annotations

import errno
import itertools
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from worker_shards import ENCODER, NS, config, shard

from capture.corpus import CorpusReader, write_corpus
from corpora import bundled_path
from replay import rewrite, spool
from replay.config import WorkerConfig
from replay.pacing import TimelineEntry
from replay.shard import Shard, most_requests
from replay.spool import TemplateSpool


def templates_of(corpus: Path) -> list[tuple[TimelineEntry, rewrite.Template]]:
    minter = rewrite.IdMinter(0, 5)
    with CorpusReader(corpus) as reader:
        created = rewrite.created_ms(reader.header.meta.created)
        records = list(reader.records())

    def build(record: Any) -> rewrite.Template:
        return rewrite.build_template(
            record, request_start=ENCODER.request_start, head_end=ENCODER.head_end,
            minter=minter, created_ms=created, project_id="proj-x",
        )  # fmt: skip

    return [(TimelineEntry(i, r.offset_ns, 7), build(r)) for i, r in enumerate(records)]


def flat(entry: TimelineEntry, template: rewrite.Template) -> tuple[object, ...]:
    """Every field of the pair, as a plain tuple (as a spool frame holds it)."""
    return (*entry, *template)  # (a body is a Part: a tuple too)


def rendered(template: Any, serial: int) -> bytes:
    stamps = rewrite.Stamps()
    return bytes(template.render(rewrite.serial_hex(serial), 1234, b"t" * 32, stamps.iso))


BUNDLED = {name: templates_of(bundled_path(name)) for name in ("ingestion", "query", "mixed")}


@pytest.mark.parametrize("name", sorted(BUNDLED))
def test_every_bundled_template_comes_back_the_same_pass_after_pass(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(spool, "FRAME_BYTES", 4096)  # many frames, some with one template
    items = BUNDLED[name]
    with TemplateSpool() as s:
        for entry, template in items:
            s.add(entry, template)
        s.finish()
        first, second = list(s.read()), list(s.read())
    assert s.count == len(items) and s.last_record == items[-1][0].record
    assert s.has_read == any(t.has_read for _e, t in items)
    assert s.bytes_on_disk > 0
    for got in (first, second):
        assert [e for e, _t in got] == [e for e, _t in items]
        assert [flat(e, t) for e, t in got] == [flat(e, t) for e, t in items]
        assert [rendered(t, 77) for _e, t in got] == [rendered(t, 77) for _e, t in items]


def test_passes_read_independently_of_each_other(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(spool, "FRAME_BYTES", 2048)
    items = BUNDLED["mixed"]
    with TemplateSpool() as s:
        for entry, template in items:
            s.add(entry, template)
        s.finish()
        a, b = s.read(), s.read()
        interleaved = [(next(a)[0], next(b)[0]) for _ in range(len(items))]
        assert next(a, None) is None and next(b, None) is None
    assert [x for x, _y in interleaved] == [e for e, _t in items]
    assert all(x == y for x, y in interleaved)


def test_reading_before_finish_is_refused() -> None:
    with TemplateSpool() as s:
        s.add(*BUNDLED["query"][0])
        with pytest.raises(RuntimeError, match="before finish"):
            next(s.read())


@settings(max_examples=60, deadline=None)
@given(
    picks=st.lists(st.integers(0, 10_000), min_size=0, max_size=60),
    frame=st.integers(1, 20_000),
    read=st.integers(1, 40_000),
)
def test_any_selection_round_trips_at_any_frame_size(
    picks: list[int], frame: int, read: int
) -> None:
    # frames smaller and larger than a read: a frame may begin in one read and end in the next
    pool = BUNDLED["ingestion"] + BUNDLED["query"]
    items = [pool[p % len(pool)] for p in picks]
    saved, spool.FRAME_BYTES = spool.FRAME_BYTES, frame
    saved_read, spool.READ_BYTES = spool.READ_BYTES, read
    try:
        with TemplateSpool() as s:
            for entry, template in items:
                s.add(entry, template)
            s.finish()
            got = list(s.read())
    finally:
        spool.FRAME_BYTES, spool.READ_BYTES = saved, saved_read
    assert [flat(e, t) for e, t in got] == [flat(e, t) for e, t in items]


@settings(max_examples=60, deadline=None)
@given(
    picks=st.lists(st.integers(0, 10_000), min_size=0, max_size=60),
    frame=st.integers(1, 20_000),
    read=st.integers(1, 40_000),
    steps=st.lists(st.integers(0, 12), min_size=1, max_size=30).filter(any),
)
def test_a_pass_that_follows_the_writer_sees_what_a_finished_pass_sees(
    picks: list[int], frame: int, read: int, steps: list[int]
) -> None:
    # sending starts before the spool is complete: adds and reads take turns, `steps` saying
    # how many templates each turn adds; the follower gets every template, in order, once
    pool = BUNDLED["ingestion"] + BUNDLED["query"]
    items = [pool[p % len(pool)] for p in picks]
    saved = spool.FRAME_BYTES, spool.READ_BYTES
    spool.FRAME_BYTES, spool.READ_BYTES = frame, read
    try:
        with TemplateSpool() as s:
            follower = s.follow()
            got: list[tuple[TimelineEntry, rewrite.Template]] = []
            waits, added, turns = 0, 0, itertools.cycle(steps)
            while added < len(items) or not s.finished:
                n = next(turns)
                for entry, template in items[added : added + n]:
                    s.add(entry, template)
                added = min(added + n, len(items))
                if added == len(items):
                    s.finish()
                for item in follower:  # until it has caught up, or to the end once finished
                    if item is None:
                        waits += 1
                        break
                    got.append(item)
                    assert len(got) <= s.count  # never a template before it was added
            assert next(follower, "over") == "over"
            after = list(s.read())
    finally:
        spool.FRAME_BYTES, spool.READ_BYTES = saved
    expected = [flat(e, t) for e, t in items]
    assert [flat(e, t) for e, t in got] == expected
    assert [flat(e, t) for e, t in after] == expected
    assert [rendered(t, 5) for _e, t in got] == [rendered(t, 5) for _e, t in items]
    if len(items) > 1 and frame == 1 and steps[0] <= 1:
        assert waits > 0  # a frame per template, at most one in the first turn: caught up


# --- as a worker's shard --------------------------------------------------------------------


def multi_chunk(tmp_path: Path, source: Path, chunk_records: int) -> Path:
    """`source` rewritten with `chunk_records` records per chunk (many chunks)."""
    with CorpusReader(source) as reader:
        meta, duration, records = reader.header.meta, reader.header.duration_ns, list(reader)
    return write_corpus(
        tmp_path / f"chunked-{chunk_records}.atc", meta, records,
        duration_ns=duration, chunk_records=chunk_records,
    )  # fmt: skip


def a_pass(s: Shard) -> list[tuple[TimelineEntry, bytes]]:
    return [(e, rendered(t, 5)) for e, t in s.one_pass()]


@pytest.mark.parametrize("workers", [1, 3])
def test_a_spooled_shard_is_the_cached_shard(
    synth_corpus: Any, tmp_path: Path, workers: int
) -> None:
    corpus = multi_chunk(tmp_path, synth_corpus("mixed", rate=150, seconds=2), 37)
    for worker in range(workers):
        cached = shard(config(corpus, worker=worker, workers=workers))
        spooled = shard(config(corpus, worker=worker, workers=workers, cache_bytes=1))
        assert cached.cached is not None and cached.spool is None
        assert spooled.cached is None and spooled.spool is not None
        assert spooled.spool.count == spooled.mine == cached.mine > 0
        assert spooled.has_read == cached.has_read
        assert a_pass(spooled) == a_pass(cached) == a_pass(spooled)
        # round and round (rate and closed models: the spool's templates without entries)
        twice = 2 * cached.mine + 1
        assert [rendered(t, 9) for t in itertools.islice(spooled.cycle(), twice)] == [
            rendered(t, 9) for t in itertools.islice(cached.cycle(), twice)
        ]


@pytest.mark.parametrize("seconds", [0.001, 0.4, 1.0, 1.7])
def test_a_short_timeline_spools_only_what_it_reaches_and_builds_the_rest_if_asked(
    synth_corpus: Any, tmp_path: Path, seconds: float
) -> None:
    # a 2 s corpus at speed 1 replayed for less: the spool ends at the first record due
    # at or after the run's end; a pass still yields every record (the rest built from the
    # corpus, starting inside a chunk), the same as a cached shard's
    corpus = multi_chunk(tmp_path, synth_corpus("ingestion", rate=120, seconds=2), 23)
    duration = int(seconds * NS)
    cached = shard(config(corpus, duration_ns=duration))
    spooled = shard(config(corpus, duration_ns=duration, cache_bytes=1))
    assert spooled.spool is not None and cached.cached is not None
    entries = [e for e, _t in cached.cached]
    reached = [e for e in entries if e.offset_ns < duration]
    assert spooled.spool.count == min(len(reached) + 1, len(entries))
    assert spooled.spool.count < spooled.mine
    assert spooled.has_read  # not all built: assumed
    assert a_pass(spooled) == a_pass(cached)


@pytest.mark.parametrize("scale", [1.0, 0.5, 0.07, 2.5])
@pytest.mark.parametrize("seconds", [0.2, 0.9])
@pytest.mark.parametrize("workers", [1, 2])
def test_the_spool_alone_holds_everything_a_short_timeline_sends(
    synth_corpus: Any, tmp_path: Path, scale: float, seconds: float, workers: int
) -> None:
    # the schedule played over the spool alone (no records built after it) is the
    # schedule over the whole cached shard: at a --scale below 1 records with no copy do
    # not end the spool early
    from replay import pacing

    corpus = multi_chunk(tmp_path, synth_corpus("ingestion", rate=150, seconds=2), 29)
    duration = int(seconds * NS)
    sent = 0
    for worker in range(workers):
        kw = {"duration_ns": duration, "scale": scale, "worker": worker, "workers": workers}
        cached = shard(config(corpus, **kw))
        spooled = shard(config(corpus, cache_bytes=1, **kw))
        assert spooled.spool is not None and spooled.spool.count < spooled.mine

        def schedule(entries: Any, s: Shard = cached) -> list[tuple[int, bytes]]:
            plan = pacing.timeline(entries, s.records, s.period_ns, pacing.as_fraction(scale),
                                   1.0, duration)  # fmt: skip
            return [(due, rendered(t, 9)) for due, t in plan]

        whole = schedule(cached.one_pass)
        assert schedule(spooled.spool.read) == whole
        read: list[int] = []  # and the run never reads into what is built after the spool

        def counted(s: Shard = spooled, read: list[int] = read) -> Any:
            for item in s.one_pass():
                read.append(item[0].record)
                yield item

        assert schedule(counted) == whole
        assert len(read) <= spooled.spool.count
        sent += len(whole)
    assert sent > 0


def test_a_timeline_that_loops_spools_every_record(synth_corpus: Any) -> None:
    corpus = synth_corpus("ingestion", rate=60, seconds=1)
    s = shard(config(corpus, duration_ns=NS, speed=2.0, cache_bytes=1))
    assert s.spool is not None and s.spool.count == s.mine


@pytest.mark.parametrize(
    ("model", "options", "sendable"),
    [
        # what the run can send, from the options alone: rate x duration / workers
        ("rate", {"rate": 50.0, "duration_ns": NS}, 50),
        ("rate", {"rate": 90.0, "duration_ns": NS, "workers": 3}, 30),
        # a ramp from 0 to 100/s over 1 s: the area under it, 50
        ("rate", {"rate": 0.0, "stages": [(NS, 100.0)], "duration_ns": NS}, 50),
        # 2 VUs for 1 ms: no Python worker sends 200 requests in a millisecond
        ("closed", {"vus": 2, "duration_ns": NS // 1000}, 200),
    ],
)
def test_rate_and_closed_runs_spool_at_most_what_they_can_send(
    synth_corpus: Any, model: str, options: dict[str, Any], sendable: int
) -> None:
    # the spool holds at least what the run can send (Poisson arrivals: six standard
    # deviations more) and not much more: far fewer than the shard's 5,000 records
    corpus = synth_corpus("ingestion", rate=2500, seconds=2)
    cfg = config(corpus, model=model, cache_bytes=1, **options)
    most = most_requests(cfg)
    assert sendable + 6 * sendable**0.5 <= most <= 2 * sendable + 4096 + 100
    s = shard(cfg)
    assert s.spool is not None
    assert s.spool.count == min(most, s.mine) < s.mine
    assert len(list(itertools.islice(s.cycle(), s.mine + 5))) == s.mine + 5  # then built


def test_a_spool_that_cannot_be_written_falls_back_to_building_each_pass(
    synth_corpus: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    corpus = multi_chunk(tmp_path, synth_corpus("mixed", rate=100, seconds=1), 16)
    cached = shard(config(corpus))
    writes = 0

    def full_disk(self: TemplateSpool) -> None:
        nonlocal writes
        writes += 1
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(spool, "FRAME_BYTES", 1024)
    monkeypatch.setattr(TemplateSpool, "_flush", full_disk)
    broken = shard(config(corpus, cache_bytes=1))
    assert writes == 1  # the first failure ends the spooling
    assert broken.spool is None and broken.cached is None
    assert broken.spool_error is not None and "No space left on device" in broken.spool_error
    assert a_pass(broken) == a_pass(cached) == a_pass(broken)


@settings(max_examples=80, deadline=None)
@given(
    rate=st.floats(0.5, 5000),
    ms=st.integers(1, 3000),
    workers=st.integers(1, 4),
    poisson=st.booleans(),
    seed=st.integers(0, 2**20),
)
def test_a_rate_run_never_sends_more_than_most_requests(
    rate: float, ms: int, workers: int, poisson: bool, seed: int
) -> None:
    # the rate model's spool stops at most_requests(cfg): no schedule may pass it
    from replay import pacing
    from replay.shard import rate_curve

    for worker in range(workers):
        cfg = WorkerConfig(
            worker=worker, workers=workers, corpus="-", target="http://127.0.0.1:9",
            api_key=None, project_id=None, model="rate", duration_ns=ms * 1_000_000,
            nonce=1, rate=rate, seed=seed, arrival="poisson" if poisson else "uniform",
        )  # fmt: skip
        curve = rate_curve(cfg)
        hits = (
            pacing.poisson_hits(curve, seed, worker, workers)
            if poisson
            else pacing.uniform_hits(curve, worker, workers)
        )
        assert sum(1 for t in hits if t < cfg.duration_ns) <= most_requests(cfg)


def test_a_spool_keeps_no_per_frame_state_in_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    # a soak corpus of tens of millions of records makes millions of frames: the spool's
    # memory must not grow with them (only the file does)
    import tracemalloc

    monkeypatch.setattr(spool, "FRAME_BYTES", 1)  # a frame per template
    entry, template = BUNDLED["query"][0]
    with TemplateSpool() as s:
        for _ in range(2_000):
            s.add(entry, template)
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(20_000):
            s.add(entry, template)
        grown = tracemalloc.get_traced_memory()[0] - before
        tracemalloc.stop()
        s.finish()
        assert sum(1 for _ in s.read()) == 22_000
    assert grown < 20_000  # bytes, for 20,000 more frames (an index would take ~1.5 MB)


def test_a_damaged_spool_says_where_instead_of_yielding_garbage() -> None:
    import os

    with TemplateSpool() as s:
        for entry, template in BUNDLED["mixed"][:50]:
            s.add(entry, template)
        s.finish()
        os.ftruncate(s._file.fileno(), s.bytes_on_disk - 3)  # the last frame cut short
        with pytest.raises(OSError, match="template spool: short read at byte"):
            list(s.read())


def test_rounds_go_round_the_templates_and_an_empty_spool_gives_none(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(spool, "FRAME_BYTES", 4096)  # many frames
    items = BUNDLED["query"]
    with TemplateSpool() as s:
        for entry, template in items:
            s.add(entry, template)
        s.finish()
        n = len(items)
        got = list(itertools.islice(s.rounds(), 2 * n + n // 2))
    expected = [t for _e, t in items] * 3
    assert [rendered(t, 5) for t in got] == [rendered(t, 5) for t in expected[: 2 * n + n // 2]]
    with TemplateSpool() as empty:
        empty.finish()
        assert list(empty.rounds()) == []
