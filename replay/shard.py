"""A worker's shard of the corpus as request templates: in memory, or spooled to disk.

Records belong to a worker by chunk when the corpus allows it (`chunk_sharding`: each
worker then decodes only its own chunks), else by `replay.config.shard_of`. Loading
measures the shard first (decoding only); a shard that fits the cache is built into
memory, a larger one into a `TemplateSpool`, as far as the run can reach, so every pass
reads templates built once.
"""

from __future__ import annotations

import bisect
import contextlib
import itertools
import tempfile
import time
from collections.abc import Callable, Generator, Iterator
from typing import Any

from capture.chunkshard import walk_chunks, whole_trace_chunks
from capture.corpus import CorpusHeader, CorpusReader
from capture.units import NS
from replay import lead, pacing
from replay.ahead import AHEAD, SPOOLED_AHEAD
from replay.config import WorkerConfig, shard_of
from replay.pacing import TimelineEntry
from replay.protocol import LoadStage
from replay.rewrite import Template
from replay.schedulers import Reach, rate_curve, scheduler_class
from replay.spool import TemplateSpool

__all__ = ["Shard", "chunk_sharding", "most_requests", "rate_curve"]

LOAD_PROGRESS_EVERY = 1 << 17  # corpus records read between two "loading" messages,
LOAD_PROGRESS_NS = NS  # or this long, whichever comes first (large records: slow reading)
LOAD_CHECK = 1024  # records read between two looks at the clock while loading
LEAD_NS = NS  # a worker builds its spool this long while loading, the rest behind the sends
MAX_LEAD_NS = 2 * NS  # a schedule's worker never longer than this, however far behind
BUILD_SLICE_NS = 100_000  # building behind the sends holds the loop this long at a time
BUILD_CHECK = 4  # templates built between two looks at the clock


