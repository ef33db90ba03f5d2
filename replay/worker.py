"""One gevent worker process: its shard of the corpus, paced by its load model's scheduler,
over a bounded connection pool.

Started by the coordinator as ``python -m replay.worker CONTROL_FD DATA_FD`` (a clean
interpreter; gevent's monkey-patching happens in `main` and nowhere else). It loads its
shard, opens connections ahead, says `Ready`, and paces from the common start instant on
CLOCK_MONOTONIC (system-wide on Linux, so every worker paces on the same clock).
Messages are replay.protocol's.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import os
import signal
import sys
import time
import traceback
from typing import Any

import gevent

from capture.corpus import CorpusError, CorpusReader
from capture.units import NS
from replay import protocol, rewrite, wire
from replay.address import Target, resolve
from replay.ahead import Ahead
from replay.config import WorkerConfig
from replay.core_wait import CoreWait
from replay.encoder import Encoder
from replay.pipe import Pipe
from replay.probe import PROBED, Prober, http_fetcher
from replay.protocol import DoneInfo, ErrorKind, LoadStage, ReadyInfo
from replay.recorder import IntervalRecorder
from replay.response import ResponseCache
from replay.rewrite import SERIAL_FORMAT, RewriteError, Template
from replay.schedulers import scheduler_class
from replay.shard import LEAD_NS, Shard
from replay.wire import Connection

__all__ = ["AckRing", "Pipe", "Worker", "main"]

STOP_GRACE_NS = NS  # in-flight requests get this long to finish after a stop
ACK_RING = 256  # reads name the oldest of the last 256 traces this worker saw ingested
PREFILL_MARGIN_NS = 20_000_000  # work ahead until this long before the start instant
TIMER_SLACK_NS = 1_000  # the kernel may oversleep a select() by this much
FOLDS = 10  # recorder flushes per interval, sent together at its end
PRECONNECT_WAIT_NS = 2 * NS
COUNT_UNSENT_NS = 5 * NS  # counting what fell behind takes at most this long (a stop: 1 s)
COUNT_CHECK = 8  # unsent requests counted between two looks at the clock
COUNT_SLICE_NS = 1_000_000  # ... and the loop gets a turn (responses are read) this often


class AckRing:
    """Traces this worker has seen ingested (2xx): reads name the oldest still held."""

    __slots__ = ("_ids", "_next")

    def __init__(self) -> None:
        self._ids: list[bytes] = []
        self._next = 0

    def add(self, trace_id: bytes) -> None:
        if len(self._ids) < ACK_RING:
            self._ids.append(trace_id)
        else:
            self._ids[self._next] = trace_id
            self._next = (self._next + 1) % ACK_RING

    def pick(self, fallback: bytes) -> bytes:
        if not self._ids:
            return fallback
        return self._ids[self._next] if len(self._ids) == ACK_RING else self._ids[0]


class Worker:
    """The running worker: connections, its load model's scheduler, ticker, watchdog.

    Requests are not greenlets: each connection's read watcher parses its response and
    calls `_done` from the loop, which records it and hands the connection back to the
    scheduler. Every model sends through `dispatch`.
    """

    def __init__(self, cfg: WorkerConfig, pipe: Pipe | None) -> None:

        self.cfg = cfg
        self.pipe = pipe
        self.target = Target.parse(cfg.target)
        self.encoder = Encoder(self.target, cfg.api_key, cfg.user_agent)
        self.minter = rewrite.IdMinter(cfg.worker, cfg.nonce, cfg.segment, cfg.segments)
        self.stamps = rewrite.Stamps()
        self.recorder = IntervalRecorder(cfg.worker)
        self.record = self.recorder.record
        self.iso = self.stamps.iso
        self.core_wait = CoreWait()  # time off its core while sending
        self.scheduler = scheduler_class(cfg.model)(self)
        self._reuse = self.scheduler.done
        self.timeout_ns = cfg.timeout_ns
        self.reads = True  # does any template read a trace it does not define?
        self.ring = AckRing()
        self.serial = 0
        self.start = 0
        self.end = 0
        self.wall_ms = 0
        self.stopping = False
        self.abandoned = 0
        self.unsent = 0  # due before the end, never sent: the worker fell behind
        self.stopped_at = 0  # when a stop came (monotonic ns)
        self.unsent_counted = True  # False: counting stopped at COUNT_UNSENT_NS
        self.interval = 0  # the next interval to send
        self.folds: list[bytes] = []  # recorder deltas of the interval, not sent yet
        self.conns: list[Connection] = []
        self.busy = 0
        self.shard: Shard | None = None
        self.ahead: Ahead | None = None
        self.loop: Any = None
        self.prober: Prober | None = None
        if cfg.visibility_probe > 0:
            fetch = http_fetcher(
                self.target.scheme, self.target.host, self.target.port, cfg.api_key
            )
            self.prober = Prober(
                fetch, cfg.visibility_probe, cfg.visibility_timeout_ns, self.target.base_path
            )

    # --- setup ---------------------------------------------------------------------------

    def load(self) -> ReadyInfo:
        """Read and encode this worker's shard, resolve the target; the `ready` info."""

        encoder, minter, cfg = self.encoder, self.minter, self.cfg
        created_holder: list[int | None] = []

        def build(record: Any, index: int) -> Template:
            return rewrite.build_template(
                record,
                request_start=encoder.request_start,
                head_end=encoder.head_end,
                minter=minter,
                created_ms=created_holder[0],
                project_id=cfg.project_id,
                where=f"record {index}",
            )

        with CorpusReader(cfg.corpus) as reader:
            created_holder.append(rewrite.created_ms(reader.header.meta.created))
        self.shard = Shard(cfg, build, self._loading, lead_ns=LEAD_NS)
        if not self.shard.everyone:
            # acknowledged ingests matter only to templates that read a trace
            self.reads = self.shard.has_read or self.prober is not None
        family, addr = resolve(self.target)
        self.loop = gevent.get_hub().loop
        n = self.scheduler.connections(cfg)
        cache = ResponseCache()  # one per worker, shared by its connections
        self.conns = [
            wire.Connection(self.target, addr, family, self._done, self.loop, cache=cache)
            for _ in range(max(n, 0))
        ]
        self.scheduler.attach(self.conns)
        self._preconnect(self.scheduler.preconnect(self.conns))
        info = ReadyInfo(
            pid=os.getpid(),
            records=self.shard.mine,
            cached=self.shard.cached is not None,
            spooled=self.shard.spooled,
            spool_bytes=self.shard.spool.bytes_on_disk if self.shard.spool is not None else 0,
            spool_dir=self.shard.spool_dir,
            sharding=self.shard.sharding,
        )
        if self.shard.spool_error:
            info["spool_error"] = self.shard.spool_error
        if self.shard.extended_ns:
            info["spool_lead_ns"] = self.shard.extended_ns + LEAD_NS
        if self.shard.lead_short:
            info["spool_lead_short"] = self.shard.lead_short
        self.shard.build_behind(self.loop)  # the rest of the spool, while waiting and sending
        return info

    def _loading(self, read: int, records: int, stage: LoadStage) -> None:
        """Still loading: `read` of the corpus's `records` read so far, measuring the shard
        (`stage` "read") or building its templates into the spool ("spool"). The coordinator
        waits as long as these keep coming, and shows them."""
        if self.pipe is not None:
            self.pipe.send(*protocol.Loading(self.cfg.worker, read, records, stage).encode())

    def _preconnect(self, conns: list[Connection]) -> None:
        """Open connections before the start, as wrk does: a connect costs the kernel up to
        milliseconds on a busy machine (ephemeral port search), which is no part of what a
        run measures. Those that fail now are opened again by their first request."""
        for conn in conns:
            conn.connect()
        deadline = time.monotonic_ns() + PRECONNECT_WAIT_NS
        while not all(c.ready for c in conns) and time.monotonic_ns() < deadline:
            gevent.sleep(0.005)

    # --- the hot path --------------------------------------------------------------------

    def dispatch(self, conn: Connection, tpl: Template, due: int) -> None:
        """Render and send one request on an idle connection; `due` is its intended time."""
        serial = self.serial
        self.serial = serial + 1
        tag = SERIAL_FORMAT % serial
        read = self.ring.pick(tpl.read_fallback) if tpl.has_read else b""
        delta_ms = self.wall_ms + (due - self.start) // 1_000_000 - tpl.recorded_ms
        data = tpl.render(tag, delta_ms, read, self.iso)
        conn.tpl = tpl
        conn.tag = tag
        conn.due = due
        self.busy += 1
        sent = conn.sent = time.monotonic_ns()
        conn.deadline = sent + self.timeout_ns
        conn.send(data, sent, tpl.head)

    def _done(self, conn: Connection, outcome: str, done: int) -> None:
        """Every exchange ends here, called from the loop: record, then reuse the connection."""
        self.busy -= 1
        tpl = conn.tpl
        if self.reads and tpl.ack_prefix and outcome[0] == "2":
            self.acknowledged(tpl.trace_id(conn.tag), tpl.endpoint, done)
        self.record(tpl.endpoint, outcome, conn.due, conn.sent, done)
        self._reuse(conn, done)

    def acknowledged(self, trace_id: bytes, endpoint: str, done: int) -> None:
        """A trace was ingested (2xx): later reads may name it, and it may be probed."""
        self.ring.add(trace_id)
        if self.prober is not None and endpoint in PROBED and not self.stopping:
            self.prober.consider(trace_id, done)

    # --- background ------------------------------------------------------------------------

    def _ticker(self) -> None:
        """Fold the recorder FOLDS times a second (each fold holds the loop for a tenth of
        what one fold a second would) and send each whole second's folds together."""
        folds = 0
        while True:
            folds += 1
            wait = self.start + folds * NS // FOLDS - time.monotonic_ns()
            if wait > 0:
                gevent.sleep(wait / NS)
            self.folds.append(self.recorder.flush(self.interval, self.busy))
            if folds % FOLDS == 0:
                self._send_interval()

    def flush(self) -> None:
        """The last, partial interval: fold what is left and send it."""
        self.folds.append(self.recorder.flush(self.interval, self.busy))
        self._send_interval()

    def _send_interval(self) -> None:
        with self._pipe_lock():  # a ticker killed while waiting here loses no fold
            folds, self.folds = self.folds, []
            if self.pipe is not None:
                self.pipe.send(*protocol.Delta(self.cfg.worker, self.interval, folds).encode())
                self._send_probes()
            self.interval += 1

    def _finish_probes(self) -> None:
        """Probes still polling after the run: their lag is the point, so they get until
        --visibility-timeout (a second after a stop), then what ended is sent."""
        if self.prober is not None:
            grace = 1.0 if self.stopping else self.cfg.visibility_timeout_ns / NS + 1
            self.prober.stop(grace)
            with self._pipe_lock():
                self._send_probes()

    def _send_probes(self) -> None:
        if self.prober is not None and self.pipe is not None:
            ended = self.prober.take()
            if ended:
                self.pipe.send(*protocol.Probes(self.cfg.worker, ended).encode())

    def _pipe_lock(self) -> Any:
        lock = getattr(self.pipe, "lock", None)
        return lock if lock is not None else contextlib.nullcontext()

    def _watchdog(self) -> None:

        tick = min(0.1, self.cfg.timeout_ns / NS / 4)
        while True:
            gevent.sleep(tick)
            now = time.monotonic_ns()
            for conn in self.conns:
                if 0 < conn.deadline < now:
                    conn.expire()

    def _control(self) -> None:
        assert self.pipe is not None
        while True:
            message = self.pipe.receive()
            if message is None or isinstance(protocol.to_worker(message), protocol.Stop):
                self.stop()
                return

    def stop(self) -> None:
        if not self.stopping:
            self.stopped_at = time.monotonic_ns()
        self.stopping = True

    # --- the run -------------------------------------------------------------------------

    def run(self, start_ns: int, wall_ns: int) -> DoneInfo:
        """Pace from `start_ns` until the duration ends or a stop; drain; final flush."""

        self.start = start_ns
        self.wall_ms = wall_ns // 1_000_000
        if self.prober is not None:
            self.prober.start_ns = start_ns
        cfg = self.cfg
        self.end = end = start_ns + cfg.duration_ns
        assert self.shard is not None
        scheduler = self.scheduler
        self.ahead = Ahead(
            scheduler.source(self.shard), self.loop, self.shard.ahead, on_fill=scheduler.on_fill
        )
        self.ahead.prefill(start_ns - PREFILL_MARGIN_NS)
        self.shard.built_late = 0  # (built before the start: not late)
        background = self._until_start(start_ns)
        scheduler.begin()
        # Run until the end of the duration (every worker ends together) or a stop.
        while not self.stopping and time.monotonic_ns() < end:
            gevent.sleep(min(0.05, max(end - time.monotonic_ns(), 0) / NS))
        scheduler.halt()  # no new requests; those in flight may finish
        self.core_wait.end(time.monotonic_ns())
        self.ahead.stop()
        if scheduler.counts_unsent:  # what was due until the end, or the stop, never sent
            self._count_unsent(min(self.stopped_at if self.stopping else end, end) - start_ns)
        self._drain()
        with self._pipe_lock():
            gevent.killall(background)  # (never the ticker halfway through an interval)
        self.flush()  # the last, partial interval
        self._finish_probes()
        for conn in self.conns:
            conn.close()
        self.shard.close()
        return {
            "probes_skipped": self.prober.skipped if self.prober is not None else 0,
            "abandoned": self.abandoned,
            "serial": self.serial,
            "intervals": self.interval,
            "unsent": self.unsent,
            "unsent_counted": self.unsent_counted,
            "built_late": self.shard.built_late,
            **self.core_wait.info(),  # type: ignore[typeddict-item]
        }

    def _until_start(self, start_ns: int) -> list[Any]:
        """Start the watchdog and the control reader, wait for `start_ns`, start the ticker:
        the background greenlets, for `killall` at the end."""
        background = [gevent.spawn(self._watchdog)]
        if self.pipe is not None:
            background.append(gevent.spawn(self._control))
        wait = start_ns - time.monotonic_ns()
        if wait > 0:
            gevent.sleep(wait / NS)
        self.core_wait.begin(time.monotonic_ns())
        background.append(gevent.spawn(self._ticker))
        return background

    def _drain(self) -> None:
        """Let what is in flight finish (--timeout, or STOP_GRACE_NS after a stop), then cut
        off the rest: abandoned, not the target's fault, not recorded."""
        grace = STOP_GRACE_NS if self.stopping else self.cfg.timeout_ns + NS // 2
        drain_until = time.monotonic_ns() + grace
        while self.busy and time.monotonic_ns() < drain_until:
            gevent.sleep(0.005)
        if self.busy:
            self.stopping = True
            for conn in self.conns:
                if conn.busy:
                    conn.abandon()
                    self.busy -= 1
                    self.abandoned += 1

    def _count_unsent(self, cutoff_ns: int) -> None:
        """Requests due before `cutoff_ns` (from the start) that were never sent because the
        worker had fallen behind its schedule: dropped, each under its endpoint, and offered.
        The loop gets a turn every COUNT_SLICE_NS (responses in flight are still read, the
        ticker folds what was counted so far: drops and offered together). Counting takes at
        most COUNT_UNSENT_NS, or 1 s from a stop; past that `unsent_counted` is False and
        the count a lower bound. (One counted request of a streamed shard may read several
        records: the clock is read every COUNT_CHECK requests, not every slice.)"""
        assert self.ahead is not None and self.shard is not None
        self.shard.stop_building()
        drop, offered = self.recorder.drop, self.recorder.offered
        began = turn = time.monotonic_ns()
        n = told = 0
        for due, tpl in self.ahead.rest():
            if due >= cutoff_ns:
                break
            drop(tpl.endpoint, due)
            n += 1
            if n % COUNT_CHECK:
                continue
            now = time.monotonic_ns()
            limit = began + COUNT_UNSENT_NS
            if self.stopping:
                limit = min(limit, max(self.stopped_at, began) + NS)
            if now > limit:
                self.unsent_counted = False
                break
            if now - turn > COUNT_SLICE_NS:
                offered(n - told)
                told = n
                gevent.sleep(0)
                turn = time.monotonic_ns()
        offered(n - told)
        self.unsent = n


