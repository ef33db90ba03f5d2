"""The writer process of `capture record`: requests from the proxy into a corpus, on a core
of its own.

The proxy process (capture/recording.py's `Recorder`) only forwards; everything a record
costs beyond a copy of the request happens here, in a process of its own (so it never
holds the proxy's GIL), started as ``python -m capture.record_writer`` with two pipes:

    stdin   msgpack frames from the proxy, in the order they happened:
              (CONFIG, options)                       first, once
              (REQUEST, offset_ns, endpoint, method, target, headers, body)  numbered 0, 1, ...
              (STATUS, number, status, latency_ns)    the upstream answered (status -1: never)
              (END, proxy_counts, duration_ns)        finish the corpus
            end of file without END (the proxy was killed): the queued records are written,
            and the file is left as FILE.partial, as after a crash
    stdout  msgpack events for the proxy:
              (READY,) or (ERROR, reason)             once the corpus is open (or not)
              (WRITTEN, records, bytes)               how much of the queue is done, often
              (FULL,)                                 --max-records is reached
              (ERROR, reason)                         recording stopped (a full disk, ...)
              (DONE, counts, path)                    the finished corpus and every count

Records are taken in arrival order, each once its answer is known (or `window_s` after it
arrived), and go through the filters of the module docstring of capture/recording.py:
headers, the head check, decoding, redaction, span finding (capture/spans.py), the corpus
writer. Every `flush_s` what is written goes into whole chunks on disk, and the garbage
collector runs (only then: a record makes no reference cycles). The process ignores
SIGINT and SIGTERM (a Ctrl-C reaches the whole process group): it ends when the proxy says
END or goes away, and runs at a lower priority than the proxy, which never waits for it
(niced, and on Linux SCHED_BATCH: waking up for a record does not preempt the proxy; or
SCHED_IDLE with `--writer-priority idle`: it runs only on CPU the proxy leaves).
"""

from __future__ import annotations

import contextlib
import gc
import os
import select
import signal
import sys
import time
from collections import deque
from pathlib import Path
from typing import Any

import msgpack

from capture.corpus import CorpusMeta, CorpusWriter, Record
from capture.corpus_check import MAX_BODY, known_head_problem
from capture.recording import (
    CONFIG,
    DONE,
    END,
    ERROR,
    FAILED,
    FULL,
    PROXY_COUNTS,
    READY,
    REQUEST,
    STATUS,
    WAITING,
    WRITTEN,
    Counts,
    RecordOptions,
    decoded_body,
    queued_size,
    recorded_headers,
)
from capture.redact import redact_body, redact_path
from capture.spans import find_spans

ACK_NS = 2_000_000  # how often a writer behind tells the proxy how much is done (at once
# when it has caught up)
GATHER_S = 0.001  # a writer that had caught up lets frames gather this long once woken
WAIT_S = 0.005  # how often a writer with records waiting for their answers looks again
NICE = 5  # forwarding first: the writer takes what CPU is left on a shared core


def recording_meta(
    options: RecordOptions, created: str, counts: dict[str, Any] | None
) -> CorpusMeta:
    """The corpus metadata: the command and, once finished, every count."""
    extra: dict[str, Any] = {
        "command": options.command,
        "upstream": options.upstream,
        "sample": options.sample,
        "redacted": options.redact,
        "kept_paths": list(options.keep_paths),
    }
    if counts is not None:
        extra["recording"] = counts
    return CorpusMeta(
        workload="recorded",
        source=f"capture record {options.upstream}",
        created=created,
        extra=extra,
    )


class Pending:
    """One request waiting to be written: as the proxy handed it over, and its answer."""

    __slots__ = (
        "body",
        "endpoint",
        "headers",
        "latency_ns",
        "method",
        "offset_ns",
        "path",
        "status",
    )

    def __init__(
        self,
        offset_ns: int,
        endpoint: str,
        method: str,
        path: str,
        headers: list[tuple[str, str]],
        body: bytes,
    ) -> None:
        self.offset_ns = offset_ns
        self.endpoint = endpoint
        self.method = method
        self.path = path
        self.headers = headers
        self.body = body
        self.status = WAITING
        self.latency_ns: int | None = None


