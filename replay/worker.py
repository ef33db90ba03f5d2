"""One gevent worker process: its shard of the corpus, paced, over a bounded connection pool.

Started by the coordinator as ``python -m replay.worker CONTROL_FD DATA_FD`` (a clean
interpreter; gevent's monkey-patching happens in `main` and nowhere else). It reads its
`WorkerConfig` from the control pipe, loads its shard of the corpus into request templates
(in memory, or, when they do not fit the cache, spooled to disk), opens connections ahead,
says ``ready``, and waits for ``start`` with the common start instant (CLOCK_MONOTONIC,
which is system-wide on Linux, so every worker paces on the same clock).

Requests are not greenlets. Each `wire.Connection` parses its response in the loop's read
callback and calls `Worker._done`, which records it and then reuses the connection: the
closed model sends the VU's next request at once (or after its think time, on a timer);
the open models put it back on the idle list. The open models' scheduler is a check
watcher (it runs after every poll of the loop): it sends every request already due, each
stamped with its own intended time, on an idle connection, or drops it when none is idle
(``--max-inflight`` reached) - counted, never delayed. When the run ends with requests due
that the worker never got to (it fell behind its own schedule), they are counted as dropped
too: `offered` is the schedule's, not what the worker managed. Between requests due within SPIN_NS
it naps in a select() on the loop's epoll descriptor (microsecond resolution, woken by any
socket); further ahead it sleeps on a timer (millisecond resolution) until SPIN_NS before.
Pacing maths, corpus decoding and template building happen ahead of the schedule (`Ahead`),
in slices of about 0.1 ms between turns of the loop, never inside a dispatch.

A ticker greenlet folds the IntervalRecorder ten times a second (each fold holds the loop a
tenth as long as one a second) and sends each second's folds together; a watchdog expires
connections whose request has outlived --timeout (their outcome is "timeout"); a control
greenlet obeys ``stop``.

Messages (msgpack arrays, worker -> coordinator): ["loading", w, read, records, stage]
(while a long corpus is read: stage "read", then "spool"), ["ready", w, info],
["delta", w, k, [bytes, ...]] (interval k's recorder deltas), ["done", w, info],
["error", w, kind, text]; coordinator -> worker: a config map, then
["start", mono_ns, wall_ns], ["stop"].
"""

from __future__ import annotations

import bisect
import contextlib
import gc
import itertools
import math
import os
import signal
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

import gevent
import gevent.lock
import gevent.os
import msgpack

from capture.corpus import CorpusError, CorpusReader
from replay import pacing, rewrite, wire
from replay.config import WorkerConfig, shard_of
from replay.pacing import TimelineEntry
from replay.recorder import IntervalRecorder
from replay.rewrite import RewriteError, Template
from replay.spool import TemplateSpool
from replay.wire import Connection

NS = 1_000_000_000
STOP_GRACE_NS = NS  # in-flight requests get this long to finish after a stop
ACK_RING = 256  # reads name the oldest of the last 256 traces this worker saw ingested
AHEAD = 4096  # requests (or templates) prepared ahead of the schedule, at most
SLICE_NS = 100_000  # work ahead holds the loop for about this long at a time
BATCH = 8  # items prepared between two looks at the clock (8 streamed records: ~90 µs)
PREFILL_MARGIN_NS = 20_000_000  # work ahead until this long before the start instant
SPIN_NS = 1_500_000  # the scheduler keeps the loop spinning when the next request is this near
NAP_EARLY_NS = 5_000  # ... napping in select() until this long before it
NAP_MIN_NS = 10_000  # (not for less)
TIMER_SLACK_NS = 1_000  # the kernel may oversleep a select() by this much (default 50 µs)
FOLDS = 10  # recorder flushes per interval, sent together at its end
DISPATCH_BATCH = 64  # requests sent per turn of the loop at most, when catching up
PRECONNECT = 64  # open models: connections opened before the start (closed: one per VU)
PRECONNECT_WAIT_NS = 2 * NS
LOAD_PROGRESS_EVERY = 1 << 17  # corpus records read between two "loading" messages,
LOAD_PROGRESS_NS = NS  # or this long, whichever comes first (large records: slow reading)
LOAD_CHECK = 1024  # records read between two looks at the clock while loading
CLOSED_MOST_RATE = 200_000  # req/s: more than one worker sends in the closed model (~75,000)
COUNT_UNSENT_NS = 5 * NS  # counting what fell behind takes at most this long (a stop: 1 s)
COUNT_CHECK = 8  # unsent requests counted between two looks at the clock
COUNT_SLICE_NS = 1_000_000  # ... and the loop gets a turn (responses are read) this often


