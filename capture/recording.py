"""The recorder of `capture record`: requests from the proxy into a corpus, off its path.

The proxy hands each whole request to `Recorder.request` (the `Tap` of capture/proxy.py),
which only decides cheaply whether to keep it (an AgentTrace path or a kept `--path`
prefix, the `--sample` draw, room in the queue) and appends it, as it arrived, to the pipe
of a writer process (capture/record_writer.py); the upstream's status follows when it is
known. Frames go into the pipe once per turn of the proxy's event loop, never blocking: what
the pipe cannot take yet waits in memory, and counts against the queue. The writer process
does everything else, on its own core when there is one:

    not recorded  requests the upstream never answered (502/504), heads that could not go
                  back on the wire (capture/httphead.py), bodies that would not decode
    headers       credentials (Authorization, Cookie, and any name holding key, token,
                  secret or auth), hop-by-hop and per-connection headers, Host,
                  Content-Length, User-Agent, X-Forwarded-* are never written
    body          a gzip or deflate request body is recorded decoded (its Content-Encoding
                  dropped), so that replay can rewrite its ids; `--redact` replaces free text
    spans         capture/spans.py finds ids and timestamps as synth marks them

The queue is every request handed over and not yet written: when it holds `queue_records`
requests or `queue_bytes` of bodies (the writer says how far it is, every few milliseconds)
a request is still forwarded, only not recorded, and counted. The offset of a record is
when its whole request had arrived (when it was forwarded), from the recorder's start;
`created` is the wall-clock time of that start, so replay moves recorded timestamps as it
does synthetic ones. Every second the writer puts what it has into whole chunks on disk,
so that a crash loses at most the last second: `capture inspect` then reads the file (as
incomplete) and `capture repair` makes it whole. The counts go into the corpus metadata
(`extra.recording`) at close.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import random
import select
import subprocess
import sys
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import gevent
import gevent.os
import msgpack

from capture.corpus import partial_path
from capture.corpus_check import MAX_BODY
from capture.intake import CONNECTION_HEADERS, endpoint_of, is_credential

WAITING, FAILED = 0, -1
# The frames of the pipe to the writer process and its events back (capture/record_writer.py).
CONFIG, REQUEST, STATUS, END = 0, 1, 2, 3
READY, WRITTEN, FULL, ERROR, DONE = 0, 1, 2, 3, 4
_F_SETPIPE_SZ = 1031
_IOV_MAX = 1024
_PIPE_WRITE = 1 << 16  # what one write() may put into a pipe select() called writable


def recorded_headers(headers: list[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    """The headers a record keeps: no credentials, nothing about the connection."""
    kept = _KEPT_NAMES
    out = []
    for name, value in headers:
        keep = kept.get(name)
        if keep is None:
            lower = name.lower()
            keep = lower not in CONNECTION_HEADERS and not is_credential(name)
            if len(kept) < _KEPT_LIMIT:
                kept[name] = keep
        if keep:
            out.append((name, value))
    return tuple(out)


_KEPT_NAMES: dict[str, bool] = {}  # header name as sent -> whether a record keeps it
_KEPT_LIMIT = 4096


PROXY_COUNTS = (
    "requests",
    "dropped_queue_full",
    "sampled_out",
    "not_agenttrace",
    "body_too_large",
    "recording_stopped",
)
"""The counts kept by the proxy's side (the rest by the writer process)."""

WRITER_PRIORITIES = ("batch", "idle")
"""The writer process's CPU priority: below the proxy's (niced, SCHED_BATCH), or only what
the proxy leaves (SCHED_IDLE: forwarding never waits for it, the recording thins out on a
busy machine). Linux; elsewhere the writer is niced alone."""


