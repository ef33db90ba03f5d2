"""A worker running a scenario file: one lane per scenario, all on the worker's loop and clock.

A `Lane` is what a scenario's scheduler sees as its worker: its own shard (only the
scenario's endpoints), connections, work-ahead buffer and recorder, its start and end
(the run's start plus ``start_time``), while sending goes through the worker's `dispatch`
(one request serial, one ring of acknowledged traces). Each lane's deltas carry its
scenario's name, and at the end of each interval its active VUs at mid-interval.
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Callable, Iterator
from typing import Any, cast

import gevent

from capture.corpus import CorpusError, CorpusReader
from replay import rewrite, wire
from replay.address import resolve
from replay.ahead import Ahead
from replay.config import WorkerConfig
from replay.executors import Scenarios, VUScheduler
from replay.pacing import NS
from replay.protocol import DoneInfo, ReadyInfo
from replay.recorder import IntervalRecorder
from replay.rewrite import Template
from replay.schedulers import RateScheduler, scheduler_class
from replay.shard import Shard
from replay.wire import Connection
from replay.worker import FOLDS, PREFILL_MARGIN_NS, Worker

COUNT_UNSENT_NS = 2 * NS  # counting a lane's unsent requests takes at most this long


class LaneShard(Shard):
    """A shard holding only the scenario's endpoints (all of them when it names none);
    CorpusError when the corpus holds none of them at all."""

    whole_corpus_when_alone = False  # its scenario's endpoints only, as far as it can send

    def __init__(self, cfg: WorkerConfig, *args: Any) -> None:
        self.needed = templates_needed(cfg)
        self.deferred = False  # in memory, built as the lane first draws them
        super().__init__(cfg, *args)
        wanted = cfg.lane.get("endpoints")
        if self.mine == 0 and wanted and next(self._walk(everyone=True), None) is None:
            raise CorpusError(
                cfg.corpus,
                f"scenario {cfg.lane.get('name')}: endpoints: the corpus holds no "
                f"{' or '.join(wanted)} requests",
            )

    def _walk(self, everyone: bool, *args: Any, **kwargs: Any) -> Any:
        wanted = set(self.cfg.lane.get("endpoints") or ())
        walk: Iterator[tuple[Any, Any]] = (
            (entry, record)
            for entry, record in super()._walk(everyone, *args, **kwargs)
            if not wanted or record.endpoint in wanted
        )
        from_start = not args[2:] and kwargs.get("after", -1) < 0
        if self.needed is not None and not everyone and from_start:
            walk = itertools.islice(walk, self.needed)  # the shard: what the lane can send
        yield from walk

    def _cache(self, build: Callable[[Any, int], Template]) -> list[tuple[Any, Template]] | None:
        """A lane that draws its templates round and round (an arrival rate, VUs without a
        flow) builds them on its first pass, on the worker's loop between sends (`Ahead`),
        not while loading: the first seconds of a run rarely need them all at once."""
        if self.cfg.model in DRAWN_IN_ORDER and not self.cfg.lane.get("flow"):
            self.deferred = True
            return None
        return super()._cache(build)

    def cycle(self) -> Iterator[Template]:
        if not self.deferred or self.everyone:
            return super().cycle()
        return self._first_pass_then_cycle()

    def _first_pass_then_cycle(self) -> Iterator[Template]:
        built: list[Template] = []
        for _entry, template in self._built(self._walk(everyone=False)):
            built.append(template)
            yield template
        if built:
            yield from itertools.cycle(built)

    def templates_of(self, endpoint: str) -> list[Template]:
        """Every template of `endpoint` (a flow step's pool): this worker's, or when it
        holds none, the whole corpus's."""
        if self.cached is not None:
            pool = [tpl for _entry, tpl in self.cached if tpl.endpoint == endpoint]
            if pool:
                return pool
        for everyone in (False, True):
            walk = self._walk(everyone=everyone)
            pool = [self._build(r, e.record) for e, r in walk if r.endpoint == endpoint]
            if pool:
                return pool
        raise CorpusError(self.cfg.corpus, f"no {endpoint} requests for the scenario's flow")


DRAWN_IN_ORDER = ("constant-arrival-rate", "ramping-arrival-rate", "constant-vus", "ramping-vus")


def templates_needed(cfg: WorkerConfig) -> int | None:
    """How many of its shard's first templates a lane can send at most, or None when it may
    send any. A lane draws templates in corpus order, round and round, so building more than
    it can send is start-up time for nothing. Arrival rates send their schedule's count
    (`RateScheduler.most_requests`). A VU starts an iteration (one request, without a flow)
    at least a think time after its last one, and only before the scenario's end: at most
    duration / think + 1 each, doubled (a loop timer may fire a little early). A flow, no
    think time or a corpus timeline: None."""
    if cfg.model in ("constant-arrival-rate", "ramping-arrival-rate"):
        return RateScheduler.most_requests(cfg)
    closed = cfg.model in ("constant-vus", "ramping-vus")
    if closed and not cfg.lane.get("flow") and cfg.think_ns > 0:
        return cfg.vus * (2 * (cfg.duration_ns // cfg.think_ns) + 2) + 64
    return None


class Lane:
    """One scenario inside a worker (see the module docstring)."""

    def __init__(self, worker: ScenarioWorker, cfg: WorkerConfig) -> None:
        self.parent = worker
        self.cfg = cfg
        self.name = str(cfg.lane["name"])
        self.offset_ns = int(cfg.lane.get("start_ns", 0))
        self.recorder = IntervalRecorder(worker.cfg.worker)
        self.scheduler = scheduler_class(cfg.model)(cast(Any, self))
        self.closed = isinstance(self.scheduler, VUScheduler)
        self.loop: Any = None
        self.ahead: Any = None
        self.shard: LaneShard | None = None
        self.conns: list[Connection] = []
        self.start = self.end = 0
        self.busy = 0
        self.vus_sample = 0
        self.unsent = 0

    @property
    def stopping(self) -> bool:
        return self.parent.stopping

    def dispatch(self, conn: Connection, tpl: Template, due: int) -> None:
        self.busy += 1
        self.parent.dispatch(conn, tpl, due)

    def _done(self, conn: Connection, outcome: str, done: int) -> None:
        parent = self.parent
        parent.busy -= 1
        self.busy -= 1
        tpl = conn.tpl
        if parent.reads and tpl.ack_prefix and outcome[0] == "2":
            parent.acknowledged(tpl.trace_id(conn.tag), tpl.endpoint, done)
        self.recorder.record(tpl.endpoint, outcome, conn.due, conn.sent, done)
        self.scheduler.done(conn, done)

    def begin(self) -> None:
        """At the run's start: begin now, or at ``start_time`` on a timer."""
        wait = self.start - time.monotonic_ns()
        if wait <= 0:
            self.scheduler.begin()
        else:
            timer = self.loop.timer(wait / NS)
            timer.start(self.begin, update=True)  # (again, should it fire early)

    def finished(self, now: int) -> bool:
        if isinstance(self.scheduler, VUScheduler):
            return self.scheduler.finished(now)
        return now >= self.end

    def active(self) -> int:
        return self.scheduler.active() if isinstance(self.scheduler, VUScheduler) else 0

    def fold(self, interval: int, last: bool) -> bytes:
        extra: dict[str, Any] = {"scenario": self.name}
        if last and self.closed:
            extra["vus"] = self.vus_sample
        return self.recorder.flush(interval, self.busy, extra)

    def count_unsent(self, cutoff_abs: int) -> None:
        """Requests of an open lane due before `cutoff_abs` but never sent: dropped."""
        if not self.scheduler.counts_unsent or self.ahead is None or self.shard is None:
            return
        self.shard.stop_building()
        cutoff = min(cutoff_abs, self.end) - self.start
        began = time.monotonic_ns()
        n = 0
        for due, tpl in self.ahead.rest():
            if due >= cutoff:
                break
            self.recorder.drop(tpl.endpoint, due)
            n += 1
            if n % 64 == 0 and time.monotonic_ns() - began > COUNT_UNSENT_NS:
                break
        self.recorder.offered(n)
        self.unsent = n


class ScenarioWorker(Worker):
    """A worker whose scheduler is `Scenarios`: every lane of ``cfg.scenarios`` at once."""

    def __init__(self, cfg: WorkerConfig, pipe: Any) -> None:
        super().__init__(cfg, pipe)
        self.lanes = [Lane(self, WorkerConfig.from_wire(c)) for c in cfg.scenarios]
        assert isinstance(self.scheduler, Scenarios)
        self.scheduler.lanes = self.lanes

    def _builder(self, corpus: str) -> Callable[[Any, int], Template]:
        with CorpusReader(corpus) as reader:
            created = rewrite.created_ms(reader.header.meta.created)
        encoder, minter, project = self.encoder, self.minter, self.cfg.project_id

        def build(record: Any, index: int) -> Template:
            return rewrite.build_template(
                record,
                request_start=encoder.request_start,
                head_end=encoder.head_end,
                minter=minter,
                created_ms=created,
                project_id=project,
                where=f"record {index}",
            )

        return build

    def load(self) -> ReadyInfo:
        family, addr = resolve(self.target)
        self.loop = gevent.get_hub().loop
        mine = spooled = spool_bytes = 0
        cached = True
        for lane in self.lanes:
            lane.loop = self.loop
            lane.shard = shard = LaneShard(lane.cfg, self._builder(lane.cfg.corpus), self._loading)
            mine += shard.mine
            spooled += shard.spooled
            cached = cached and (shard.cached is not None or shard.deferred)
            spool_bytes += shard.spool.bytes_on_disk if shard.spool is not None else 0
            n = lane.scheduler.connections(lane.cfg)
            lane.conns = [
                wire.Connection(self.target, addr, family, lane._done, self.loop)
                for _ in range(max(n, 0))
            ]
            if lane.closed:
                lane.scheduler.source(shard)  # a flow's pools, built now (CorpusError: exit 2)
            lane.scheduler.attach(lane.conns)
            self.conns.extend(lane.conns)
            self._preconnect(lane.scheduler.preconnect(lane.conns))
        return ReadyInfo(
            pid=os.getpid(),
            records=mine,
            cached=cached,
            spooled=spooled,
            spool_bytes=spool_bytes,
            spool_dir=self.lanes[0].shard.spool_dir if self.lanes and self.lanes[0].shard else "",
        )

    def run(self, start_ns: int, wall_ns: int) -> DoneInfo:
        """Every lane from `start_ns` (plus its start_time) until all have finished, the
        run's end or a stop; drain; final flush."""
        self.start = start_ns
        self.wall_ms = wall_ns // 1_000_000
        self.end = end = start_ns + self.cfg.duration_ns
        if self.prober is not None:
            self.prober.start_ns = start_ns
        for lane in self.lanes:
            lane.start = start_ns + lane.offset_ns
            lane.end = lane.start + lane.cfg.duration_ns
            assert lane.shard is not None
            lane.ahead = Ahead(
                lane.scheduler.source(lane.shard),
                self.loop,
                lane.shard.ahead,
                on_fill=lane.scheduler.on_fill,
            )
            lane.ahead.prefill(start_ns - PREFILL_MARGIN_NS)
        background = self._until_start(start_ns)
        scheduler = cast(Scenarios, self.scheduler)
        scheduler.begin()
        while not self.stopping and time.monotonic_ns() < end:
            if scheduler.finished(time.monotonic_ns()):
                break
            gevent.sleep(0.05)
        scheduler.halt()
        self.core_wait.end(time.monotonic_ns())
        cutoff = self.stopped_at if self.stopping else end
        for lane in self.lanes:
            lane.ahead.stop()
            lane.count_unsent(cutoff)
        self._drain()
        with self._pipe_lock():
            gevent.killall(background)
        self.flush()
        self._finish_probes()
        for conn in self.conns:
            conn.close()
        for lane in self.lanes:
            if lane.shard is not None:
                lane.shard.close()
        self.unsent = sum(lane.unsent for lane in self.lanes)
        return {
            "abandoned": self.abandoned,
            "serial": self.serial,
            "intervals": self.interval,
            "unsent": self.unsent,
            "unsent_counted": True,
            "probes_skipped": self.prober.skipped if self.prober is not None else 0,
            **self.core_wait.info(),  # type: ignore[typeddict-item]
        }

    def _ticker(self) -> None:
        """As the worker's: FOLDS folds a second, each lane's; VUs sampled mid-interval."""
        folds = 0
        while True:
            folds += 1
            wait = self.start + folds * NS // FOLDS - time.monotonic_ns()
            if wait > 0:
                gevent.sleep(wait / NS)
            if folds % FOLDS == FOLDS // 2:
                # A sleep may end early by as long as the loop's cached time is stale: the
                # sample is taken at mid-second by the clock itself.
                mid = self.start + folds * NS // FOLDS
                while (left := mid - time.monotonic_ns()) > 0:
                    gevent.sleep(left / NS)
                for lane in self.lanes:
                    lane.vus_sample = lane.active()
            last = folds % FOLDS == 0
            for lane in self.lanes:
                self.folds.append(lane.fold(self.interval, last))
            if last:
                self._send_interval()

    def flush(self) -> None:
        for lane in self.lanes:
            lane.vus_sample = lane.active()
            self.folds.append(lane.fold(self.interval, True))
        self._send_interval()