class Pipe:
    """Framed msgpack messages over a pair of pipe fds, cooperative under gevent.

    A message larger than the pipe's buffer is written in pieces, the greenlet waiting for
    the coordinator to read in between: `lock` (re-entrant) keeps another greenlet's
    message from landing in the middle, and whoever kills a sender holds it first, so that
    no message is cut.
    """

    def __init__(self, read_fd: int, write_fd: int) -> None:

        self._read_fd, self._write_fd = read_fd, write_fd
        gevent.os.make_nonblocking(read_fd)
        gevent.os.make_nonblocking(write_fd)
        self._unpacker = msgpack.Unpacker(raw=False)
        self._packer = msgpack.Packer(use_bin_type=True)
        self._nb_read = gevent.os.nb_read
        self._nb_write = gevent.os.nb_write
        self.lock = gevent.lock.RLock()

    def send(self, *message: Any) -> None:
        data = memoryview(self._packer.pack(list(message)))
        with self.lock:
            while data:
                written = self._nb_write(self._write_fd, data)
                data = data[written:]

    def receive(self) -> Any:
        """The next message; None when the coordinator has gone."""
        while True:
            for message in self._unpacker:
                return message
            chunk = self._nb_read(self._read_fd, 65536)
            if not chunk:
                return None
            self._unpacker.feed(chunk)


class AckRing:
    """Traces this worker has seen ingested (2xx): reads name the oldest still held."""

    __slots__ = ("_ids", "_next")

    def __init__(self, size: int = ACK_RING) -> None:
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


