"""Load models: one `Scheduler` per model decides which request goes out when, on which
connection; the worker owns the connections, the recorder and the clock.

A new model (an executor) is a `Scheduler` subclass registered in `SCHEDULERS`: it says how
many connections it needs, what `Ahead` prepares for it, and what to do at the start and
after each exchange. The send path (`Worker.dispatch`) and the worker's run are the same for
every model.
"""

from __future__ import annotations

import itertools
import math
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, ClassVar

from capture.units import NS
from replay import pacing, wire
from replay.ahead import AHEAD, nothing
from replay.config import WorkerConfig
from replay.lead import Demand
from replay.pacing import TimelineEntry
from replay.segments import hit_stride
from replay.wire import Connection

if TYPE_CHECKING:
    from replay.rewrite import Template
    from replay.shard import Shard
    from replay.worker import Worker

SPIN_NS = 1_500_000  # the scheduler keeps the loop spinning when the next request is this near
NAP_EARLY_NS = 5_000  # ... napping in select() until this long before it
NAP_MIN_NS = 10_000  # (not for less)
DISPATCH_BATCH = 64  # requests sent per turn of the loop at most, when catching up
PRECONNECT = 64  # open models: connections opened before the start (closed: one per VU)
CLOSED_MOST_RATE = 200_000  # req/s: more than one worker sends in the closed model

Reach = Callable[[TimelineEntry, int], bool]
"""Whether a run can reach no record of a shard after `entry`, the `spooled`-th spooled."""


class Scheduler(ABC):
    """How one load model sends: the worker calls `attach` with its connections at load,
    runs `Ahead` over `source()` (calling `on_fill` after each slice), calls `begin` at the
    start instant, `done` after every exchange (from the loop), and `halt` at the end.

    `counts_unsent`: requests that came due but were never sent are counted as dropped at
    the end (arrival-rate models; a closed model has no due times)."""

    counts_unsent: ClassVar[bool] = False
    on_fill: Callable[[], None] | None = None

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.cfg = worker.cfg
        self.conns: list[Connection] = []

    # --- what the model needs, from its config alone ---------------------------------------

    @classmethod
    @abstractmethod
    def connections(cls, cfg: WorkerConfig) -> int:
        """How many connections the worker opens."""

    @classmethod
    def preconnect(cls, conns: list[Connection]) -> list[Connection]:
        """Those opened before the start (the rest on their first request)."""
        return conns[:PRECONNECT]

    @classmethod
    def most_requests(cls, cfg: WorkerConfig) -> int:
        """More requests than this worker can send in the run: the expected count of its
        share of the rate curve plus six standard deviations (Poisson arrivals) and a few."""
        expected = rate_curve(cfg).cumulative(cfg.duration_ns) / (cfg.workers * cfg.segments)
        return int(expected + 6 * math.sqrt(expected)) + 64

    @classmethod
    def spool_reach(cls, cfg: WorkerConfig, period_ns: int) -> Reach:
        """When spooling a shard can stop: past `most_requests` templates."""
        most = cls.most_requests(cfg)
        return lambda _entry, spooled: spooled >= most

    @classmethod
    def spool_demand(cls, cfg: WorkerConfig, period_ns: int, mine: int) -> Demand | None:
        """How many of its shard's `mine` templates this worker's schedule has used by t ns
        from the start (replay.lead), or None when it sends as fast as it can: its share of
        the rate curve's expected count."""
        curve, shares = rate_curve(cfg), cfg.workers * cfg.segments
        return lambda t: curve.cumulative(t) / shares

    # --- the run ---------------------------------------------------------------------------

    def attach(self, conns: list[Connection]) -> None:
        """The worker's connections, opened or not."""
        self.conns = conns

    @abstractmethod
    def source(self, shard: Shard) -> Iterator[Any]:
        """What `Ahead` prepares: (due ns from the start, template) pairs, or templates."""

    @abstractmethod
    def begin(self) -> None:
        """The start instant has come: start sending."""

    @abstractmethod
    def done(self, conn: Connection, done: int) -> None:
        """`conn`'s exchange ended at `done` (recorded already): reuse the connection."""

    @abstractmethod
    def halt(self) -> None:
        """No new requests from now on (those in flight may finish)."""


