"""The worker in-process (gevent, no monkey-patching needed) against in-process servers."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import gevent
import gevent.lock
import pytest
from gevent.server import StreamServer

from capture.corpus import CorpusReader
from replay.aggregate import RunAggregate
from replay.config import WorkerConfig, shard_of, split
from replay.worker import Worker

NS = 1_000_000_000


class Server:
    """An in-process HTTP server: answers after `delay` s, or never when `stall`; records
    the trace ids it ingested and the paths it was asked for."""

    def __init__(self, delay: float = 0.0, stall: bool = False) -> None:
        self.delay, self.stall = delay, stall
        self.ingested: list[str] = []
        self.paths: list[str] = []
        self.server = StreamServer(("127.0.0.1", 0), self._handle)
        self.server.start()
        self.url = f"http://127.0.0.1:{self.server.server_port}"

    def _handle(self, sock: Any, _addr: Any) -> None:
        buf = b""
        while True:
            while b"\r\n\r\n" not in buf:
                data = sock.recv(65536)
                if not data:
                    return
                buf += data
            head, _, rest = buf.partition(b"\r\n\r\n")
            lines = head.decode().split("\r\n")
            length = 0
            for line in lines[1:]:
                if line.lower().startswith("content-length:"):
                    length = int(line.split(":")[1])
            while len(rest) < length:
                rest += sock.recv(65536)
            body, buf = rest[:length], rest[length:]
            method, path, _ = lines[0].split(" ")
            self.paths.append(path)
            if method == "POST" and body:
                self.ingested.append(json.loads(body).get("id", ""))
            if self.stall:
                gevent.sleep(30)
            if self.delay:
                gevent.sleep(self.delay)
            sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

    def stop(self) -> None:
        self.server.stop(timeout=1)


@pytest.fixture
def server() -> Iterator[Callable[..., Server]]:
    made: list[Server] = []

    def make(**kw: Any) -> Server:
        made.append(Server(**kw))
        return made[-1]

    yield make
    for s in made:
        s.stop()


class Capture:
    """Stands in for the coordinator's pipe: keeps the deltas."""

    def __init__(self) -> None:
        self.aggregate = RunAggregate()
        self.intervals: list[int] = []

    def receive(self) -> Any:
        gevent.sleep(3600)  # no coordinator: never a stop

    def send(self, kind: str, _worker: int, k: int, payloads: list[bytes]) -> None:
        assert kind == "delta"
        self.intervals.append(k)
        for payload in payloads:
            self.aggregate.add(payload)


def run_worker(corpus: Path, url: str, **kw: Any) -> tuple[Worker, Capture, dict[str, Any]]:
    options: dict[str, Any] = {
        "worker": 0,
        "workers": 1,
        "corpus": str(corpus),
        "target": url,
        "api_key": "k",
        "project_id": None,
        "model": "rate",
        "duration_ns": NS,
        "nonce": 3,
        **kw,
    }
    worker = Worker(WorkerConfig(**options), None)
    capture = Capture()
    worker.pipe = capture  # type: ignore[assignment]
    worker.load()
    info = worker.run(time.monotonic_ns() + 20_000_000, time.time_ns() + 20_000_000)
    return worker, capture, info


def test_rate_model_sends_every_due_request(synth_corpus: Any, server: Any) -> None:
    # 300/s for 1 s: exactly 300 due, all answered, one delta per interval plus the last
    srv = server()
    _, cap, info = run_worker(synth_corpus(), srv.url, rate=300.0, duration_ns=NS)
    whole = cap.aggregate.whole()
    assert whole.offered == 300
    assert whole.requests() == 300 == len(srv.ingested), whole.keys()
    assert whole.dropped() == 0
    assert cap.intervals == sorted(set(cap.intervals)) and cap.intervals[0] == 0
    assert info["serial"] == 300
    assert len(set(srv.ingested)) == 300  # every request a fresh trace