class Shard:
    """This worker's records as templates: in memory when they fit, else spooled to disk.

    Loading first measures the shard (decoding only). When it fits `cfg.cache_bytes` its
    templates are built into memory; otherwise they are built into a `TemplateSpool`, so
    that a pass over a large shard reads templates built once instead of decoding and
    building every record again on the core that sends. Only what the run can reach is
    spooled (`_spooled_enough`); records after that are built as they are read, if the run
    gets there after all. When the spool cannot be written (a full disk) every pass decodes
    and builds on the fly, and `spool_error` says why.
    """

    def __init__(
        self,
        cfg: WorkerConfig,
        build: Callable[[Any, int], Template],
        progress: Callable[[int, int, str], None] | None = None,
    ) -> None:

        self.cfg = cfg
        self._build = build
        with CorpusReader(cfg.corpus) as reader:
            header = reader.header
            self.records = header.records
            self.created = header.meta.created
            last = header.chunks[-1].last_ns if header.chunks else 0
            self.period_ns = pacing.loop_period(header.duration_ns, last, header.records)
        self.cached: list[tuple[Any, Template]] | None = None
        self.spool: TemplateSpool | None = None
        self.spool_error: str | None = None
        self.spooled = 0  # templates in the spool once filled (kept after close())
        self.spool_dir = cfg.spool_dir or tempfile.gettempdir()
        self._most: int | None = None  # most_requests(cfg), once needed
        self._scale = pacing.as_fraction(cfg.scale)
        self.mine = 0
        # First the size of this shard (decoding only), so that a spooled shard never builds
        # a cache it then throws away: memory freed by the interpreter is not given back.
        budget = cfg.cache_bytes
        for _entry, record in self._walk(everyone=False, progress=progress, stage="read"):
            self.mine += 1
            budget -= len(record.body) + len(record.path) + 512
        if budget >= 0:
            self.cached = [(e, build(r, e.record)) for e, r in self._walk(everyone=False)]
        elif self.mine:
            self._fill_spool(progress)
        self.everyone = self.mine == 0  # an empty shard borrows every record (rate, closed)

    def _fill_spool(self, progress: Callable[[int, int, str], None] | None) -> None:
        """Build this shard's templates into a new spool, as far as the run can reach."""
        try:
            self.spool = TemplateSpool(self.spool_dir)
        except OSError as exc:
            self.spool_error = f"cannot create a template spool in {self.spool_dir}: {exc}"
            return
        try:
            for entry, record in self._walk(everyone=False, progress=progress, stage="spool"):
                if not self._spool(entry, self._build(record, entry.record)):
                    return
                if self._spooled_enough(entry, self.spool.count):
                    break
        except BaseException:  # a bad record (RewriteError), a damaged chunk: no open file left
            self.close()
            raise
        self._finish_spool()

    def _spool(self, entry: Any, template: Template) -> bool:
        assert self.spool is not None
        try:
            self.spool.add(entry, template)
        except OSError as exc:
            self._lose_spool(exc)
            return False
        return True

    def _finish_spool(self) -> None:
        assert self.spool is not None
        try:
            self.spool.finish()
        except OSError as exc:
            self._lose_spool(exc)
            return
        self.spooled = self.spool.count

    def _lose_spool(self, exc: OSError) -> None:
        assert self.spool is not None
        self.spool_error = f"cannot write the template spool in {self.spool_dir}: {exc}"
        with contextlib.suppress(OSError):
            self.spool.close()
        self.spool = None

    def _spooled_enough(self, entry: TimelineEntry, spooled: int) -> bool:
        """Whether the run can reach no record of this shard after `entry` (the `spooled`-th
        spooled): the timeline ends within the first pass before the next record, or the
        rate and closed models cannot send more requests than that (with a wide margin)."""
        cfg, period = self.cfg, self.period_ns
        if cfg.model == "timeline":
            if pacing.timeline_due(1, period, 0, cfg.speed) < cfg.duration_ns:
                return False  # more than one pass: every record
            # (a record with no copy at this --scale does not end the timeline: it goes on)
            due = pacing.timeline_due(0, period, entry.offset_ns, cfg.speed)
            return due >= cfg.duration_ns and pacing.copies(entry.record, self._scale) > 0
        if self._most is None:
            self._most = most_requests(cfg)
        return spooled >= self._most

    @property
    def has_read(self) -> bool:
        """Whether any of this shard's templates may read a trace it does not define."""
        if self.cached is not None:
            return any(tpl.has_read for _entry, tpl in self.cached)
        if self.spool is not None and self.spool.count == self.mine:
            return self.spool.has_read
        return True  # not all built yet: assume it may

    def close(self) -> None:
        """Close the spool (and forget it: a later pass reads and builds from the corpus)."""
        if self.spool is not None:
            self.spool.close()
            self.spool = None

    def _walk(
        self,
        everyone: bool,
        progress: Callable[[int, int, str], None] | None = None,
        stage: str = "read",
        after: int = -1,
    ) -> Iterator[tuple[Any, Any]]:
        """(TimelineEntry, Record) of this shard, with global index and gap (to the next
        record, or to the end of the period for the last), in order; only records after
        corpus index `after`. `progress(read, records, stage)`, when given (loading: `stage` is
        "read" while the shard is measured, "spool" while it is spooled), hears how far
        a long corpus has been read."""
        worker, workers, period = self.cfg.worker, self.cfg.workers, self.period_ns
        with CorpusReader(self.cfg.corpus) as reader:
            said = time.monotonic_ns()
            chunks = reader.header.chunks
            # start at the chunk holding the record after `after`
            first = max(bisect.bisect_right([c.first_seq for c in chunks], after + 1) - 1, 0)
            base = chunks[first].first_seq if chunks else 0
            records = itertools.chain.from_iterable(map(reader.stream_chunk, chunks[first:]))
            stream: Iterator[Any] = itertools.chain(records, (None,))
            pairs: Iterator[tuple[Any, Any]] = itertools.pairwise(stream)  # (record, next)
            if after >= base:
                pairs = itertools.islice(pairs, after - base + 1, None)
                base = after + 1
            for index, (record, following) in enumerate(pairs, base):
                if progress is not None:
                    read = index + 1
                    if read % LOAD_PROGRESS_EVERY == 0 or (
                        read % LOAD_CHECK == 0 and time.monotonic_ns() - said > LOAD_PROGRESS_NS
                    ):
                        progress(read, self.records, stage)
                        said = time.monotonic_ns()
                if everyone or shard_of(record.trace, index, workers) == worker:
                    offset = record.offset_ns
                    gap = (period if following is None else following.offset_ns) - offset
                    yield TimelineEntry(index, offset, gap), record

    def stop_building(self) -> None:
        """From now on a pass yields stand-ins that only name their endpoint for records it
        would build: what is left of the schedule is counted, not sent, so it is not worth
        encoding."""
        self._build = _unbuilt

    def one_pass(self) -> Iterator[tuple[Any, Template]]:
        """One pass over the shard: from memory, from the spool (then any records after it,
        built as read), or read and built again."""
        if self.cached is not None:
            return iter(self.cached)
        if self.spool is not None:
            spool = self.spool
            if spool.count == self.mine:
                return spool.read()
            rest = self._walk(everyone=False, after=spool.last_record)
            return itertools.chain(spool.read(), self._built(rest))
        return self._built(self._walk(everyone=False))

    def _built(self, walk: Iterator[tuple[Any, Any]]) -> Iterator[tuple[Any, Template]]:
        """(entry, template) of records as read: built now (`_build` is looked up for each,
        so that `stop_building` takes effect within a pass)."""
        return ((e, self._build(r, e.record)) for e, r in walk)

    def cycle(self) -> Iterator[Template]:
        """Templates in corpus order, round and round (rate and closed models)."""
        if self.cached and not self.everyone:
            return itertools.cycle([template for _entry, template in self.cached])
        return self._cycle()

    def _cycle(self) -> Iterator[Template]:
        while True:
            everyone = self.everyone
            source = self._built(self._walk(everyone=True)) if everyone else self.one_pass()
            empty = True
            for _entry, template in source:
                empty = False
                yield template
            if empty:
                return