@dataclass(frozen=True)
class RecordOptions:
    """What to record and how much may wait in memory."""

    output: Path
    upstream: str
    sample: float = 1.0
    redact: bool = False
    keep_paths: tuple[str, ...] = ()
    max_records: int | None = None
    command: str = ""
    queue_records: int = 50_000
    queue_bytes: int = 256 << 20
    window_s: float = 5.0  # how long a record waits for its answer before it is written
    flush_s: float = 1.0
    max_decoded: int = 64 << 20
    writer_priority: str = "batch"  # one of WRITER_PRIORITIES


@dataclass
class Counts:
    """What happened to the requests the proxy saw: `requests`, `dropped_queue_full`,
    `sampled_out` and `not_agenttrace` are counted by the proxy, the rest by the writer."""

    requests: int = 0  # every request the proxy forwarded (or tried to)
    recorded: int = 0
    dropped_queue_full: int = 0  # kept out of the recording to keep forwarding fast
    sampled_out: int = 0
    not_agenttrace: int = 0  # paths outside AgentTrace's API and every --path
    upstream_failed: int = 0  # 502/504: nothing to record
    bad_head: int = 0  # could not go back on the wire as recorded (capture/httphead.py)
    undecodable_body: int = 0  # Content-Encoding that would not decode
    past_max_records: int = 0
    body_too_large: int = 0  # over a corpus's limit for one body (MAX_BODY)
    recording_stopped: int = 0  # came after the recording stopped (the writer failed or exited)
    endpoints: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