class RecordWriter:
    """Pending requests in arrival order into the corpus (the writer's side of the queue)."""

    def __init__(self, options: RecordOptions, started_ns: int, created: str) -> None:
        self.options = options
        self.started_ns = started_ns
        self.created = created
        self.counts = Counts()
        self.error: str | None = None
        self.full = False  # --max-records reached
        self.written = 0  # requests taken off the queue (recorded or not)
        self.written_bytes = 0
        self._queue: deque[Pending] = deque()
        self._by_number: dict[int, Pending] = {}
        self._next = 0
        self._writer = CorpusWriter(
            options.output,
            recording_meta(options, created, None),
            keep_partial=True,
            meta_reserve=4096,
            level=1,
        )

    def add(
        self, offset_ns: int, endpoint: str, method: str, target: str, headers: Any, body: bytes
    ) -> None:
        slot = Pending(offset_ns, endpoint, method, target, list(headers), body)
        self._queue.append(slot)
        self._by_number[self._next] = slot
        self._next += 1

    def answer(self, number: int, status: int, latency_ns: int) -> None:
        slot = self._by_number.pop(number, None)
        if slot is not None:
            slot.status = FAILED if status < 0 else status
            slot.latency_ns = None if status < 0 else latency_ns

    def drain(self, now_ns: int, *, everything: bool, limit: int = 256) -> int:
        """Write up to `limit` records whose answer is known (all queued: `everything`)."""
        window_ns = int(self.options.window_s * 1e9)
        queue, done = self._queue, 0
        while queue and done < limit:
            slot = queue[0]
            if slot.status == WAITING and not everything and now_ns - slot.offset_ns < window_ns:
                break
            queue.popleft()
            self._by_number.pop(self.written, None)
            if self.error is None:
                try:
                    self._write(slot)
                except Exception as exc:  # a full disk, a writer bug: forwarding goes on
                    self.error = f"recording stopped: {type(exc).__name__}: {exc}"
            self.written += 1
            self.written_bytes += queued_size(slot.path, slot.body)
            done += 1
        return done

    def _write(self, slot: Pending) -> None:
        counts = self.counts
        if slot.status == FAILED:
            counts.upstream_failed += 1
            return
        max_records = self.options.max_records
        if max_records is not None and counts.recorded >= max_records:
            counts.past_max_records += 1
            return
        headers = recorded_headers(slot.headers)
        if known_head_problem(slot.method, slot.path, headers) is not None:
            counts.bad_head += 1
            return
        body = decoded_body(slot.body, slot.headers, self.options.max_decoded)
        if body is None:
            counts.undecodable_body += 1
            return
        if len(body) > MAX_BODY:  # decoded past what a corpus may hold
            counts.body_too_large += 1
            return
        path = slot.path
        if self.options.redact:
            body, path = redact_body(body) if body else body, redact_path(path)
        endpoint = slot.endpoint
        found = find_spans(body, path)
        self._writer.write(
            Record(
                offset_ns=slot.offset_ns,
                endpoint=endpoint,
                method=slot.method,
                path=path,
                headers=headers,
                body=body,
                body_ids=found.body_ids,
                path_ids=found.path_ids,
                trace=found.trace,
                status=slot.status if slot.status > 0 else None,
                latency_ns=slot.latency_ns,
            )
        )
        counts.recorded += 1
        counts.endpoints[endpoint] = counts.endpoints.get(endpoint, 0) + 1
        if max_records is not None and counts.recorded == max_records:
            self.full = True

    def queued(self) -> int:
        """How many requests wait to be written."""
        return len(self._queue)

    def ready(self) -> bool:
        """Whether the oldest request waiting has its answer (the next drain writes)."""
        return bool(self._queue) and self._queue[0].status != WAITING

    def flush(self) -> None:
        if self.error is None:
            try:
                self._writer.flush()
            except Exception as exc:
                self.error = f"recording stopped: {type(exc).__name__}: {exc}"

    def finish(self, proxy_counts: dict[str, Any], duration_ns: int) -> tuple[dict[str, Any], Path]:
        """Merge the proxy's counts with ours, write the final metadata and the index."""
        counts = self.counts.to_json()
        for key in PROXY_COUNTS:
            counts[key] = counts.get(key, 0) + int(proxy_counts.get(key, 0))
        if self.error is not None:
            counts["error"] = self.error
        with contextlib.suppress(ValueError):  # outgrew the reserved room: keep the first
            self._writer.set_meta(recording_meta(self.options, self.created, counts))
        return counts, self._writer.close(duration_ns=duration_ns)

    def abandon(self) -> None:
        """The proxy went away without END: what is written stays as FILE.partial."""
        with contextlib.suppress(Exception):
            self._writer.abort()