def test_max_inflight_drops_instead_of_delaying(synth_corpus: Any, server: Any) -> None:
    # 200/s against 300 ms answers with 5 connections: most requests cannot be sent; they
    # are dropped at their due time, and those sent leave on time
    srv = server(delay=0.3)
    _, cap, _ = run_worker(synth_corpus(), srv.url, rate=200.0, duration_ns=NS, max_inflight=5)
    whole = cap.aggregate.whole()
    assert whole.offered == 200
    assert whole.dropped() > 150
    assert whole.requests() + whole.dropped() == 200
    lag = whole.histogram("send_lag")
    assert lag.percentile(99) < 50  # ms: sent when due, not when a connection came free


@pytest.mark.slow  # a send lag bound: needs a core to itself (make test-all)
def test_closed_model_waits_for_each_answer(synth_corpus: Any, server: Any) -> None:
    # 3 VUs, 20 ms answers, 10 ms think: each VU does at most ~1 s / 30 ms requests
    srv = server(delay=0.02)
    _, cap, _ = run_worker(
        synth_corpus(), srv.url, model="closed", vus=3, think_ns=10_000_000, duration_ns=NS
    )
    whole = cap.aggregate.whole()
    assert 30 <= whole.requests() <= 3 * 34
    assert whole.dropped() == 0
    assert whole.offered == whole.requests()
    # intended = the moment the VU was ready: latency and uncorrected latency agree
    assert whole.histogram("send_lag").percentile(99) < 10


def test_timeline_scale_and_speed(synth_corpus: Any, server: Any) -> None:
    # a 2 s corpus at 2x speed plays in 1 s; at 3x scale every record is sent 3 times
    corpus = synth_corpus(rate=40, seconds=2)
    with CorpusReader(corpus) as reader:
        records = reader.header.records
    srv = server()
    _, cap, _ = run_worker(corpus, srv.url, model="timeline", scale=3.0, speed=2.0, duration_ns=NS)
    assert cap.aggregate.whole().requests() == 3 * records == len(set(srv.ingested))


def test_reads_name_traces_this_worker_ingested(synth_corpus: Any, server: Any) -> None:
    # the mixed corpus reads traces back: each GET names a trace ingested earlier in the run
    srv = server()
    run_worker(synth_corpus("mixed", rate=80, seconds=2), srv.url, model="timeline",
               speed=2.0, duration_ns=NS)  # fmt: skip
    gets = [p.rsplit("/", 1)[1] for p in srv.paths if p.startswith("/api/public/traces/")]
    assert gets, "the corpus should read traces"
    ingested = set(srv.ingested)
    named = [g for g in gets if g in ingested]
    assert len(named) >= len(gets) - 2  # only a read before any ingest was answered may miss


def test_watchdog_times_out_a_stalled_target(synth_corpus: Any, server: Any) -> None:
    srv = server(stall=True)
    _, cap, _ = run_worker(synth_corpus(), srv.url, rate=10.0, duration_ns=NS // 2,
                           timeout_ns=200_000_000)  # fmt: skip
    whole = cap.aggregate.whole()
    assert whole.requests(status="timeout") == whole.requests() == 5


def test_sharding_keeps_each_trace_in_one_worker(synth_corpus: Any) -> None:
    # the mixed corpus over 3 workers: the shards partition it, and every record that names
    # a trace is in the shard of that trace's ingest
    with CorpusReader(synth_corpus("mixed", rate=80, seconds=2)) as reader:
        records = list(reader)
    owner: dict[str, int] = {}
    counts = [0, 0, 0]
    for i, r in enumerate(records):
        w = shard_of(r.trace, i, 3)
        counts[w] += 1
        if r.trace:
            assert owner.setdefault(r.trace, w) == w
    assert sum(counts) == len(records) and min(counts) > 0


@pytest.mark.parametrize(
    ("total", "workers", "shares"),
    [(10, 3, [4, 3, 3]), (2, 4, [1, 1, 0, 0]), (8, 2, [4, 4])],  # as even as integers allow
)
def test_split(total: int, workers: int, shares: list[int]) -> None:
    assert [split(total, workers, w) for w in range(workers)] == shares