class Ahead:
    """Work done ahead of the schedule: items from `source` (due times and templates, or
    templates alone) put into a bounded deque in slices of about SLICE_NS, by a check
    watcher that runs once per turn of the loop while the deque is below half full. So
    pacing maths, corpus decoding and template building (streamed shards) never run inside
    a dispatch, and never hold the loop for long. (Not a greenlet: a greenlet that yields
    with sleep(0) is resumed by gevent's callback runner before the loop polls again, for
    up to its switch interval, and starves the sockets.)

    The consumer reads and pops `items`, then calls `poke()`. `on_fill` is called after each
    slice (the closed model restarts VUs that found the deque empty); `exhausted` is set
    once the source has ended.
    """

    def __init__(
        self,
        source: Iterator[Any],
        loop: Any,
        size: int = AHEAD,
        on_fill: Callable[[], None] | None = None,
    ) -> None:
        self.items: deque[Any] = deque()
        self.size = size
        self.exhausted = False
        self.on_fill = on_fill
        self._source = source
        self._check = loop.check()
        self._spin = loop.idle()  # keeps the loop from blocking while there is work
        self.filling = False

    def prefill(self, until_ns: int) -> None:
        """Fill up before the start (until full, or until `until_ns`), then keep it so."""
        while not self.exhausted and len(self.items) < self.size:
            self.fill_slice()
            if time.monotonic_ns() > until_ns:
                break
        self.poke()

    def poke(self) -> None:
        if not self.filling and not self.exhausted and len(self.items) < self.size // 2:
            self.filling = True
            self._check.start(self._on_check)
            self._spin.start(_nothing)

    def stop(self) -> None:
        self.filling = False
        self._check.stop()
        self._spin.stop()

    def _on_check(self) -> None:
        self.fill_slice()
        if self.exhausted or len(self.items) >= self.size:
            self.stop()

    def rest(self) -> Iterator[Any]:
        """What was prepared, then what was not (once stopped): for counting what is left."""
        while self.items:
            yield self.items.popleft()
        yield from self._source

    def fill_slice(self) -> None:
        items, source, size = self.items, self._source, self.size
        until = time.monotonic_ns() + SLICE_NS
        monotonic_ns = time.monotonic_ns
        while len(items) < size:
            want = min(BATCH, size - len(items))
            before = len(items)
            items.extend(itertools.islice(source, want))
            if len(items) - before < want:
                self.exhausted = True
                break
            if monotonic_ns() > until:
                break
        if self.on_fill is not None:
            self.on_fill()


