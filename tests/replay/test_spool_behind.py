"""Sending before the spool is complete: a shard that spooled only a lead while loading, and
builds the rest behind the sends, replays exactly what a cached shard does (no network)."""

from __future__ import annotations

import errno
import itertools
from pathlib import Path
from typing import Any

import pytest
import worker_shards
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from worker_shards import NS, config

from capture.corpus import CorpusReader, write_corpus
from replay import pacing, rewrite, spool
from replay.config import WorkerConfig
from replay.shard import BUILD_CHECK, Shard
from replay.spool import TemplateSpool


def shard(cfg: WorkerConfig, lead_ns: int | None = None) -> Shard:
    """Loaded with `lead_ns` of building, the rest built behind from the start."""
    return worker_shards.shard(cfg, lead_ns=lead_ns, keep_ahead=False)


def rendered(template: Any) -> bytes:
    return bytes(template.render(rewrite.serial_hex(5), 1234, b"t" * 32, rewrite.Stamps().iso))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from capture.synth import SynthSpec, write_synth_corpus

    tmp = tmp_path_factory.mktemp("behind")
    source = write_synth_corpus(SynthSpec("mixed", 150, NS, 1), tmp / "mixed.atc")
    with CorpusReader(source) as reader:
        meta, duration, records = reader.header.meta, reader.header.duration_ns, list(reader)
    return write_corpus(tmp / "chunked.atc", meta, records, duration_ns=duration,
                        chunk_records=17)  # fmt: skip


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    steps=st.lists(
        st.tuples(st.integers(0, 30), st.integers(0, 3)), min_size=1, max_size=20
    ).filter(lambda steps: any(take for take, _ in steps)),
    frame=st.sampled_from([512, 4096, 64 << 10]),
)
def test_a_pass_while_the_spool_is_built_behind_it_is_the_cached_pass(
    corpus: Path, steps: list[tuple[int, int]], frame: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # loading spools only a lead (lead 0: BUILD_CHECK templates); then the pass takes `take`
    # templates and the builder gets `builds` turns, in turn: every template comes once, in
    # order, the same as from memory, whoever built it
    monkeypatch.setattr(spool, "FRAME_BYTES", frame)
    cached = shard(config(corpus))
    s = shard(config(corpus, cache_bytes=1), lead_ns=0)
    assert s.spool is not None and s.spooled == s.spool.count == BUILD_CHECK < s.mine
    assert not s.spool.finished
    expected = [(e, rendered(t)) for e, t in cached.one_pass()]
    got = []
    a_pass = s.one_pass()
    for take, builds in itertools.cycle(steps):
        batch = [(e, rendered(t)) for e, t in itertools.islice(a_pass, take)]
        got += batch
        if take and len(batch) < take:
            break
        for _ in range(builds):
            s.build_some(0)
        if not take and s.spool.finished:
            got += [(e, rendered(t)) for e, t in a_pass]
            break
    assert got == expected
    assert s.spool.finished and s.spool.count == s.mine and s.spooled == s.mine
    assert [(e, rendered(t)) for e, t in s.one_pass()] == expected  # then from the file
    assert s.has_read == cached.has_read


def test_a_pass_that_catches_up_builds_the_next_templates_itself(corpus: Path) -> None:
    # nothing builds behind: the pass builds every template after the lead on its own turn
    cached = shard(config(corpus))
    s = shard(config(corpus, cache_bytes=1), lead_ns=0)
    got = [(e, rendered(t)) for e, t in s.one_pass()]
    assert got == [(e, rendered(t)) for e, t in cached.one_pass()]
    assert s.built_late == s.mine - BUILD_CHECK > 0


@pytest.mark.parametrize("seconds", [0.05, 0.5])
def test_a_short_timeline_built_behind_sends_what_the_cached_one_does(
    corpus: Path, seconds: float
) -> None:
    # the spool stops at the run's reach whoever builds it, and the schedule is the same
    duration = int(seconds * NS)
    cached = shard(config(corpus, duration_ns=duration))
    s = shard(config(corpus, duration_ns=duration, cache_bytes=1), lead_ns=0)

    def schedule(x: Shard) -> list[tuple[int, bytes]]:
        plan = pacing.timeline(x.one_pass, x.records, x.period_ns, pacing.as_fraction(1.0),
                               1.0, duration)  # fmt: skip
        return [(due, rendered(t)) for due, t in plan]

    assert schedule(s) == schedule(cached)
    assert s.spool is not None and s.spool.finished and s.spool.count < s.mine


def test_counting_what_was_never_sent_stops_the_builder(corpus: Path) -> None:
    # at the end of a run the rest is only counted: building stops, the spool ends with what
    # was built, and the rest of the pass names endpoints without encoding anything
    cached = shard(config(corpus))
    s = shard(config(corpus, cache_bytes=1), lead_ns=0)
    a_pass = s.one_pass()
    head = list(itertools.islice(a_pass, 10))
    s.stop_building()
    assert s.spool is not None and s.spool.finished
    spooled = s.spool.count
    rest = list(a_pass)
    assert [t.endpoint for _e, t in head + rest] == [t.endpoint for _e, t in cached.one_pass()]
    assert not hasattr(rest[-1][1], "render")  # a stand-in, only counted
    assert s.spool.count == spooled < s.mine


def test_a_write_failure_behind_the_sends_keeps_what_is_on_disk(
    corpus: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the disk fills while building behind: passes keep the whole frames written so far and
    # build the rest as they read, and spool_error says why
    monkeypatch.setattr(spool, "FRAME_BYTES", 1024)
    cached = shard(config(corpus))
    s = shard(config(corpus, cache_bytes=1), lead_ns=0)
    assert s.spool is not None
    s.build_some(0)
    s.spool.flush()
    written = s.spool.count
    flush = TemplateSpool._flush

    def full_disk(self: TemplateSpool) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(TemplateSpool, "_flush", full_disk)
    s.build_some(None)
    monkeypatch.setattr(TemplateSpool, "_flush", flush)
    assert s.spool_error is not None and "No space left on device" in s.spool_error
    assert s.spool.finished and s.spool.count == written
    expected = [(e, rendered(t)) for e, t in cached.one_pass()]
    assert [(e, rendered(t)) for e, t in s.one_pass()] == expected