class Recorder:
    """The proxy's tap: see the module docstring. `start()`, then `stop()` returns the path.

    Raises OSError (with the reason) when the writer process cannot open the corpus."""

    def __init__(
        self,
        options: RecordOptions,
        *,
        clock: Callable[[], int] = time.monotonic_ns,
        on_full: Callable[[], None] = lambda: None,
        rng: random.Random | None = None,
    ) -> None:
        self.options = options
        self.clock = clock
        self.on_full = on_full  # called (in the proxy's hub) when --max-records is reached
        self.counts = Counts()
        self.error: str | None = None  # why the recording stopped early
        self._random = (rng or random.Random()).random
        self._queued_bytes = 0
        self._written_bytes = 0  # as the writer last said
        self._queued = 0
        self._written = 0
        self._out: list[bytes] = []  # frames not yet in the pipe
        self._pack = msgpack.Packer(use_bin_type=True).pack
        self._events = msgpack.Unpacker(raw=False, use_list=False)
        self._flushing = False
        self._watcher: Any = None
        self._reader: Any = None
        self._final: tuple[dict[str, Any], str] | None = None
        self.started_ns = clock()
        started = datetime.now(UTC)
        self.created = (
            started.strftime("%Y-%m-%dT%H:%M:%S.") + f"{started.microsecond // 1000:03d}Z"
        )
        self.partial_path = partial_path(options.output)
        if options.writer_priority not in WRITER_PRIORITIES:
            raise ValueError(f"writer priority {options.writer_priority!r}: not one of batch, idle")
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "capture.record_writer", options.writer_priority],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            process_group=0,  # a Ctrl-C to the terminal's group is the proxy's to handle
        )
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._fd_out = self._proc.stdin.fileno()
        self._fd_in = self._proc.stdout.fileno()
        with contextlib.suppress(OSError):  # Linux: room for a burst in the pipe itself
            fcntl.fcntl(self._fd_out, _F_SETPIPE_SZ, 1 << 20)
        config = options_frame(options, self.started_ns, self.created)
        _write_all(self._fd_out, self._pack((CONFIG, config)))
        first = self._next_event(blocking=True)
        if first is None or first[0] != READY:
            self._proc.stdin.close()
            self._reap()
            reason = first[1] if first is not None else "the writer process exited"
            raise OSError(f"{self.partial_path}: {reason}")
        os.set_blocking(self._fd_out, False)
        os.set_blocking(self._fd_in, False)

    @property
    def writer_pid(self) -> int:
        """The writer process (for CPU accounting)."""
        return self._proc.pid

    def start(self) -> None:
        """Start listening to the writer's events (in the proxy's hub)."""
        self._reader = gevent.spawn(self._read_events)

    # --- the proxy's side: cheap, never blocks ----------------------------------------------

    def request(
        self, method: str, target: str, headers: list[tuple[str, str]], body: bytes
    ) -> int | None:
        counts = self.counts
        counts.requests += 1
        endpoint = endpoint_of(method, target)
        if endpoint is None:
            if not any(target.startswith(p) for p in self.options.keep_paths):
                counts.not_agenttrace += 1
                return None
            endpoint = "other"
        if self.options.sample < 1.0 and self._random() >= self.options.sample:
            counts.sampled_out += 1
            return None
        if len(body) > MAX_BODY:  # never queued: no corpus may hold it
            counts.body_too_large += 1
            return None
        if self.error is not None:
            counts.recording_stopped += 1
            return None
        size = queued_size(target, body)
        if (
            self._queued - self._written >= self.options.queue_records
            or self._queued_bytes - self._written_bytes + size > self.options.queue_bytes
        ):
            counts.dropped_queue_full += 1
            return None
        offset = self.clock() - self.started_ns
        self._send(self._pack((REQUEST, offset, endpoint, method, target, headers, body)))
        number = self._queued
        self._queued += 1
        self._queued_bytes += size
        return number

    def answered(self, token: int, status: int, latency_ns: int) -> None:
        self._send(self._pack((STATUS, token, status, latency_ns)))

    def failed(self, token: int) -> None:
        self._send(self._pack((STATUS, token, FAILED, 0)))

    def _send(self, frame: bytes) -> None:
        if self._fd_out < 0:
            return
        self._out.append(frame)
        if not self._flushing:  # once per turn of the event loop, however many frames
            self._flushing = True
            gevent.get_hub().loop.run_callback(self._flush)

    def _flush(self, *_args: Any) -> None:
        """Put what fits into the pipe (one writev); wait for room for the rest (never block)."""
        self._flushing = False
        out = self._out
        if not out or self._fd_out < 0 or self._watcher is not None:
            return  # nothing to send, or waiting for room in the pipe already
        try:
            sent = os.writev(self._fd_out, out[:_IOV_MAX])
        except BlockingIOError:
            sent = 0
        except OSError:
            self._writer_gone()
            return
        whole = 0
        while whole < len(out) and sent >= len(out[whole]):
            sent -= len(out[whole])
            whole += 1
        del out[:whole]
        if sent:
            out[0] = out[0][sent:]
        if out and self._watcher is None:
            self._watcher = gevent.get_hub().loop.io(self._fd_out, 2)
            self._watcher.start(self._writable)

    def _writable(self, *_args: Any) -> None:
        self._watcher.stop()
        self._watcher = None
        self._flush()

    def _writer_gone(self) -> None:
        if self.error is None:
            self.error = "recording stopped: the writer process exited"
        self._out.clear()

    def _read_events(self) -> None:
        while True:
            try:
                data = gevent.os.nb_read(self._fd_in, 65536)
            except OSError:
                data = b""
            if not data:
                if self._final is None:
                    self._writer_gone()
                return
            self._events.feed(data)
            for event in self._events:
                self._event(event)

    def _event(self, event: tuple[Any, ...]) -> None:
        kind = event[0]
        if kind == WRITTEN:
            self._written, self._written_bytes = event[1], event[2]
        elif kind == FULL:
            self.on_full()
        elif kind == ERROR:
            self.error = event[1]
        elif kind == DONE:
            self._final = (dict(event[1]), event[2])

    def _next_event(self, *, blocking: bool) -> tuple[Any, ...] | None:
        """The next event, reading the pipe as it is (blocking at the start and the end)."""
        for event in self._events:
            return tuple(event)
        while True:
            try:
                data = os.read(self._fd_in, 65536)
            except BlockingIOError:
                if not blocking:
                    return None
                select.select([self._fd_in], [], [])
                continue
            if not data:
                return None
            self._events.feed(data)
            for event in self._events:
                return tuple(event)

    # --- the end -----------------------------------------------------------------------------

    def stop(self) -> Path:
        """Send what is queued and END; the writer writes it all (requests still in flight
        without their status), the final metadata and the index: the corpus is in place."""
        elapsed = self.clock() - self.started_ns
        proxy_counts = {k: getattr(self.counts, k) for k in PROXY_COUNTS}
        self._end(self._pack((END, proxy_counts, elapsed)))
        while self._final is None:
            event = self._next_event(blocking=True)
            if event is None:
                break
            self._event(event)
        self._reap()
        if self._final is None:  # the writer is gone: its own counts with it
            self._writer_gone()
            self.counts.recorded = self._written  # what it said it had written
            return self.partial_path
        counts, path = self._final
        self.error = counts.pop("error", None) or self.error
        endpoints = counts.pop("endpoints", {})
        for key, value in counts.items():
            setattr(self.counts, key, value)
        self.counts.endpoints = dict(endpoints)
        return Path(path)

    def abort(self) -> None:
        """Stop without finishing: the partial file stays, readable with recovery."""
        self._end(b"")
        self._reap()

    def _reap(self) -> None:
        self._proc.wait()
        if self._proc.stdout is not None:
            self._proc.stdout.close()

    def _end(self, last: bytes) -> None:
        """Everything not yet sent (and `last`) into the pipe, then close it. The writer's
        events are read meanwhile: it may be waiting for room to send them."""
        if self._reader is not None:
            self._reader.kill()
        if self._watcher is not None:
            self._watcher.stop()
            self._watcher = None
        if self._fd_out < 0:
            return
        data = memoryview(b"".join(self._out) + last)
        self._out.clear()
        try:
            while data:
                readable, writable, _ = select.select([self._fd_in], [self._fd_out], [])
                if readable:
                    event = self._next_event(blocking=False)
                    while event is not None:
                        self._event(event)
                        event = self._next_event(blocking=False)
                if writable:
                    with contextlib.suppress(BlockingIOError):
                        data = data[os.write(self._fd_out, data[:_PIPE_WRITE]) :]
        except OSError:
            self._writer_gone()
        os.set_blocking(self._fd_in, True)
        assert self._proc.stdin is not None
        with contextlib.suppress(OSError):
            self._proc.stdin.close()
        self._fd_out = -1