class Shard:
    """This worker's records as templates: in memory when they fit, else spooled to disk.

    Loading first measures the shard (decoding only). When it fits `cfg.cache_bytes` its
    templates are built into memory; otherwise they are built into a `TemplateSpool`, so
    that a pass over a large shard reads templates built once instead of decoding and
    building every record again on the core that sends. Only what the run can reach is
    spooled (`_spooled_enough`); records after that are built as they are read, if the run
    gets there after all. When the spool cannot be written (a full disk) every pass decodes
    and builds on the fly, and `spool_error` says why.

    With `lead_ns`, loading builds the spool that long, then (`keep_ahead`) on as far as
    `replay.lead` reckons that building behind the sends stays ahead of the schedule (the
    whole shard for a model that sends as fast as it can); `build_behind` then goes on
    building between turns of the worker's loop while it sends, and a pass follows the
    spool as it grows (`TemplateSpool.follow`). A pass that still catches up with the
    builder (the machine became slower than measured) builds the next few templates itself,
    on its own turn (`built_late` counts them): those requests are sent late, not lost, and
    what was never sent by the end is counted as dropped.
    """

    whole_corpus_when_alone = True  # a worker alone holds every record (not a lane's few)

    def __init__(
        self,
        cfg: WorkerConfig,
        build: Callable[[Any, int], Template],
        progress: Callable[[int, int, LoadStage], None] | None = None,
        lead_ns: int | None = None,
        keep_ahead: bool = True,
    ) -> None:

        self.cfg = cfg
        self._build = build
        with CorpusReader(cfg.corpus) as reader:
            header = reader.header
            self.records = header.records
            last = header.chunks[-1].last_ns if header.chunks else 0
            self.period_ns = pacing.loop_period(header.duration_ns, last, header.records)
            self.by_chunk = chunk_sharding(header, cfg)
            whole = cfg.workers * cfg.segments == 1 and self.whole_corpus_when_alone
            sized = self.by_chunk or whole  # (alone, the shard is every chunk)
            packed, known = _chunk_shard_size(header, cfg) if sized else (0, 0)
        self.sharding = "chunk" if self.by_chunk else "trace"
        self.cached: list[tuple[Any, Template]] | None = None
        self.spool: TemplateSpool | None = None
        self.spool_error: str | None = None
        self.spooled = 0  # templates in the spool once filled (kept after close())
        self.spool_dir = cfg.spool_dir or tempfile.gettempdir()
        self._reach: Reach | None = None  # the load model's, once needed
        self._scale = pacing.as_fraction(cfg.scale)
        self.mine = 0
        self.lead_ns = lead_ns
        self.keep_ahead = keep_ahead  # build past the lead as far as replay.lead reckons
        self.built_late = 0  # templates a pass built itself, having caught up with the builder
        self.extended_ns = 0  # how long loading built the spool past `lead_ns` (replay.lead)
        self.lead_short = 0  # templates replay.lead wanted first that MAX_LEAD_NS left unbuilt
        self._filler: Generator[None, None, None] | None = (
            None  # builds the spool a template a step
        )
        self._idle: Any = None  # the loop watcher building behind the sends
        self._loading = True
        # First the size of this shard (decoding only), so that a spooled shard never builds
        # a cache it then throws away: memory freed by the interpreter is not given back.
        # (Sharded by chunk, or the whole corpus for a worker alone, a shard whose chunks take
        # more than the cache, compressed, cannot fit: its size is in the header, nothing to
        # measure.)
        budget = cfg.cache_bytes
        if packed > budget:
            self.mine, budget = known, -1
        else:
            for _entry, record in self._walk(everyone=False, progress=progress, stage="read"):
                self.mine += 1
                budget -= len(record.body) + len(record.path) + 512
        if budget >= 0:
            self.cached = self._cache(build)
        elif self.mine:
            self._fill_spool(progress)
        self.everyone = self.mine == 0  # an empty shard borrows every record (rate, closed)
        self._loading = False

    @property
    def ahead(self) -> int:
        """How many requests `Ahead` prepares for this shard (see there)."""
        return SPOOLED_AHEAD if self.spool is not None and self.spool_error is None else AHEAD

    def _cache(self, build: Callable[[Any, int], Template]) -> list[tuple[Any, Template]] | None:
        """The shard's templates in memory, built now (a subclass may defer them: None)."""
        return [(e, build(r, e.record)) for e, r in self._walk(everyone=False)]

    def _fill_spool(self, progress: Callable[[int, int, LoadStage], None] | None) -> None:
        """Build this shard's templates into a new spool, as far as the run can reach."""
        try:
            self.spool = TemplateSpool(self.spool_dir)
        except OSError as exc:
            self.spool_error = f"cannot create a template spool in {self.spool_dir}: {exc}"
            return
        self._filler = self._filling(progress)
        began = time.monotonic_ns()
        lead = None if self.lead_ns is None else began + self.lead_ns
        try:
            more = self.build_some(lead)
            if more and self.keep_ahead and self.spool is not None and self.spool.count:
                led = time.monotonic_ns()
                first, scheduled = self._templates_first((led - began) / self.spool.count)
                if self.cfg.build_first:
                    first, scheduled = self.mine, False
                if first > self.spool.count:
                    # a schedule starts within MAX_LEAD_NS whatever it needs (it notes what
                    # was left); a model with no schedule builds all it reaches first, since
                    # building behind its sends would lower the throughput it measures
                    until = began + MAX_LEAD_NS if scheduled else None
                    cut = self.build_some(until, first if first < self.mine else None)
                    self.extended_ns = time.monotonic_ns() - led
                    if cut and self.spool is not None and self.spool.count < first:
                        self.lead_short = first - self.spool.count
        except BaseException:  # a bad record (RewriteError), a damaged chunk: no open file left
            self.close()
            raise
        self.spooled = self.spool.count if self.spool is not None else 0

    def _filling(
        self, progress: Callable[[int, int, LoadStage], None] | None
    ) -> Generator[None, None, None]:
        """Build the spool, a template a step, as far as the run can reach; then finish it."""
        build = self._build  # (not a stand-in, should `stop_building` come first)

        def loading(read: int, records: int, stage: LoadStage) -> None:
            if progress is not None and self._loading:
                progress(read, records, stage)

        for entry, record in self._walk(everyone=False, progress=loading, stage="spool"):
            if not self._spool(entry, build(record, entry.record)):
                return
            assert self.spool is not None
            if self._spooled_enough(entry, self.spool.count):
                break
            yield
        self._finish_spool()

    def build_some(self, until_ns: int | None, count: int | None = None) -> bool:
        """Build more of the spool, until `until_ns` (at least BUILD_CHECK templates), until
        it holds `count`, or, with neither, to its end; whether there is more to build."""
        filler, spool = self._filler, self.spool
        if filler is None:
            return False
        for n, _ in enumerate(filler, 1):
            if until_ns is not None and n % BUILD_CHECK == 0 and time.monotonic_ns() >= until_ns:
                return True
            if count is not None and spool is not None and spool.count >= count:
                return True
        self._filler = None
        return False

    def build_behind(self, loop: Any) -> None:
        """Go on building the spool while the worker sends: an idle watcher on `loop` (it runs
        only when nothing else is pending) builds BUILD_SLICE_NS at a time until the end."""
        if self._filler is None:
            return

        def on_idle() -> None:
            if not self.build_some(time.monotonic_ns() + BUILD_SLICE_NS):
                self._stop_behind()

        self._idle = loop.idle()
        self._idle.start(on_idle)

    def _stop_behind(self) -> None:
        if self._idle is not None:
            self._idle.stop()
            self._idle = None

    def _build_now(self, spool: TemplateSpool) -> None:
        """A pass has caught up with the builder: build the next few templates on its turn
        and write them at once."""
        before = spool.count
        if not self.build_some(time.monotonic_ns()) and not spool.finished:
            self._finish_spool()  # (the builder was stopped)
        elif not spool.finished:
            try:
                spool.flush()
            except OSError as exc:
                self._lose_spool(exc)
        self.built_late += max(spool.count - before, 0)

    def _spool_pass(self, spool: TemplateSpool) -> Iterator[tuple[Any, Template]]:
        """A pass over a spool that may still be growing, then over any records after it
        (built as read)."""
        for item in spool.follow():
            if item is None:
                self._build_now(spool)
            else:
                yield item
        if spool.count < self.mine:
            yield from self._built(self._walk(everyone=False, after=spool.last_record))

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
        if not self._loading:  # passes may be reading it: keep what is whole on disk
            self.spool.seal()
            return
        with contextlib.suppress(OSError):
            self.spool.close()
        self.spool = None

    def _templates_first(self, build_ns: float) -> tuple[int, bool]:
        """How many templates to build before sending (replay.lead), one costing `build_ns`,
        and whether the model sends on a schedule (False: as fast as it can)."""
        cfg = self.cfg
        demand = scheduler_class(cfg.model).spool_demand(cfg, self.period_ns, self.mine)
        first = lead.templates_first(demand, build_ns, cfg.duration_ns, self.mine)
        return first, demand is not None

    def _spooled_enough(self, entry: TimelineEntry, spooled: int) -> bool:
        """Whether the run can reach no record of this shard after `entry` (the `spooled`-th
        spooled), as the load model's scheduler reckons it (with a wide margin)."""
        if self._reach is None:
            self._reach = scheduler_class(self.cfg.model).spool_reach(self.cfg, self.period_ns)
        return self._reach(entry, spooled)

    @property
    def has_read(self) -> bool:
        """Whether any of this shard's templates may read a trace it does not define."""
        if self.cached is not None:
            return any(tpl.has_read for _entry, tpl in self.cached)
        if self.spool is not None and self.spool.count == self.mine:
            return self.spool.has_read
        return True  # not all built yet: assume it may

    def close(self) -> None:
        """Stop building, close the spool (and forget it: a later pass reads and builds from
        the corpus)."""
        self._stop_behind()
        if self._filler is not None:
            filler, self._filler = self._filler, None
            filler.close()
        if self.spool is not None:
            self.spool.close()
            self.spool = None

    def _walk(
        self,
        everyone: bool,
        progress: Callable[[int, int, LoadStage], None] | None = None,
        stage: LoadStage = "read",
        after: int = -1,
    ) -> Iterator[tuple[Any, Any]]:
        """(TimelineEntry, Record) of this shard, with global index and gap (to the next
        record, or to the end of the period for the last), in order; only records after
        corpus index `after`. `progress(read, records, stage)`, when given (loading: `stage` is
        "read" while the shard is measured, "spool" while it is spooled), hears how far
        a long corpus has been read."""
        cfg = self.cfg
        worker, workers, period = cfg.worker, cfg.workers, self.period_ns
        segment, segments = cfg.segment, cfg.segments
        if self.by_chunk and not everyone:
            yield from self._walk_chunks(progress, stage, after)
            return
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
                if everyone or shard_of(record.trace, index, workers, segment, segments) == worker:
                    offset = record.offset_ns
                    gap = (period if following is None else following.offset_ns) - offset
                    yield TimelineEntry(index, offset, gap), record

    def _walk_chunks(
        self,
        progress: Callable[[int, int, LoadStage], None] | None,
        stage: LoadStage,
        after: int,
    ) -> Iterator[tuple[Any, Any]]:
        """`_walk` of a shard by chunk: only this worker's chunks are decoded (`progress`
        hears how many of their records have been read)."""
        cfg = self.cfg
        said = time.monotonic_ns()
        shard, shards = chunk_shard_index(cfg)
        with CorpusReader(cfg.corpus) as reader:
            total = sum(c.records for c in reader.chunks(shard=shard, shards=shards))
            for n, (index, gap, record) in enumerate(
                walk_chunks(reader, shard, shards, self.period_ns, after), 1
            ):
                if progress is not None and (
                    n % LOAD_PROGRESS_EVERY == 0
                    or (n % LOAD_CHECK == 0 and time.monotonic_ns() - said > LOAD_PROGRESS_NS)
                ):
                    progress(n, total, stage)
                    said = time.monotonic_ns()
                yield TimelineEntry(index, record.offset_ns, gap), record

    def stop_building(self) -> None:
        """From now on a pass yields stand-ins that only name their endpoint for records it
        would build: what is left of the schedule is counted, not sent, so it is not worth
        encoding."""
        self._build = _unbuilt
        self._stop_behind()
        if self._filler is not None:  # the spool ends with what was built so far
            filler, self._filler = self._filler, None
            filler.close()
            if self.spool is not None and not self.spool.finished:
                self._finish_spool()

    def one_pass(self) -> Iterator[tuple[Any, Template]]:
        """One pass over the shard: from memory, from the spool (then any records after it,
        built as read), or read and built again."""
        if self.cached is not None:
            return iter(self.cached)
        whole = self._spooled_whole()
        if whole is not None:
            return whole.read()
        if self.spool is not None:
            return self._spool_pass(self.spool)
        return self._built(self._walk(everyone=False))

    def _built(self, walk: Iterator[tuple[Any, Any]]) -> Iterator[tuple[Any, Template]]:
        """(entry, template) of records as read: built now (`_build` is looked up for each,
        so that `stop_building` takes effect within a pass)."""
        return ((e, self._build(r, e.record)) for e, r in walk)

    def cycle(self) -> Iterator[Template]:
        """Templates in corpus order, round and round (rate and closed models)."""
        if self.cached and not self.everyone:
            return itertools.cycle([template for _entry, template in self.cached])
        spool = self._spooled_whole()
        return spool.rounds() if spool is not None else self._cycle()

    def _spooled_whole(self) -> TemplateSpool | None:
        """The spool when it holds the whole shard (a pass then reads templates alone)."""
        spool = self.spool
        whole = spool is not None and spool.finished and spool.count == self.mine > 0
        return spool if whole else None

    def _cycle(self) -> Iterator[Template]:
        while True:
            spool = self._spooled_whole()
            if spool is not None:  # (it became whole while a pass followed it)
                yield from spool.rounds()
                return
            everyone = self.everyone
            source = self._built(self._walk(everyone=True)) if everyone else self.one_pass()
            empty = True
            for _entry, template in source:
                empty = False
                yield template
            if empty:
                return