class OpenScheduler(Scheduler):
    """Arrival-rate models: each request has its own due time, whatever came before.

    A check watcher (it runs after every poll of the loop) sends every request already due,
    each stamped with its own intended time, on an idle connection, or drops it when none
    is idle (``--max-inflight`` reached): counted, never delayed. While the next one is due
    within SPIN_NS the loop does not block in its own poll but naps in a select() on its
    epoll descriptor until just before it; further ahead it sleeps on a timer (millisecond
    resolution, too coarse for send lag) until SPIN_NS before."""

    counts_unsent = True

    def __init__(self, worker: Worker) -> None:
        super().__init__(worker)
        self.idle: list[Connection] = []
        self._check: Any = None
        self._spin: Any = None
        self._timer: Any = None
        self._next_due = 0
        self._epoll: list[int] = []

    @classmethod
    def connections(cls, cfg: WorkerConfig) -> int:
        return cfg.max_inflight

    def attach(self, conns: list[Connection]) -> None:
        super().attach(conns)
        self.idle = list(reversed(conns))

    def done(self, conn: Connection, done: int) -> None:
        self.idle.append(conn)

    def begin(self) -> None:
        loop = self.worker.loop
        self._check = loop.check()
        self._spin = loop.idle()
        self._epoll = [loop.fileno()]
        self._check.start(self._tick)
        self._spin.start(self._nap)

    def _tick(self) -> None:
        """The scheduler (a check watcher): dispatch what is due, or drop it; re-arm."""
        worker = self.worker
        ahead = worker.ahead
        assert ahead is not None
        items = ahead.items
        if worker.stopping:
            self.halt()
            return
        if not items:
            if ahead.exhausted:
                self.halt()
            return
        start = worker.start
        now = time.monotonic_ns()
        due = start + items[0][0]
        if due <= now:
            idle, rec, dispatch = self.idle, worker.recorder, worker.dispatch
            popleft = items.popleft
            offered = 0
            while True:
                tpl = popleft()[1]
                offered += 1
                if idle:
                    dispatch(idle.pop(), tpl, due)
                else:
                    rec.drop(tpl.endpoint, due)
                if not items:
                    break
                due = start + items[0][0]
                if due > now or offered == DISPATCH_BATCH:
                    break  # (a batch: responses are read between batches when catching up)
            rec.offered(offered)
            ahead.poke()
            if not items:
                return
            now = time.monotonic_ns()
        wait = due - now
        self._next_due = due
        if wait <= SPIN_NS:
            self._spin.start(self._nap)  # no blocking poll: this watcher runs again soon
        else:
            self._spin.stop()
            timer = self._timer
            if timer is not None:
                timer.stop()
                timer.close()
            self._timer = timer = worker.loop.timer((wait - SPIN_NS) / NS)
            timer.start(nothing)  # wakes the poll; the check watcher does the rest

    def _nap(self) -> None:
        """The loop has nothing to do (an idle watcher runs only then) and the next request
        is due within SPIN_NS: sleep until just before it, or until a socket is ready, with
        one select on the loop's own epoll descriptor: microsecond resolution, no CPU."""
        ahead = self.worker.ahead
        if ahead is not None and ahead.filling:
            return  # there is work to do between turns
        wait = self._next_due - time.monotonic_ns() - NAP_EARLY_NS
        if wait > NAP_MIN_NS:
            try:
                wire.SELECT(self._epoll, (), (), wait / NS)
            except (OSError, ValueError):
                self._epoll = []  # (a loop without a descriptor: spin instead)

    def halt(self) -> None:
        for watcher in (self._check, self._spin, self._timer):
            if watcher is not None:
                watcher.stop()


class TimelineScheduler(OpenScheduler):
    """The corpus timeline: every record at its recorded offset (--speed, --scale)."""

    @classmethod
    def spool_reach(cls, cfg: WorkerConfig, period_ns: int) -> Reach:
        """Spooling stops at a record due after the run's end within the first pass (a
        record with no copy at this --scale does not end it); over more than one pass,
        never."""
        scale = pacing.as_fraction(cfg.scale)

        def reached(entry: TimelineEntry, _spooled: int) -> bool:
            if pacing.timeline_due(1, period_ns, 0, cfg.speed) < cfg.duration_ns:
                return False  # more than one pass: every record
            due = pacing.timeline_due(0, period_ns, entry.offset_ns, cfg.speed)
            return due >= cfg.duration_ns and pacing.copies(entry.record, scale) > 0

        return reached

    @classmethod
    def spool_demand(cls, cfg: WorkerConfig, period_ns: int, mine: int) -> Demand | None:
        """The shard's records in the first pass, spread evenly over it (copies at a --scale
        above 1 send the same template again)."""
        speed = cfg.speed
        return lambda t: mine * t * speed / max(period_ns, 1)

    def source(self, shard: Shard) -> Iterator[tuple[int, Template]]:
        cfg = self.cfg
        return pacing.timeline(
            shard.one_pass,
            shard.records,
            shard.period_ns,
            pacing.as_fraction(cfg.scale),
            cfg.speed,
            cfg.duration_ns,
        )