class Worker:
    """The running worker: pool, scheduler or VUs, ticker, watchdog.

    Requests are not greenlets: each connection's read watcher parses its response and
    calls `_done` from the loop, which records it and (closed model) sends the VU's next
    request, or (open models) returns the connection to the idle list. The open-model
    scheduler is a check watcher (it runs after every poll of the loop): it dispatches
    every request already due, each stamped with its own intended time. While the next one
    is due within SPIN_NS the loop does not block in its own poll (an idle watcher) but
    naps in a select() on its epoll descriptor until just before it (`_nap`); further
    ahead it sleeps on a timer until SPIN_NS before: the loop's timers have millisecond
    resolution, too coarse for send lag.
    """

    def __init__(self, cfg: WorkerConfig, pipe: Pipe | None) -> None:

        self.cfg = cfg
        self.pipe = pipe
        self.target = wire.Target.parse(cfg.target)
        self.encoder = wire.Encoder(self.target, cfg.api_key, cfg.user_agent)
        self.minter = rewrite.IdMinter(cfg.worker, cfg.nonce)
        self.stamps = rewrite.Stamps()
        self.recorder = IntervalRecorder(cfg.worker)
        self.record = self.recorder.record
        self.iso = self.stamps.iso
        self.closed = cfg.model == "closed"
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
        self.idle: list[Connection] = []
        self.parked: list[Connection] = []  # closed-model VUs waiting for a template
        self.busy = 0
        self.shard: Shard | None = None
        self.ahead: Ahead | None = None
        self.loop: Any = None
        self._check: Any = None
        self._spin: Any = None
        self._timer: Any = None
        self._next_due = 0
        self._epoll: list[int] = []
        self._think: Any = None

    # --- setup ---------------------------------------------------------------------------

    def load(self) -> dict[str, Any]:
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
        self.shard = Shard(cfg, build, self._loading)
        if not self.shard.everyone:
            # acknowledged ingests matter only to templates that read a trace
            self.reads = self.shard.has_read
        family, addr = wire.resolve(self.target)
        self.loop = gevent.get_hub().loop
        n = cfg.max_inflight if cfg.model != "closed" else cfg.vus
        self.conns = [
            wire.Connection(self.target, addr, family, self._done, self.loop)
            for _ in range(max(n, 0))
        ]
        self.idle = list(reversed(self.conns))
        self._preconnect(self.conns if cfg.model == "closed" else self.conns[:PRECONNECT])
        return {
            "pid": os.getpid(),
            "records": self.shard.mine,
            "cached": self.shard.cached is not None,
            "spooled": self.shard.spooled,
            "spool_bytes": self.shard.spool.bytes_on_disk if self.shard.spool is not None else 0,
            "spool_dir": self.shard.spool_dir,
            **({"spool_error": self.shard.spool_error} if self.shard.spool_error else {}),
        }

    def _loading(self, read: int, records: int, stage: str) -> None:
        """Still loading: `read` of the corpus's `records` read so far, measuring the shard
        (`stage` "read") or building its templates into the spool ("spool"). The coordinator
        waits as long as these keep coming, and shows them."""
        if self.pipe is not None:
            self.pipe.send("loading", self.cfg.worker, read, records, stage)

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

    def _dispatch(self, conn: Connection, tpl: Template, due: int) -> None:
        """Render and send one request on an idle connection; `due` is its intended time."""
        serial = self.serial
        self.serial = serial + 1
        tag = b"%09x" % serial
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
            self.ring.add(tpl.trace_id(conn.tag))
        self.record(tpl.endpoint, outcome, conn.due, conn.sent, done)
        if not self.closed:
            self.idle.append(conn)
        elif not self.stopping and done < self.end:
            if self._think is None:
                self._vu_send(conn, done)
            else:
                timer = self.loop.timer(self._think)
                timer.start(self._vu_wake, conn, timer)

    # --- closed model ----------------------------------------------------------------------

    def _vu_send(self, conn: Connection, ready: int) -> None:
        """A VU's next request; its intended time is the moment it was ready to send."""
        ahead = self.ahead
        assert ahead is not None
        if not ahead.items:
            if not ahead.exhausted:
                self.parked.append(conn)
            return
        tpl = ahead.items.popleft()
        ahead.poke()
        self.recorder.offered()
        self._dispatch(conn, tpl, ready)

    def _vu_wake(self, conn: Connection, timer: Any) -> None:
        timer.close()
        now = time.monotonic_ns()
        if not self.stopping and now < self.end:
            self._vu_send(conn, now)

    def _unpark(self) -> None:
        parked, self.parked = self.parked, []
        now = time.monotonic_ns()
        for conn in parked:
            if not self.stopping and now < self.end:
                self._vu_send(conn, now)

    # --- open models -------------------------------------------------------------------------

    def _schedule(self) -> Iterator[tuple[int, Template]]:

        cfg, shard = self.cfg, self.shard
        assert shard is not None
        if cfg.model == "timeline":
            return pacing.timeline(
                shard.one_pass,
                shard.records,
                shard.period_ns,
                pacing.as_fraction(cfg.scale),
                cfg.speed,
                cfg.duration_ns,
            )
        curve = rate_curve(cfg)
        if cfg.arrival == "poisson":
            hits = pacing.poisson_hits(curve, cfg.seed, cfg.worker, cfg.workers)
        else:
            hits = pacing.uniform_hits(curve, cfg.worker, cfg.workers)
        pairs = zip(hits, shard.cycle(), strict=False)
        if curve.end_ns <= cfg.duration_ns:
            return pairs
        return itertools.takewhile(lambda pair: pair[0] < cfg.duration_ns, pairs)

    def _tick(self) -> None:
        """The scheduler (a check watcher): dispatch what is due, or drop it; re-arm."""
        ahead = self.ahead
        assert ahead is not None
        items = ahead.items
        if self.stopping:
            self._stop_scheduler()
            return
        if not items:
            if ahead.exhausted:
                self._stop_scheduler()
            return
        start = self.start
        now = time.monotonic_ns()
        due = start + items[0][0]
        if due <= now:
            idle, rec, dispatch = self.idle, self.recorder, self._dispatch
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
            self._timer = timer = self.loop.timer((wait - SPIN_NS) / NS)
            timer.start(_nothing)  # wakes the poll; the check watcher does the rest

    def _start_scheduler(self) -> None:
        self._check = self.loop.check()
        self._spin = self.loop.idle()
        self._epoll = [self.loop.fileno()]
        self._check.start(self._tick)
        self._spin.start(self._nap)

    def _nap(self) -> None:
        """The loop has nothing to do (an idle watcher runs only then) and the next request
        is due within SPIN_NS: sleep until just before it, or until a socket is ready, with
        one select on the loop's own epoll descriptor: microsecond resolution, no CPU."""
        ahead = self.ahead
        if ahead is not None and ahead.filling:
            return  # there is work to do between turns
        wait = self._next_due - time.monotonic_ns() - NAP_EARLY_NS
        if wait > NAP_MIN_NS:
            try:
                wire.SELECT(self._epoll, (), (), wait / NS)
            except (OSError, ValueError):
                self._epoll = []  # (a loop without a descriptor: spin instead)

    def _stop_scheduler(self) -> None:
        for watcher in (self._check, self._spin, self._timer):
            if watcher is not None:
                watcher.stop()

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
                self.pipe.send("delta", self.cfg.worker, self.interval, folds)
            self.interval += 1

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
            if message is None or message[0] == "stop":
                self.stop()
                return

    def stop(self) -> None:
        if not self.stopping:
            self.stopped_at = time.monotonic_ns()
        self.stopping = True

    # --- the run -------------------------------------------------------------------------

    def run(self, start_ns: int, wall_ns: int) -> dict[str, Any]:
        """Pace from `start_ns` until the duration ends or a stop; drain; final flush."""

        self.start = start_ns
        self.wall_ms = wall_ns // 1_000_000
        cfg = self.cfg
        self.end = end = start_ns + cfg.duration_ns
        assert self.shard is not None
        closed = cfg.model == "closed"
        if closed:
            self._think = cfg.think_ns / NS if cfg.think_ns else None
            self.ahead = Ahead(self.shard.cycle(), self.loop, on_fill=self._unpark)
        else:
            self.ahead = Ahead(self._schedule(), self.loop)
        self.ahead.prefill(start_ns - PREFILL_MARGIN_NS)
        background = [gevent.spawn(self._watchdog)]
        if self.pipe is not None:
            background.append(gevent.spawn(self._control))
        wait = start_ns - time.monotonic_ns()
        if wait > 0:
            gevent.sleep(wait / NS)
        background.append(gevent.spawn(self._ticker))
        if closed:
            self.parked = list(self.conns)
            self._unpark()
        else:
            self._start_scheduler()
        # Run until the end of the duration (every worker ends together) or a stop.
        while not self.stopping and time.monotonic_ns() < end:
            gevent.sleep(min(0.05, max(end - time.monotonic_ns(), 0) / NS))
        self._stop_scheduler()  # no new requests; those in flight may finish
        self.ahead.stop()
        if not closed:  # what was due until the end, or until the stop, and never sent
            self._count_unsent(min(self.stopped_at if self.stopping else end, end) - start_ns)
        grace = STOP_GRACE_NS if self.stopping else cfg.timeout_ns + NS // 2
        drain_until = time.monotonic_ns() + grace
        while self.busy and time.monotonic_ns() < drain_until:
            gevent.sleep(0.005)
        if self.busy:  # cut off what is still in flight: not the target's fault, not recorded
            self.stopping = True
            for conn in self.conns:
                if conn.busy:
                    conn.abandon()
                    self.busy -= 1
                    self.abandoned += 1
        with self._pipe_lock():
            gevent.killall(background)  # (never the ticker halfway through an interval)
        self.flush()  # the last, partial interval
        for conn in self.conns:
            conn.close()
        self.shard.close()
        return {
            "abandoned": self.abandoned,
            "serial": self.serial,
            "intervals": self.interval,
            "unsent": self.unsent,
            "unsent_counted": self.unsent_counted,
        }

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