def _options(frame: dict[str, Any]) -> RecordOptions:
    return RecordOptions(
        output=Path(frame["output"]),
        upstream=frame["upstream"],
        sample=frame["sample"],
        redact=frame["redact"],
        keep_paths=tuple(frame["keep_paths"]),
        max_records=frame["max_records"],
        command=frame["command"],
        queue_records=frame["queue_records"],
        queue_bytes=frame["queue_bytes"],
        window_s=frame["window_s"],
        flush_s=frame["flush_s"],
        max_decoded=frame["max_decoded"],
    )


class _Events:
    """The writer's events to the proxy (stdout, blocking: the proxy always reads them)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.packer = msgpack.Packer(use_bin_type=True)

    def send(self, *event: Any) -> None:
        data = self.packer.pack(event)
        while data:
            data = data[os.write(self.fd, data) :]


def serve(fd_in: int, fd_out: int, clock: Any = time.monotonic_ns) -> int:
    """The writer's loop over the proxy's frames; its exit status."""
    events = _Events(fd_out)
    unpacker = msgpack.Unpacker(raw=False, use_list=False, max_buffer_size=1 << 30)
    frames = _frames(fd_in, unpacker)
    first = next(frames, None)
    if first is None or first[0] != CONFIG:
        return 2
    config = first[1]
    try:
        writer = RecordWriter(_options(config), config["started_ns"], config["created"])
    except OSError as exc:
        events.send(ERROR, f"{exc.strerror or exc}")
        return 1
    events.send(READY)
    started, flush_ns = config["started_ns"], int(config["flush_s"] * 1e9)
    last_flush = last_ack = clock()
    acked = (0, 0)
    told_error = told_full = False
    while True:
        busy = writer.ready()
        if busy:
            wait = 0.0
        elif writer.queued():  # records waiting for their answers
            wait = WAIT_S
        else:  # nothing to do before the next frame or the next flush
            wait = max(WAIT_S, (last_flush + flush_ns - clock()) / 1e9)
        readable = select.select([fd_in], [], [], wait)[0]
        if readable:
            if not busy:  # woken by the first frame: take the next few with it
                time.sleep(GATHER_S)
            data = os.read(fd_in, 1 << 20)
            if not data:  # the proxy is gone without END: as after a crash
                writer.drain(clock() - started, everything=True, limit=1 << 62)
                writer.abandon()
                return 1
            unpacker.feed(data)
        for frame in unpacker:
            kind = frame[0]
            if kind == REQUEST:
                writer.add(*frame[1:7])
            elif kind == STATUS:
                writer.answer(frame[1], frame[2], frame[3])
            elif kind == END:
                writer.drain(clock() - started, everything=True, limit=1 << 62)
                counts, path = writer.finish(dict(frame[1]), frame[2])
                events.send(DONE, counts, str(path))
                return 0
        now = clock()
        writer.drain(now - started, everything=False)
        if writer.error is not None and not told_error:
            events.send(ERROR, writer.error)
            told_error = True
        if writer.full and not told_full:
            events.send(FULL)
            told_full = True
        if now - last_flush >= flush_ns:
            writer.flush()
            gc.collect()  # the collector is off between flushes (main): what a record left
            last_flush = now
        if (writer.written, writer.written_bytes) != acked and (
            now - last_ack >= ACK_NS or not writer.queued()
        ):
            acked = (writer.written, writer.written_bytes)
            events.send(WRITTEN, *acked)
            last_ack = now


def _frames(fd: int, unpacker: msgpack.Unpacker) -> Any:
    """The first frame, read before the loop (blocking)."""
    while True:
        data = os.read(fd, 1 << 16)
        if not data:
            return
        unpacker.feed(data)
        for frame in unpacker:
            yield frame
            return


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    with contextlib.suppress(OSError):
        os.nice(NICE)
    idle = sys.argv[1:] == ["idle"]  # (capture.recording.WRITER_PRIORITIES)
    with contextlib.suppress(OSError, AttributeError):  # Linux: never preempt the proxy on waking
        policy = os.SCHED_IDLE if idle else os.SCHED_BATCH
        os.sched_setscheduler(0, policy, os.sched_param(0))
    gc.collect()
    gc.freeze()  # the modules' objects, never garbage: no collection walks them again
    gc.disable()  # a record makes no reference cycles; serve collects at each flush
    sys.exit(serve(sys.stdin.fileno(), sys.stdout.fileno()))


if __name__ == "__main__":
    main()
