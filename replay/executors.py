"""k6's executors as `Scheduler`s, registered under their k6 names in `SCHEDULERS`.

    constant-arrival-rate, ramping-arrival-rate  RateScheduler (the rate curve, striped)
    corpus-timeline                               TimelineScheduler (--scale, --speed)
    constant-vus, ramping-vus                     VUScheduler (below)
    scenarios                                     Scenarios: a worker's lanes, together

A VU scheduler runs VUs on the scenario's VU steps (replay.vu_schedule, this worker's part):
each VU owns one connection and runs iterations one after another; an iteration is one
request then the think time, or one pass over the flow's steps, each request followed by
its step's think time. A request's intended time is the moment its VU was ready to send.

k6's semantics: when the count falls, the VUs above it start no new iteration and may finish
the one in progress for ``graceful_ramp_down``; at the scenario's end no iteration starts
and those in progress may finish for ``graceful_stop``; past either, a VU sends no further
step (its request in flight, if any, still completes or times out).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from replay.config import WorkerConfig
from replay.pacing import NS
from replay.schedulers import (
    SCHEDULERS,
    AsFastAsVUs,
    RateScheduler,
    Scheduler,
    TimelineScheduler,
)
from replay.wire import Connection

if TYPE_CHECKING:
    from replay.lanes import Lane
    from replay.rewrite import Template
    from replay.shard import Shard

GRACE_NS = 30 * NS


class VUScheduler(AsFastAsVUs):
    """constant-vus and ramping-vus: VUs on this worker's VU steps (``cfg.lane["steps"]``,
    [[ns from the scenario's start, VUs], ...]); ``cfg.vus`` is the most at any instant."""

    def __init__(self, worker: Any) -> None:
        super().__init__(worker)
        lane = self.cfg.lane
        self.steps = [(int(t), int(n)) for t, n in lane.get("steps", [[0, self.cfg.vus]])]
        self.flow = [(str(e), int(ns)) for e, ns in lane.get("flow", [])]
        self.grace_stop = int(lane.get("graceful_stop_ns", GRACE_NS))
        self.grace_down = int(lane.get("graceful_ramp_down_ns", GRACE_NS))
        self.think = self.cfg.think_ns
        self.target = 0  # VUs 0 .. target-1 may start iterations
        self.busy: list[bool] = []  # VU in an iteration (sending, waiting or thinking)
        self.step: list[int] = []  # the flow step it is at
        self.cut: list[int] = []  # past this instant it sends no further step (0: none)
        self.parked: list[tuple[int, int]] = []  # VUs waiting for `Ahead`, and since when
        self.shard: Shard | None = None
        self.by_endpoint: dict[str, list[Template]] = {}
        self.next_of: dict[str, int] = {}
        self._vu_of: dict[int, int] = {}
        self._timers: list[Any] = []
        self.on_fill = self._unpark

    def attach(self, conns: list[Connection]) -> None:
        super().attach(conns)
        n = len(conns)
        self.busy, self.step, self.cut = [False] * n, [0] * n, [0] * n
        self._vu_of = {id(conn): i for i, conn in enumerate(conns)}

    def source(self, shard: Shard) -> Iterator[Any]:
        self.shard = shard
        if self.flow:
            for endpoint, _think in self.flow:
                if endpoint not in self.by_endpoint:
                    self.by_endpoint[endpoint] = shard.templates_of(endpoint)  # type: ignore[attr-defined]
                    self.next_of[endpoint] = 0
            return iter(())
        return shard.cycle()

    # --- VUs -------------------------------------------------------------------------------

    def active(self) -> int:
        """VUs in an iteration now."""
        return sum(self.busy)

    def finished(self, now: int) -> bool:
        """Past the scenario's end with no iteration left (or past its graceful stop)."""
        end = self.worker.end
        return now >= end and (not any(self.busy) or now >= end + self.grace_stop)

    def begin(self) -> None:
        start = self.worker.start
        for t, n in self.steps:
            self._at(start + t, n)

    def _at(self, when: int, n: int) -> None:
        """Set the target to `n` at `when` (a timer, re-armed if the loop's cached time made
        it fire early)."""
        now = time.monotonic_ns()
        if when <= now:
            self._set_target(n)
            return
        timer = self.worker.loop.timer((when - now) / NS)
        timer.start(self._at, when, n, update=True)
        self._timers.append(timer)

    def _set_target(self, n: int) -> None:
        worker = self.worker
        now = time.monotonic_ns()
        if worker.stopping or now >= worker.end:
            return
        old, self.target = self.target, min(n, len(self.conns))
        for i in range(old, self.target):  # (re)activated: no cut; idle ones start now
            self.cut[i] = 0
            if not self.busy[i]:
                self._iterate(i, now)
        for i in range(self.target, old):  # retired: finish the iteration, within the grace
            if self.busy[i]:
                self.cut[i] = now + self.grace_down

    def _iterate(self, i: int, now: int) -> None:
        """Start VU i's next iteration, if it may."""
        worker = self.worker
        if i >= self.target or worker.stopping or now >= worker.end:
            self.busy[i] = False
            return
        self.busy[i] = True
        self.step[i] = 0
        self._send(i, now)

    def _may_continue(self, i: int, now: int) -> bool:
        worker = self.worker
        cut = self.cut[i]
        return not (worker.stopping or (cut and now >= cut) or now >= worker.end + self.grace_stop)

    def _send(self, i: int, ready: int) -> None:
        worker = self.worker
        if self.flow:
            endpoint = self.flow[self.step[i]][0]
            pool = self.by_endpoint[endpoint]
            k = self.next_of[endpoint]
            self.next_of[endpoint] = (k + 1) % len(pool)
            tpl = pool[k]
        else:
            ahead = worker.ahead
            assert ahead is not None
            if not ahead.items:
                if ahead.exhausted:
                    self.busy[i] = False
                else:
                    self.parked.append((i, ready))  # (its wait is part of its latency)
                return
            tpl = ahead.items.popleft()
            ahead.poke()
        worker.recorder.offered()
        worker.dispatch(self.conns[i], tpl, ready)

    def done(self, conn: Connection, done: int) -> None:
        i = self._vu_of[id(conn)]
        think = self.flow[self.step[i]][1] if self.flow else self.think
        self.step[i] += 1
        if think and not self.worker.stopping:
            timer = self.worker.loop.timer(think / NS)
            timer.start(self._wake, i, timer)
        else:
            self._next(i, done)

    def _wake(self, i: int, timer: Any) -> None:
        timer.close()
        self._next(i, time.monotonic_ns())

    def _next(self, i: int, now: int) -> None:
        """After a request (and its think time): the flow's next step, or a new iteration."""
        if self.flow and self.step[i] < len(self.flow):
            if self._may_continue(i, now):
                self._send(i, now)
            else:
                self.busy[i] = False
            return
        self.busy[i] = False
        self._iterate(i, now)

    def _unpark(self) -> None:
        parked, self.parked = self.parked, []
        now = time.monotonic_ns()
        for i, ready in parked:
            if i < self.target and self._may_continue(i, now) and now < self.worker.end:
                self._send(i, ready)
            else:
                self.busy[i] = False

    def halt(self) -> None:
        for timer in self._timers:
            timer.stop()
        self._timers = []


class Scenarios(Scheduler):
    """A worker running a scenario file: its lanes (replay.lanes), each with its own
    scheduler, connections and recorder; this one only starts and stops them together."""

    def __init__(self, worker: Any) -> None:
        super().__init__(worker)
        self.lanes: list[Lane] = []

    @classmethod
    def connections(cls, cfg: WorkerConfig) -> int:
        return 0  # (each lane opens its own)

    @classmethod
    def most_requests(cls, cfg: WorkerConfig) -> int:
        return 0

    def source(self, shard: Shard) -> Iterator[Any]:
        return iter(())

    def begin(self) -> None:
        for lane in self.lanes:
            lane.begin()

    def done(self, conn: Connection, done: int) -> None:
        return  # (a lane's connections report to the lane)

    def halt(self) -> None:
        for lane in self.lanes:
            lane.scheduler.halt()

    def finished(self, now: int) -> bool:
        return all(lane.finished(now) for lane in self.lanes)


SCHEDULERS.update(
    {
        "constant-arrival-rate": RateScheduler,
        "ramping-arrival-rate": RateScheduler,
        "corpus-timeline": TimelineScheduler,
        "constant-vus": VUScheduler,
        "ramping-vus": VUScheduler,
        "scenarios": Scenarios,
    }
)