class RateScheduler(OpenScheduler):
    """--rate and --stage: arrivals on the rate curve (uniform or Poisson), templates in
    corpus order, round and round."""

    def source(self, shard: Shard) -> Iterator[tuple[int, Template]]:
        cfg = self.cfg
        curve = rate_curve(cfg)
        first, stride = hit_stride(cfg.segment, cfg.segments, cfg.worker, cfg.workers)
        if cfg.arrival == "poisson":
            hits = pacing.poisson_hits(curve, cfg.seed, first, stride)
        else:
            hits = pacing.uniform_hits(curve, first, stride)
        pairs = zip(hits, shard.cycle(), strict=False)
        if curve.end_ns <= cfg.duration_ns:
            return pairs
        return itertools.takewhile(lambda pair: pair[0] < cfg.duration_ns, pairs)


class AsFastAsVUs(Scheduler):
    """What a model of VUs that send as fast as they can needs from a worker: a connection
    per VU, all opened before the start, and a spool built whole before sending."""

    @classmethod
    def connections(cls, cfg: WorkerConfig) -> int:
        return cfg.vus

    @classmethod
    def preconnect(cls, conns: list[Connection]) -> list[Connection]:
        return conns

    @classmethod
    def most_requests(cls, cfg: WorkerConfig) -> int:
        """The duration at CLOSED_MOST_RATE, plus what the VUs prepared ahead, unsent."""
        return int(cfg.duration_ns / NS * CLOSED_MOST_RATE) + AHEAD + 1

    @classmethod
    def spool_demand(cls, cfg: WorkerConfig, period_ns: int, mine: int) -> Demand | None:
        return None  # as fast as it can: the sends leave no core to build behind them


class ClosedScheduler(AsFastAsVUs):
    """--vus: each VU (a connection) sends its next request once its last one is answered
    (after --think-time, on a timer); a request's intended time is the moment its VU was
    ready to send it. A VU that finds nothing prepared is parked until `Ahead` fills, and its
    request keeps the moment it was ready: the wait for the tool is part of its latency."""

    def __init__(self, worker: Worker) -> None:
        super().__init__(worker)
        self.parked: list[tuple[Connection, int]] = []  # (VU, when ready) waiting for a template
        self._think = self.cfg.think_ns / NS if self.cfg.think_ns else None
        self.on_fill = self._unpark

    def source(self, shard: Shard) -> Iterator[Template]:
        return shard.cycle()

    def begin(self) -> None:
        start = self.worker.start
        self.parked = [(conn, start) for conn in self.conns]
        self._unpark()

    def done(self, conn: Connection, done: int) -> None:
        worker = self.worker
        if not worker.stopping and done < worker.end:
            if self._think is None:
                self._vu_send(conn, done)
            else:
                timer = worker.loop.timer(self._think)
                timer.start(self._vu_wake, conn, timer)

    def _vu_send(self, conn: Connection, ready: int) -> None:
        """A VU's next request; its intended time is the moment it was ready to send."""
        worker = self.worker
        ahead = worker.ahead
        assert ahead is not None
        if not ahead.items:
            if not ahead.exhausted:
                self.parked.append((conn, ready))
            return
        tpl = ahead.items.popleft()
        ahead.poke()
        worker.recorder.offered()
        worker.dispatch(conn, tpl, ready)

    def halt(self) -> None:
        """Nothing to stop: a VU sends its next request only while the run goes on."""
        return

    def _vu_wake(self, conn: Connection, timer: Any) -> None:
        timer.close()
        now = time.monotonic_ns()
        worker = self.worker
        if not worker.stopping and now < worker.end:
            self._vu_send(conn, now)

    def _unpark(self) -> None:
        parked, self.parked = self.parked, []
        now = time.monotonic_ns()
        worker = self.worker
        for conn, ready in parked:
            if not worker.stopping and now < worker.end:
                self._vu_send(conn, ready)


SCHEDULERS: dict[str, type[Scheduler]] = {
    "timeline": TimelineScheduler,
    "rate": RateScheduler,
    "closed": ClosedScheduler,
}
"""The scheduler of each load model (replay.config.MODELS)."""


def scheduler_class(model: str) -> type[Scheduler]:
    """The scheduler of load model `model`; ValueError for one that does not exist."""
    if model not in SCHEDULERS:
        import replay.executors  # noqa: F401  (k6's executors register themselves)
    try:
        return SCHEDULERS[model]
    except KeyError:
        raise ValueError(f"unknown load model {model!r}") from None


def rate_curve(cfg: WorkerConfig) -> pacing.RateCurve:
    """The rate model's offered rate over the run: --stage ramps, or --rate throughout."""
    if cfg.stages:
        return pacing.staged(cfg.stages, cfg.rate)
    return pacing.constant(cfg.rate, cfg.duration_ns)
