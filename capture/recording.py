"""The recorder of `capture record`: requests from the proxy into a corpus, off its path.

The proxy hands each whole request to `Recorder.request` (the `Tap` of capture/proxy.py),
which only decides cheaply whether to keep it (an AgentTrace path or a kept `--path`
prefix, the `--sample` draw, room in the queue) and appends a `Pending` slot to a bounded
queue. A writer thread takes slots in arrival order, each once its answer is known (or
`window_s` after it arrived), and does the rest there:

    not recorded  requests the upstream never answered (502/504), heads that could not go
                  back on the wire (capture/httphead.py), bodies that would not decode
    headers       credentials (Authorization, Cookie, and any name holding key, token,
                  secret or auth), hop-by-hop and per-connection headers, Host,
                  Content-Length, User-Agent, X-Forwarded-* are never written
    body          a gzip or deflate request body is recorded decoded (its Content-Encoding
                  dropped), so that replay can rewrite its ids; `--redact` replaces free text
    spans         capture/spans.py finds ids and timestamps as synth marks them

When the queue is full (`queue_records` slots or `queue_bytes` of bodies waiting) the request
is still forwarded, only not recorded, and counted. The offset of a record is when its whole
request had arrived (when it was forwarded), from the recorder's start; `created` is the
wall-clock time of that start, so replay moves recorded timestamps as it does synthetic ones.
Every second the writer puts what it has into whole chunks on disk, so that a crash loses at
most the last second: the file is then read with `capture inspect --recover` and made whole
with `capture repair`. The counts go into the corpus metadata (`extra.recording`) at close.
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
import zlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from capture.corpus import CorpusMeta, CorpusWriter, Record
from capture.httphead import head_problem
from capture.intake import endpoint_of
from capture.redact import redact_body
from capture.spans import find_spans

WAITING, FAILED = 0, -1

# Describe the recorded connection, or are rewritten by whoever sends the record again.
_NOT_RECORDED = frozenset(
    {
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "te",
        "trailer",
        "upgrade",
        "expect",
        "proxy-connection",
        "user-agent",
        "forwarded",
        "x-forwarded-for",
        "x-forwarded-host",
        "x-forwarded-proto",
        "x-forwarded-port",
        "x-real-ip",
        "cookie",
        "set-cookie",
    }
)
_CREDENTIAL_WORDS = ("key", "token", "secret", "auth")


def is_credential(name: str) -> bool:
    """Whether a header may carry a credential: it never enters a corpus."""
    lower = name.lower()
    return lower in ("cookie", "set-cookie") or any(w in lower for w in _CREDENTIAL_WORDS)


def recorded_headers(headers: list[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    """The headers a record keeps: no credentials, nothing about the connection."""
    return tuple(
        (k, v)
        for k, v in headers
        if k.lower() not in _NOT_RECORDED
        and k.lower() != "content-encoding"
        and not is_credential(k)
    )


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


class Pending:
    """One request waiting to be written: filled by the proxy, read by the writer thread."""

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


@dataclass
class Counts:
    """What happened to the requests the proxy saw. Each field is written by one thread."""

    requests: int = 0  # every request the proxy forwarded (or tried to)
    recorded: int = 0
    dropped_queue_full: int = 0  # kept out of the recording to keep forwarding fast
    sampled_out: int = 0
    not_agenttrace: int = 0  # paths outside AgentTrace's API and every --path
    upstream_failed: int = 0  # 502/504: nothing to record
    bad_head: int = 0  # could not go back on the wire as recorded (capture/httphead.py)
    undecodable_body: int = 0  # Content-Encoding that would not decode
    past_max_records: int = 0
    endpoints: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


class Recorder:
    """The proxy's tap: see the module docstring. `start()`, then `stop()` returns the path."""

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
        self.on_full = on_full  # called (from the writer thread) when --max-records is reached
        self.counts = Counts()
        self.error: str | None = None  # why the writer stopped early
        self._random = (rng or random.Random()).random
        self._queue: deque[Pending] = deque()
        self._queued_bytes = 0  # added by the proxy
        self._written_bytes = 0  # added by the writer
        self._queued = 0
        self._written = 0
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="capture-record", daemon=True)
        self.started_ns = clock()
        started = datetime.now(UTC)
        self.created = (
            started.strftime("%Y-%m-%dT%H:%M:%S.") + f"{started.microsecond // 1000:03d}Z"
        )
        self._writer = CorpusWriter(
            options.output,
            self._meta(final=False),
            keep_partial=True,
            meta_reserve=4096,
            level=1,  # compression costs the proxy's CPU: the fastest level, 5% larger
        )

    @property
    def partial_path(self) -> Path:
        return self._writer.partial_path

    def start(self) -> None:
        self._thread.start()

    # --- the proxy's side: cheap, never blocks ----------------------------------------------

    def request(
        self, method: str, target: str, headers: list[tuple[str, str]], body: bytes
    ) -> Pending | None:
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
        size = len(body) + len(target) + 256
        if (
            self.error is not None
            or self._queued - self._written >= self.options.queue_records
            or self._queued_bytes - self._written_bytes + size > self.options.queue_bytes
        ):
            counts.dropped_queue_full += 1
            return None
        offset = self.clock() - self.started_ns
        slot = Pending(offset, endpoint, method, target, headers, body)
        self._queued += 1
        self._queued_bytes += size
        self._queue.append(slot)
        return slot

    def answered(self, token: Pending, status: int, latency_ns: int) -> None:
        token.latency_ns = latency_ns
        token.status = status

    def failed(self, token: Pending) -> None:
        token.status = FAILED

    # --- the writer thread ---------------------------------------------------------------

    def _run(self) -> None:
        window_ns = int(self.options.window_s * 1e9)
        flush_ns = int(self.options.flush_s * 1e9)
        last_flush = self.clock()
        dirty = False
        queue = self._queue
        try:
            while True:
                stopping = self._stopping.is_set()
                now = self.clock() - self.started_ns
                while queue:
                    slot = queue[0]
                    if slot.status == WAITING and not stopping and now - slot.offset_ns < window_ns:
                        break
                    queue.popleft()
                    self._write(slot)
                    self._written += 1
                    self._written_bytes += len(slot.body) + len(slot.path) + 256
                    dirty = True
                    time.sleep(0)  # hand the GIL to the proxy between records
                if stopping and not queue:
                    break
                if dirty and self.clock() - last_flush >= flush_ns:
                    self._writer.flush()
                    last_flush = self.clock()
                    dirty = False
                self._stopping.wait(0.005)
        except Exception as exc:  # a full disk, a writer bug: forwarding goes on without us
            self.error = f"recording stopped: {type(exc).__name__}: {exc}"
            queue.clear()

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
        if head_problem(slot.method, slot.path, headers) is not None:
            counts.bad_head += 1
            return
        body = _decoded(slot.body, slot.headers, self.options.max_decoded)
        if body is None:
            counts.undecodable_body += 1
            return
        if self.options.redact and body:
            body = redact_body(body)
        found = find_spans(body, slot.path)
        self._writer.write(
            Record(
                offset_ns=slot.offset_ns,
                endpoint=slot.endpoint,
                method=slot.method,
                path=slot.path,
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
        counts.endpoints[slot.endpoint] = counts.endpoints.get(slot.endpoint, 0) + 1
        if max_records is not None and counts.recorded == max_records:
            self.on_full()

    # --- the end -----------------------------------------------------------------------------

    def stop(self) -> Path:
        """Write what is queued (requests still in flight without their status), the final
        metadata and the index; the corpus is then in place under its name."""
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join()
        elapsed = self.clock() - self.started_ns
        with contextlib.suppress(ValueError):  # outgrew the reserved room: keep the first
            self._writer.set_meta(self._meta(final=True))
        return self._writer.close(duration_ns=elapsed)

    def abort(self) -> None:
        """Stop without finishing: the partial file stays, readable with recovery."""
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join()
        self._writer.abort()

    def _meta(self, *, final: bool) -> CorpusMeta:
        options = self.options
        extra: dict[str, Any] = {
            "command": options.command,
            "upstream": options.upstream,
            "sample": options.sample,
            "redacted": options.redact,
            "kept_paths": list(options.keep_paths),
        }
        if final:
            extra["recording"] = self.counts.to_json()
            if self.error is not None:
                extra["recording"]["error"] = self.error
        return CorpusMeta(
            workload="recorded",
            source=f"capture record {options.upstream}",
            created=self.created,
            extra=extra,
        )


def _decoded(body: bytes, headers: list[tuple[str, str]], limit: int) -> bytes | None:
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