def chunk_sharding(header: CorpusHeader, cfg: WorkerConfig) -> bool:
    """Whether this run shards the corpus by chunk: more than one shard, no trace with
    requests in two chunks (`whole_trace_chunks`), and a chunk at least for every shard."""
    shards = cfg.workers * cfg.segments
    return shards > 1 and len(header.chunks) >= shards and whole_trace_chunks(header)


def _chunk_shard_size(header: CorpusHeader, cfg: WorkerConfig) -> tuple[int, int]:
    """(bytes on disk, records) of this worker's chunks (the corpus's last chunk, whose end
    the index does not give, counted as no bytes)."""
    shard, shards = chunk_shard_index(cfg)
    chunks = header.chunks
    mine = [c for c in chunks if c.number % shards == shard]
    packed = sum(
        chunks[c.number + 1].file_offset - c.file_offset for c in mine if c.number + 1 < len(chunks)
    )
    return packed, sum(c.records for c in mine)


def chunk_shard_index(cfg: WorkerConfig) -> tuple[int, int]:
    """(shard, shards) of this worker's chunks: chunk n is shard n mod shards's, and a
    worker's shard is `segment + segments * worker` (as its arrival-rate hits are dealt)."""
    return cfg.segment + cfg.segments * cfg.worker, cfg.workers * cfg.segments


def most_requests(cfg: WorkerConfig) -> int:
    """More requests than this worker can send in the run, as its load model reckons it."""
    return scheduler_class(cfg.model).most_requests(cfg)


class _Unbuilt:
    """A request that is only counted: its endpoint, nothing encoded."""

    __slots__ = ("endpoint",)

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint


def _unbuilt(record: Any, _index: int) -> Any:
    return _Unbuilt(record.endpoint)
