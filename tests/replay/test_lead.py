"""How much of its spool a worker builds before sending (replay/lead.py), alone and as a
shard uses it (no network)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import worker_shards

from replay import lead
from replay import shard as shard_module
from replay.ahead import SPOOLED_AHEAD
from replay.shard import BUILD_CHECK, Shard

NS = 1_000_000_000


def constant(rate: float) -> lead.Demand:
    return lambda t: rate * t / NS


def test_a_model_that_sends_as_fast_as_it_can_builds_everything_first() -> None:
    assert lead.templates_first(None, 50_000, 10 * NS, 123_456) == 123_456


def test_a_slow_schedule_needs_only_what_is_prepared_ahead_of_it() -> None:
    # 100 req/s and a template built in 10 µs: building behind keeps far ahead; the lead is
    # what Ahead prepares before the start, with the margin
    got = lead.templates_first(constant(100), 10_000, 60 * NS, 10**6)
    assert got == math.ceil(SPOOLED_AHEAD * (1 + lead.MARGIN))


def test_a_schedule_faster_than_building_behind_is_built_ahead_by_the_difference() -> None:
    # 25,000 req/s for 10 s, 50 µs a template: sending takes 25,000 x 30 µs = 0.75 s of each
    # second, so building behind makes 0.25 s / 50 µs = 5,000 templates a second; by the end
    # the schedule has used 250,000 (+ SPOOLED_AHEAD prepared), building behind made 50,000
    expected = (250_000 + SPOOLED_AHEAD - 50_000) * (1 + lead.MARGIN)
    got = lead.templates_first(constant(25_000), 50_000, 10 * NS, 10**6)
    assert got == pytest.approx(expected, abs=1)
    # never more than the shard: 1,000 templates are used by 40 ms, when 200 were built
    # behind, so (1,000 + SPOOLED_AHEAD - 200) x 1.2 > 1,000
    assert lead.templates_first(constant(25_000), 50_000, 10 * NS, 1_000) == 1_000


def test_a_schedule_the_sends_alone_fill_leaves_nothing_to_build_behind() -> None:
    # 40,000 req/s x 30 µs > 1 s a second: nothing is built behind, the lead is the demand
    expected = (40_000 * 5 + SPOOLED_AHEAD) * (1 + lead.MARGIN)
    got = lead.templates_first(constant(40_000), 1_000, 5 * NS, 10**6)
    assert got == pytest.approx(expected, abs=1)


def shard(corpus: Path, keep_ahead: bool, **kw: Any) -> Shard:
    """A spooled shard (a 1-byte cache) with no lead of its own, `kw` its worker's settings."""
    return worker_shards.shard(
        worker_shards.config(corpus, cache_bytes=1, **kw), lead_ns=0, keep_ahead=keep_ahead
    )


def test_a_shard_builds_before_sending_what_its_schedule_needs(synth_corpus: Any) -> None:
    corpus = synth_corpus("query", rate=1500, seconds=5)  # ~7,500 small records
    slow = shard(corpus, True, model="rate", rate=10.0)
    assert slow.mine > math.ceil(SPOOLED_AHEAD * (1 + lead.MARGIN))
    assert slow.spool is not None and not slow.spool.finished
    assert slow.spool.count == math.ceil(SPOOLED_AHEAD * (1 + lead.MARGIN))  # what Ahead prepares
    assert slow.extended_ns > 0
    fast = shard(corpus, True, model="closed", vus=5)  # as fast as it can: all of it
    assert fast.spool is not None and fast.spool.finished and fast.spool.count == fast.mine
    behind = shard(corpus, False, model="closed", vus=5)  # the lead alone (nothing, here)
    assert behind.spool is not None and behind.spool.count == BUILD_CHECK
    assert behind.extended_ns == 0


def test_building_before_sending_stops_at_the_longest_lead(
    synth_corpus: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a schedule wants what Ahead prepares built first; with no time allowed for that it
    # builds one check's worth in the lead and one past it, and says how many it wanted.
    # A closed model has no schedule to start on: it builds all it can reach regardless.
    corpus = synth_corpus("query", rate=1500, seconds=5)
    monkeypatch.setattr(shard_module, "MAX_LEAD_NS", 0)
    cut = shard(corpus, True, model="rate", rate=10.0)
    assert cut.spool is not None and not cut.spool.finished
    assert cut.spool.count == 2 * BUILD_CHECK < cut.mine
    assert cut.lead_short == math.ceil(SPOOLED_AHEAD * (1 + lead.MARGIN)) - 2 * BUILD_CHECK
    closed = shard(corpus, True, model="closed", vus=5)
    assert closed.spool is not None and closed.spool.count == closed.mine
    assert closed.lead_short == 0


def test_build_first_spools_all_a_schedule_reaches_whatever_the_longest_lead(
    synth_corpus: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # --build-first: the same schedule as above, with no time allowed before sending, still
    # builds every template its run reaches (10 req/s for 5 s: its 50 requests and a margin,
    # far short of the corpus; a 20 s run at 1,000 req/s reaches past this corpus: all of it)
    corpus = synth_corpus("query", rate=1500, seconds=5)
    monkeypatch.setattr(shard_module, "MAX_LEAD_NS", 0)
    whole = shard(corpus, True, model="rate", rate=1000.0, duration_ns=20 * NS, build_first=True)
    assert whole.spool is not None and whole.spool.finished
    assert whole.spool.count == whole.mine and whole.lead_short == 0
    reached = shard(corpus, True, model="rate", rate=10.0, duration_ns=5 * NS, build_first=True)
    assert reached.spool is not None and reached.spool.finished and reached.lead_short == 0
    assert 50 <= reached.spool.count < reached.mine // 10


@pytest.mark.parametrize("build_first", [False, True])
def test_the_note_of_a_worker_that_built_past_its_lead_says_why(build_first: bool) -> None:
    from replay.aggregate import RunAggregate
    from replay.plan import make_plan
    from replay.run_end import run_notes
    from replay.target import RunTarget

    plan = make_plan("ingestion", rate=100.0, build_first=build_first)
    info = {"spooled": 1234, "spool_lead_ns": 3 * NS}
    target = RunTarget("http://127.0.0.1:9", None, None, embedded=False)
    (note,) = run_notes(
        plan, target, RunAggregate(), [info], interrupted=False, aborted=None, failure=None
    )
    assert note.startswith("worker 0 built 1,234 templates (3.0 s) before sending: ")
    assert ("as --build-first asks" in note) == build_first
    assert ("would not have kept ahead of its schedule" in note) != build_first
