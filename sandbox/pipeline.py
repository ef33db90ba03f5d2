"""The ingestion pipeline: API processes enqueue, one worker drains the queue into SQLite.

This mirrors the production path API -> queue -> worker -> ClickHouse. Each API process
holds one Unix-socket connection to the worker and writes length-prefixed msgpack frames;
a request is acknowledged only after its frame is in the worker's socket buffer, so a trace
the API answered 200 for is already in the worker's hands. The worker:

- reads every connection from one selector thread into an in-memory FIFO (bounded: past
  ``max_pending`` records it stops reading, and the API's writes block: backpressure);
- writes from the FIFO in batches (whatever has accumulated, up to ``batch_max`` records, in
  one transaction), holding each record until ``received + ingest_delay`` to mimic a queue's
  delay, so reads are eventually consistent;
- answers *flush barriers*: a barrier frame is queued behind everything any API process had
  acknowledged when it arrived (the worker first drains every connection's socket buffer),
  and its answer is sent once all of that is committed;
- on SIGTERM, after the API processes have closed their connections, writes everything that
  is left, ignoring the delay, and exits: no acknowledged trace is lost.

Frames, API -> worker: ``["i", project_id, [[kind, record], ...]]`` or ``["b", barrier_id]``.
Worker -> API: ``["b", barrier_id]`` when the barrier is reached; ``["s", writable]`` when the
store stops or starts accepting writes (see :mod:`sandbox.writer`): while it does not, the
API answers ingestion 503 and ``/ready`` 503, and the worker keeps what it holds.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import selectors
import socket
import sqlite3
import struct
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgpack

from sandbox import store
from sandbox.payload import Item
from sandbox.writer import StoreWriter, describe, load_spill, save_spill, spill_path

log = logging.getLogger("sandbox.pipeline")

_LENGTH = struct.Struct(">I")
MAX_FRAME = 256 * 1024 * 1024


class QueueUnavailable(RuntimeError):
    """The worker cannot be reached: the API answers 503 and acknowledges nothing."""


def encode_frame(message: Sequence[Any]) -> bytes:
    payload = msgpack.packb(message, use_bin_type=True)
    return _LENGTH.pack(len(payload)) + payload


class FrameReader:
    """Splits a byte stream into decoded frames; keeps a partial frame until it completes."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[Any]:
        self._buf += data
        frames = []
        while len(self._buf) >= 4:
            (size,) = _LENGTH.unpack_from(self._buf)
            if size > MAX_FRAME:
                raise ValueError(f"frame of {size} bytes exceeds the limit")
            if len(self._buf) < 4 + size:
                break
            frames.append(msgpack.unpackb(bytes(self._buf[4 : 4 + size]), raw=False))
            del self._buf[: 4 + size]
        return frames

    @property
    def partial(self) -> int:
        return len(self._buf)


# ------------------------------------------------------------------ API side (gevent)


class Producer:
    """The API process's end of the queue. Cooperative under gevent; no monkey-patching."""

    def __init__(self, path: str | Path, connect_timeout: float = 10.0) -> None:
        import gevent.lock

        self._path = str(path)
        self._connect_timeout = connect_timeout
        self._lock = gevent.lock.Semaphore()
        self._sock: Any = None
        self._barriers: dict[int, Any] = {}
        self._next_barrier = 0
        self.writable = True
        """False while the worker reports that the store cannot write."""

    def connect(self) -> None:
        """Connect (or reconnect) to the worker, retrying until ``connect_timeout``."""
        import gevent
        from gevent import socket as gsocket

        deadline = time.monotonic() + self._connect_timeout
        while True:
            sock = gsocket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.connect(self._path)
            except OSError as exc:
                sock.close()
                if time.monotonic() > deadline:
                    raise QueueUnavailable(f"ingestion worker unreachable: {exc}") from exc
                gevent.sleep(0.05)
                continue
            self._sock = sock
            self.writable = True  # a (new) worker says so at once when its store cannot write
            gevent.spawn(self._read_replies, sock)
            return

    def enqueue(self, project: str, items: list[Item]) -> None:
        """Hand records to the worker; returns once they are in its socket buffer."""
        frame = encode_frame(["i", project, items])
        self._send(frame)

    def flush(self, timeout: float) -> bool:
        """Wait until everything acknowledged so far (by any API process) is committed."""
        import gevent.event

        self._next_barrier += 1
        barrier = self._next_barrier
        done = gevent.event.Event()
        self._barriers[barrier] = done
        try:
            self._send(encode_frame(["b", barrier]))
            return bool(done.wait(timeout))
        finally:
            self._barriers.pop(barrier, None)

    @property
    def connected(self) -> bool:
        return self._sock is not None

    def close(self) -> None:
        with self._lock:
            if self._sock is not None:
                self._sock.close()
                self._sock = None

    def _send(self, frame: bytes) -> None:
        with self._lock:
            for attempt in (1, 2):
                if self._sock is None:
                    try:
                        self.connect()
                    except QueueUnavailable:
                        if attempt == 2:
                            raise
                        continue
                try:
                    self._sock.sendall(frame)
                    return
                except OSError as exc:
                    log.warning("queue connection lost (%s); reconnecting", exc)
                    self._sock.close()
                    self._sock = None
            raise QueueUnavailable("ingestion worker connection lost")

    def _read_replies(self, sock: Any) -> None:
        reader = FrameReader()
        while True:
            try:
                data = sock.recv(65536)
            except OSError:
                data = b""
            if not data:
                if self._sock is sock:
                    self._sock = None
                return
            for frame in reader.feed(data):
                if frame and frame[0] == "b":
                    event = self._barriers.get(frame[1])
                    if event is not None:
                        event.set()
                elif frame and frame[0] == "s":
                    self.writable = bool(frame[1])