def rate_curve(cfg: WorkerConfig) -> pacing.RateCurve:
    """The rate model's offered rate over the run: --stage ramps, or --rate throughout."""
    if cfg.stages:
        return pacing.staged(cfg.stages, cfg.rate)
    return pacing.constant(cfg.rate, cfg.duration_ns)


def most_requests(cfg: WorkerConfig) -> int:
    """More requests than this worker can send in the run (rate and closed models): the
    expected count of its share of the rate curve plus six standard deviations (Poisson
    arrivals) and a few; the closed model's duration at CLOSED_MOST_RATE."""
    if cfg.model == "closed":  # (plus what its VUs have prepared ahead, unsent at the end)
        return int(cfg.duration_ns / NS * CLOSED_MOST_RATE) + AHEAD + 1
    expected = rate_curve(cfg).cumulative(cfg.duration_ns) / cfg.workers
    return int(expected + 6 * math.sqrt(expected)) + 64


class _Unbuilt:
    """A request that is only counted: its endpoint, nothing encoded."""

    __slots__ = ("endpoint",)

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint


def _unbuilt(record: Any, _index: int) -> Any:
    return _Unbuilt(record.endpoint)


def _nothing() -> None:
    pass


def main(argv: list[str] | None = None) -> int:
    """Entry point of a worker process: the only place gevent patches anything."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the coordinator handles Ctrl-C and says stop
    from gevent import monkey

    monkey.patch_all()

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
        worker = Worker(cfg, pipe)
        info = worker.load()
    except Exception as exc:
        pipe.send("error", worker_index, _kind(exc), str(exc))
        return 3
    # The templates live all run: freeze them out of the collector's sight. During the run
    # the collector stays off: requests make no reference cycles (their garbage goes by
    # reference counting), and a collection pass over a streamed shard's templates would
    # hold the loop for milliseconds. bench/memory.py checks that memory stays flat.
    gc.collect()
    gc.freeze()
    gc.disable()
    _timer_slack(TIMER_SLACK_NS)
    pipe.send("ready", cfg.worker, info)
    message = pipe.receive()
    if message is None or message[0] != "start":
        return 0
    try:
        info = worker.run(int(message[1]), int(message[2]))
    except Exception as exc:  # a bug, not a target failure: say so and exit non-zero
        import traceback

        traceback.print_exc()
        pipe.send("error", cfg.worker, "internal", f"{type(exc).__name__}: {exc}")
        return 4
    pipe.send("done", cfg.worker, info)
    return 0


def _timer_slack(ns: int) -> None:
    """Ask Linux to wake this process within `ns` of a timeout (prctl PR_SET_TIMERSLACK):
    the scheduler's naps are tens of microseconds long. Nothing happens elsewhere."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(29, ctypes.c_ulong(ns), 0, 0, 0)  # PR_SET_TIMERSLACK
    except (OSError, AttributeError):
        pass


def _kind(exc: BaseException) -> str:

    if isinstance(exc, (CorpusError, RewriteError)):
        return "corpus"
    if isinstance(exc, OSError):
        return "target"
    return "internal"


if __name__ == "__main__":
    sys.exit(main())