def options_frame(options: RecordOptions, started_ns: int, created: str) -> dict[str, Any]:
    """The CONFIG frame's options: everything the writer needs, as plain values."""
    return {
        "output": str(options.output),
        "upstream": options.upstream,
        "sample": options.sample,
        "redact": options.redact,
        "keep_paths": list(options.keep_paths),
        "max_records": options.max_records,
        "command": options.command,
        "queue_records": options.queue_records,
        "queue_bytes": options.queue_bytes,
        "window_s": options.window_s,
        "flush_s": options.flush_s,
        "max_decoded": options.max_decoded,
        "started_ns": started_ns,
        "created": created,
    }


def queued_size(target: str, body: bytes) -> int:
    """What one request counts against `queue_bytes` (the proxy's and the writer's measure)."""
    return len(body) + len(target) + 256


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def decoded_body(body: bytes, headers: list[tuple[str, str]], limit: int) -> bytes | None:
    """The body without its Content-Encoding (gzip, deflate), or None if it does not decode."""
    encoding = next((v.strip().lower() for k, v in headers if k.lower() == "content-encoding"), "")
    if not body or encoding in ("", "identity"):
        return body
    if encoding in ("gzip", "x-gzip"):
        wbits = 16 + zlib.MAX_WBITS
    elif encoding == "deflate":
        wbits = zlib.MAX_WBITS
    else:
        return None
    try:
        decoder = zlib.decompressobj(wbits)
        out = decoder.decompress(body, limit)
        if decoder.unconsumed_tail or not decoder.eof:
            return None
        return out
    except zlib.error:
        return None