@pytest.mark.parametrize(
    ("model", "options"),
    [
        ("rate", {"rate": 300.0}),  # the pacing schedule over a streamed shard
        ("timeline", {"speed": 2.0, "scale": 2.0}),  # loops re-read and re-encoded
        ("closed", {"vus": 3}),  # VUs fed from the stream
    ],
)
def test_a_streamed_shard_replays_like_a_cached_one(
    synth_corpus: Any, server: Any, model: str, options: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    # a cache of 1 byte: nothing fits, so the templates are spooled to disk at load and
    # read back on every pass, or (when the spool cannot be written) decoded and built
    # ahead of the schedule; the requests are the same as from memory, ids fresh every pass
    from replay.spool import TemplateSpool

    corpus = synth_corpus("mixed", rate=80, seconds=1)
    counts = []
    for how in ("cached", "spooled", "built"):
        if how == "built":
            monkeypatch.setattr(TemplateSpool, "add", _disk_full)
        srv = server()
        worker, cap, info = run_worker(corpus, srv.url, model=model, duration_ns=NS,
                                       cache_bytes=1 if how != "cached" else 48 << 20,
                                       **options)  # fmt: skip
        whole = cap.aggregate.whole()
        shard = worker.shard
        assert shard is not None
        assert (shard.cached is not None, shard.spooled > 0) == (
            how == "cached", how == "spooled",
        )  # fmt: skip
        assert (shard.spool_error is not None) == (how == "built")
        assert whole.requests() == info["serial"] == len(srv.paths) > 0
        assert whole.dropped() == 0 and whole.errors() == 0
        traces = [t for t in srv.ingested if t]  # (POSTed queries name no trace)
        assert traces and len(set(traces)) == len(traces)  # every ingest a fresh trace
        counts.append(whole.requests())
    if model != "closed":  # the schedule, not the target's speed, decides how many
        assert counts[0] == counts[1] == counts[2]


def _disk_full(*_args: Any) -> None:
    import errno

    raise OSError(errno.ENOSPC, "No space left on device")


def test_pipe_messages_are_never_cut_or_interleaved() -> None:
    # two greenlets send messages far larger than the pipe's buffer while the reader is
    # slow; the sender holding the lock is never killed halfway: every message arrives whole
    import os

    import msgpack

    from replay.pipe import Pipe

    read_fd, write_fd = os.pipe()
    pipe = Pipe(read_fd, write_fd)
    blob = b"x" * 300_000
    senders = [gevent.spawn(lambda n=n: [pipe.send("m", n, i, blob) for i in range(5)])
               for n in range(2)]  # fmt: skip
    got: list[Any] = []
    unpacker = msgpack.Unpacker(raw=False)

    def reader() -> None:  # the coordinator: slow, 50 kB at a time
        while True:
            gevent.sleep(0.001)
            try:
                unpacker.feed(os.read(read_fd, 50_000))
            except BlockingIOError:
                continue
            got.extend(unpacker)

    reading = gevent.spawn(reader)
    gevent.sleep(0.02)
    with pipe.lock:  # what the worker does before killing its ticker
        gevent.killall(senders)
    gevent.sleep(0.3)  # the rest drains
    reading.kill()
    os.close(read_fd)
    os.close(write_fd)
    assert got and all(m[0] == "m" and m[3] == blob for m in got)
    for n in (0, 1):  # each sender's messages in order, none missing before the kill
        mine = [m[2] for m in got if m[1] == n]
        assert mine == list(range(len(mine)))


def test_an_interval_is_never_lost_when_the_ticker_is_stopped(synth_corpus: Any) -> None:
    # the run's end kills the ticker while holding the pipe's lock: a ticker waiting for
    # the lock with an interval's folds still holds none of them, so the last send has all
    sent: list[tuple[int, list[bytes]]] = []

    class LockedPipe:
        lock = gevent.lock.RLock()

        def send(self, kind: str, _worker: int, k: int, payloads: list[bytes]) -> None:
            sent.append((k, payloads))

    options: dict[str, Any] = {"worker": 0, "workers": 1, "corpus": str(synth_corpus()),
                               "target": "http://127.0.0.1:9", "api_key": None,
                               "project_id": None, "model": "rate", "duration_ns": NS,
                               "nonce": 1}  # fmt: skip
    worker = Worker(WorkerConfig(**options), LockedPipe())  # type: ignore[arg-type]
    worker.folds = [b"fold-1", b"fold-2"]
    with LockedPipe.lock:
        ticker = gevent.spawn(worker._send_interval)
        gevent.sleep(0.01)  # the ticker now waits for the lock
        ticker.kill()
    worker.folds.append(b"fold-3")
    worker._send_interval()
    assert sent == [(0, [b"fold-1", b"fold-2", b"fold-3"])]


@pytest.mark.parametrize("cache_bytes", [48 << 20, 1])
def test_what_the_worker_never_got_to_is_counted_as_dropped(
    synth_corpus: Any, server: Any, cache_bytes: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    import replay.worker

    # counting is cut short after COUNT_UNSENT_NS (the next test): on a busy machine a
    # streamed shard can take longer than that to count, so here it may take a minute
    monkeypatch.setattr(replay.worker, "COUNT_UNSENT_NS", 60 * NS)
    # 400,000/s for a quarter second is far more than one Python worker can send (nor can
    # the in-process server answer): it falls behind its schedule. Every one of the 100,000
    # due requests is still accounted for, sent or dropped, cached shard or streamed.
    srv = server()
    _, cap, info = run_worker(
        synth_corpus(), srv.url, rate=400_000.0, duration_ns=NS // 4, cache_bytes=cache_bytes
    )
    whole = cap.aggregate.whole()
    assert whole.offered == 100_000
    assert whole.requests() + whole.dropped() == 100_000
    assert info["unsent"] > 0 and info["unsent_counted"] is True
    assert whole.requests() == info["serial"] == len(srv.paths)
    for second in cap.aggregate.timeline:  # drops are offered in the interval they land in
        assert second.dropped <= second.offered, second


def test_counting_what_was_never_sent_is_bounded_and_says_so(
    synth_corpus: Any, server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # with no time to count, the worker counts a few of what it never sent, then stops
    # and says the count is a lower bound (the coordinator's note then reads "at least")
    import replay.worker

    monkeypatch.setattr(replay.worker, "COUNT_UNSENT_NS", 0)
    srv = server()
    _, cap, info = run_worker(synth_corpus(), srv.url, rate=400_000.0, duration_ns=NS // 4)
    whole = cap.aggregate.whole()
    assert info["unsent_counted"] is False
    assert info["unsent"] == replay.worker.COUNT_CHECK
    assert whole.requests() + whole.dropped() == whole.offered < 100_000


def test_a_long_load_says_how_far_it_has_read(
    synth_corpus: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # while a worker reads its corpus it tells the coordinator how far it is, so that a
    # corpus of tens of millions of records is waited for as long as reading goes on
    # (sharded by trace: every record is read; tests/replay/test_chunk_sharding.py by chunk)
    import replay.shard

    monkeypatch.setattr(replay.shard, "LOAD_PROGRESS_EVERY", 50)
    monkeypatch.setattr(replay.shard, "LOAD_CHECK", 7)  # (and a second gone by: never)
    corpus = synth_corpus("mixed", rate=150, seconds=2)
    with CorpusReader(corpus) as reader:
        records = reader.header.records
    sent: list[tuple[Any, ...]] = []

    class Recording:
        def send(self, *message: Any) -> None:
            sent.append(message)

    options: dict[str, Any] = {"worker": 0, "workers": 2, "corpus": str(corpus), "nonce": 3,
                               "target": "http://127.0.0.1:9", "api_key": "k", "rate": 10.0,
                               "project_id": None, "model": "rate", "duration_ns": NS,
                               "max_inflight": 0}  # fmt: skip
    worker = Worker(WorkerConfig(**options), Recording())  # type: ignore[arg-type]
    worker.load()
    reads = [m[2] for m in sent if m[0] == "loading"]
    assert reads == list(range(50, records + 1, 50))  # every 50 records read, in order
    assert {m[4] for m in sent} == {"read"}  # (cached: built without a second read)
    assert all(m[3] == records for m in sent if m[0] == "loading")
    # large records read slowly: a message once a second whatever the count (here: at once)
    monkeypatch.setattr(replay.shard, "LOAD_PROGRESS_EVERY", 10**9)
    monkeypatch.setattr(replay.shard, "LOAD_PROGRESS_NS", -1)
    sent.clear()
    Worker(WorkerConfig(**options), Recording()).load()  # type: ignore[arg-type]
    assert [m[2] for m in sent if m[0] == "loading"] == list(range(7, records + 1, 7))
    # a shard beyond the cache is read twice: measured, then built into the spool
    monkeypatch.setattr(replay.shard, "LOAD_PROGRESS_EVERY", 50)
    monkeypatch.setattr(replay.shard, "LOAD_PROGRESS_NS", NS * 3600)
    sent.clear()
    spooled = {**options, "cache_bytes": 1, "duration_ns": 3600 * NS}
    worker = Worker(WorkerConfig(**spooled), Recording())  # type: ignore[arg-type]
    worker.load()
    assert worker.shard is not None and worker.shard.spool is not None
    worker.shard.close()
    every = list(range(50, records + 1, 50))
    assert [(m[4], m[2]) for m in sent] == [("read", n) for n in every] + [
        ("spool", n) for n in every
    ]


@pytest.mark.slow  # keeping a 1,000/s schedule needs a core to itself (make test-all)
def test_a_stop_on_schedule_leaves_nothing_unsent(synth_corpus: Any, server: Any) -> None:
    # a worker keeping its schedule is stopped mid-run: what came due until the stop was
    # sent, so nothing is counted as never sent (the cutoff is the stop, not a later look
    # at the clock)
    srv = server()
    options: dict[str, Any] = {"worker": 0, "workers": 1, "corpus": str(synth_corpus()),
                               "target": srv.url, "api_key": "k", "project_id": None,
                               "model": "rate", "rate": 1000.0, "duration_ns": 2 * NS,
                               "nonce": 3}  # fmt: skip
    worker = Worker(WorkerConfig(**options), None)
    worker.pipe = Capture()  # type: ignore[assignment]
    worker.load()
    start = time.monotonic_ns() + 20_000_000
    gevent.spawn_later(0.33, worker.stop)
    info = worker.run(start, time.time_ns() + 20_000_000)
    assert info["unsent"] == 0
    assert 250 <= info["serial"] <= 400  # (it did run, and stopped near 0.31 s)


@pytest.mark.parametrize("model", ["timeline", "rate"])
def test_a_worker_sends_while_its_spool_is_still_being_built(
    synth_corpus: Any, server: Any, model: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a lead of nothing: the worker says ready with only a few templates spooled and builds
    # the rest behind its sends (or as they come due); it sends what a cached worker sends
    import replay.lead
    import replay.shard

    corpus = synth_corpus("mixed", rate=150, seconds=1)
    options: dict[str, Any] = {"model": model, "duration_ns": NS}
    if model == "rate":
        options["rate"] = 200.0
    sent = []
    for how in ("cached", "behind"):
        if how == "behind":
            monkeypatch.setattr(replay.worker, "LEAD_NS", 0)
            monkeypatch.setattr(replay.lead, "templates_first", lambda *_args: 0)
        srv = server()
        worker, cap, info = run_worker(corpus, srv.url, cache_bytes=1 if how == "behind"
                                       else 48 << 20, **options)  # fmt: skip
        shard = worker.shard
        assert shard is not None
        if how == "behind":
            assert 0 < shard.spooled <= shard.mine  # (what was built when the run ended)
            assert info["built_late"] <= shard.mine
        whole = cap.aggregate.whole()
        assert whole.requests() == info["serial"] == len(srv.paths) > 0
        assert whole.dropped() == 0 and whole.errors() == 0 and info["unsent"] == 0
        sent.append(sorted(re.sub("[0-9a-f]{16,}", "ID", p) for p in srv.paths))
    assert sent[0] == sent[1]  # (ids are minted afresh; reads name traces acknowledged)