def main(argv: list[str] | None = None) -> int:
    """Entry point of a worker process: the only place gevent patches anything."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the coordinator handles Ctrl-C and says stop
    from replay.gevent_patch import patch_all

    patch_all()

    args = sys.argv[1:] if argv is None else argv
    control_fd, data_fd = int(args[0]), int(args[1])
    pipe = Pipe(control_fd, data_fd)
    worker_index = -1
    try:
        message = pipe.receive()
        if message is None:
            return 1
        cfg = WorkerConfig.from_wire(message)
        worker_index = cfg.worker
        if cfg.scenarios:  # a scenario file: one lane per scenario
            from replay.lanes import ScenarioWorker

            worker: Worker = ScenarioWorker(cfg, pipe)
        else:
            worker = Worker(cfg, pipe)
        info = worker.load()
    except Exception as exc:
        pipe.send(*protocol.Error(worker_index, _kind(exc), str(exc)).encode())
        return 3
    # The templates live all run: freeze them out of the collector's sight. During the run
    # the collector stays off: requests make no reference cycles (their garbage goes by
    # reference counting), and a collection pass over a streamed shard's templates would
    # hold the loop for a long time. bench/memory.py checks that memory stays flat.
    gc.collect()
    gc.freeze()
    gc.disable()
    _timer_slack(TIMER_SLACK_NS)
    pipe.send(*protocol.Ready(cfg.worker, info).encode())
    message = pipe.receive()
    command = protocol.to_worker(message) if message is not None else None
    if not isinstance(command, protocol.Start):
        return 0
    try:
        done = worker.run(command.mono_ns, command.wall_ns)
    except Exception as exc:  # a bug, not a target failure: say so and exit non-zero
        traceback.print_exc()
        pipe.send(*protocol.Error(cfg.worker, "internal", f"{type(exc).__name__}: {exc}").encode())
        return 4
    pipe.send(*protocol.Done(cfg.worker, done).encode())
    return 0


def _timer_slack(ns: int) -> None:
    """Ask Linux to wake this process within `ns` of a timeout (prctl PR_SET_TIMERSLACK):
    the scheduler's naps are tens of microseconds long. Nothing happens elsewhere."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(29, ctypes.c_ulong(ns), 0, 0, 0)  # PR_SET_TIMERSLACK
    except (OSError, AttributeError):
        pass


def _kind(exc: BaseException) -> ErrorKind:

    if isinstance(exc, (CorpusError, RewriteError)):
        return "corpus"
    if isinstance(exc, OSError):
        return "target"
    return "internal"


if __name__ == "__main__":
    sys.exit(main())