# ------------------------------------------------------------------ worker side (threads)


@dataclass(frozen=True)
class WorkerStats:
    received: int
    written: int
    pending: int


_Entry = tuple[float, str, str, dict[str, Any]]
_BARRIER = "\x00barrier"


class Worker:
    """Reads every API connection, writes batches into the store. One per sandbox."""

    def __init__(
        self,
        db_path: str | Path,
        socket_path: str | Path,
        *,
        ingest_delay: float = 0.0,
        batch_max: int = 2000,
        max_pending: int = 200_000,
        drain_timeout: float = 30.0,
        on_batch: Callable[[int, int, int], None] | None = None,
        busy_timeout: float = 1.0,
        max_db_bytes: int | None = None,
        exit_retry: float = 5.0,
    ) -> None:
        self._db_path = str(db_path)
        self._socket_path = str(socket_path)
        self._delay = ingest_delay
        self._batch_max = batch_max
        self._max_pending = max_pending
        self._drain_timeout = drain_timeout
        self._on_batch = on_batch
        self._queue: collections.deque[_Entry] = collections.deque()
        self._cond = threading.Condition()
        self._stopping = threading.Event()
        self._reader_done = threading.Event()
        self._received = 0
        self._written = 0
        self._conn = store.connect(self._db_path, busy_timeout=busy_timeout, max_bytes=max_db_bytes)
        self._peers: set[socket.socket] = set()
        self._peers_lock = threading.Lock()
        self._writer = StoreWriter(
            self._conn,
            on_state=self._announce_state,
            stopping=self._stopping.is_set,
            wait=time.sleep,
            exit_retry=exit_retry,
        )
        self._spill = spill_path(self._db_path)
        spilled = load_spill(self._spill)
        self._spill_left = len(spilled)
        if spilled:
            log.info(
                "%s: %d records a previous run could not write; writing them first",
                self._spill,
                len(spilled),
            )
            self._push([(0.0, project, kind, record) for project, kind, record in spilled])
        if os.path.exists(self._socket_path):
            os.unlink(self._socket_path)
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind(self._socket_path)
        self._listener.listen(256)
        self._listener.setblocking(False)

    def stop(self) -> None:
        """Begin draining: accept no new connection, finish the open ones, write everything."""
        self._stopping.set()

    def stats(self) -> WorkerStats:
        with self._cond:
            return WorkerStats(self._received, self._written, len(self._queue))

    def run(self) -> None:
        """Serve until :meth:`stop`, then drain; call from the main thread."""
        reader = threading.Thread(target=self._read_loop, name="queue-reader", daemon=True)
        reader.start()
        try:
            self._write_loop()
        finally:
            reader.join(timeout=5)
            try:
                self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.Error as exc:
                log.warning("WAL checkpoint at exit skipped (%s)", describe(exc))
            self._conn.close()
            if os.path.exists(self._socket_path):
                os.unlink(self._socket_path)

    # The reader thread owns every socket.
    def _announce_state(self, writable: bool) -> None:
        """Tell every API process whether the store takes writes (they answer 503 if not)."""
        frame = encode_frame(["s", writable])
        with self._peers_lock:
            for sock in self._peers:
                with contextlib.suppress(OSError):
                    sock.sendall(frame)

    def _read_loop(self) -> None:
        selector = selectors.DefaultSelector()
        selector.register(self._listener, selectors.EVENT_READ, None)
        readers: dict[socket.socket, FrameReader] = {}
        drain_deadline = 0.0
        try:
            while True:
                if self._stopping.is_set():
                    if drain_deadline == 0.0:
                        selector.unregister(self._listener)
                        self._listener.close()
                        drain_deadline = time.monotonic() + self._drain_timeout
                    if not readers or time.monotonic() > drain_deadline:
                        break
                self._wait_for_room()
                for key, _ in selector.select(timeout=0.1):
                    if key.data is None:
                        self._accept(selector, readers)
                    else:
                        self._read(key.fileobj, selector, readers)  # type: ignore[arg-type]
        except Exception:
            log.exception("queue reader failed")
        finally:
            for sock, reader in readers.items():
                if reader.partial:
                    log.warning("discarding a partial frame (%d bytes) at close", reader.partial)
                sock.close()
            selector.close()
            self._reader_done.set()
            with self._cond:
                self._cond.notify_all()

    def _wait_for_room(self) -> None:
        with self._cond:
            while len(self._queue) >= self._max_pending and not self._stopping.is_set():
                self._cond.wait(0.1)

    def _accept(
        self, selector: selectors.BaseSelector, readers: dict[socket.socket, FrameReader]
    ) -> None:
        try:
            conn, _ = self._listener.accept()
        except BlockingIOError:
            return
        conn.setblocking(False)
        readers[conn] = FrameReader()
        selector.register(conn, selectors.EVENT_READ, True)
        with self._peers_lock:
            self._peers.add(conn)
            if not self._writer.writable:
                with contextlib.suppress(OSError):
                    conn.sendall(encode_frame(["s", False]))

    def _read(
        self,
        sock: socket.socket,
        selector: selectors.BaseSelector,
        readers: dict[socket.socket, FrameReader],
    ) -> None:
        try:
            data = sock.recv(1 << 20)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            reader = readers.pop(sock)
            if reader.partial:
                log.warning("connection closed mid-frame; %d bytes discarded", reader.partial)
            selector.unregister(sock)
            with self._peers_lock:
                self._peers.discard(sock)
                sock.close()
            return
        for frame in readers[sock].feed(data):
            if frame[0] == "b":
                self._drain_all(readers, skip=sock)
                self._push([(time.monotonic(), _BARRIER, "", {"sock": sock, "id": frame[1]})])
            else:
                self._push_items(frame[1], frame[2])

    def _drain_all(self, readers: dict[socket.socket, FrameReader], skip: socket.socket) -> None:
        """Read whatever every other connection has buffered, so a barrier covers it."""
        for sock, reader in list(readers.items()):
            if sock is skip:
                continue
            while True:
                try:
                    data = sock.recv(1 << 20)
                except (BlockingIOError, OSError):
                    break
                if not data:
                    break
                for frame in reader.feed(data):
                    if frame[0] == "i":
                        self._push_items(frame[1], frame[2])

    def _push_items(self, project: str, items: list[list[Any]]) -> None:
        due = time.monotonic() + self._delay
        self._push([(due, project, kind, record) for kind, record in items])

    def _push(self, entries: list[_Entry]) -> None:
        with self._cond:
            self._queue.extend(entries)
            self._received += sum(1 for e in entries if e[1] != _BARRIER)
            self._cond.notify_all()

    # The writer runs in the main thread.
    def _write_loop(self) -> None:
        while True:
            batch, barriers = self._take()
            if batch is None:
                return
            if batch and not self._write(batch):
                self._spill_rest(batch)
                return
            for entry in barriers:
                with contextlib.suppress(OSError):
                    entry[3]["sock"].sendall(encode_frame(["b", entry[3]["id"]]))

    def _take(self) -> tuple[list[store.Queued] | None, list[_Entry]]:
        """The next batch of due records, and the barriers it completes (None: all done)."""
        with self._cond:
            while True:
                draining = self._stopping.is_set()
                if not self._queue:
                    if draining and self._reader_done.is_set():
                        return None, []
                    self._cond.wait(0.1)
                    continue
                now = time.monotonic()
                head_due = self._queue[0][0]
                if head_due > now and not draining:
                    self._cond.wait(min(head_due - now, 0.1))
                    continue
                batch: list[store.Queued] = []
                barriers: list[_Entry] = []
                while self._queue and len(batch) < self._batch_max:
                    due, project, kind, record = self._queue[0]
                    if due > now and not draining:
                        break
                    self._queue.popleft()
                    if project == _BARRIER:
                        barriers.append((due, project, kind, record))
                        break
                    batch.append((project, kind, record))
                self._cond.notify_all()
                return batch, barriers

    def _write(self, batch: list[store.Queued]) -> bool:
        """Write a batch (retrying while the store cannot); False: exiting, not written."""
        written = self._writer.write(batch)
        if written is None:
            return False
        traces, observations = written
        with self._cond:
            self._written += len(batch)
            pending = len(self._queue)
        if self._spill_left:
            self._spill_left = max(0, self._spill_left - len(batch))
            if not self._spill_left:
                self._spill.unlink(missing_ok=True)
        if self._on_batch is not None:
            self._on_batch(traces, observations, pending)
        return True

    def _spill_rest(self, batch: list[store.Queued]) -> None:
        """Exiting with a store that still cannot write: keep everything held in the spill."""
        self._reader_done.wait(self._drain_timeout)
        with self._cond:
            rest = [(p, k, r) for _, p, k, r in self._queue if p != _BARRIER]
            self._queue.clear()
        count = save_spill(self._spill, [*batch, *rest])
        log.error(
            "store still cannot write at exit: %d acknowledged records saved to %s; "
            "they are written first when a sandbox next starts on this database",
            count,
            self._spill,
        )
