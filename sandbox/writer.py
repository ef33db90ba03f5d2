"""The worker's hold on the store: every acknowledged record is written, or kept until it can be.

A batch the store cannot take now (``sqlite3.OperationalError``: another connection holds the
write lock past the busy timeout, the disk or ``--max-db-size`` is full, an I/O error) is
not dropped: :meth:`StoreWriter.write` keeps it and retries with a growing pause (up to
``MAX_PAUSE``), and reports the store as not writable, which the pods turn into 503 with
``Retry-After`` for new ingestion and 503 on ``/ready``. What they acknowledged before they
heard of it is in the worker's queue and is written once the store recovers.

Only a record that no retry can help (it breaks a constraint, or has a value SQLite cannot
hold) is set aside, and then alone: the batch is written record by record and each such
record is logged in one line naming it, never with its content.

If the worker must exit while the store still cannot write, the records it holds are saved
to a spill file beside the database (``<db>.unwritten``, length-prefixed msgpack) and are
written first at the next start on that database.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import struct
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import msgpack

from sandbox import store

log = logging.getLogger("sandbox.writer")

MAX_PAUSE = 2.0
FIRST_PAUSE = 0.05
_LENGTH = struct.Struct(">I")


def spill_path(db_path: str | Path) -> Path:
    """Where records the store could not take are kept across a restart."""
    return Path(f"{db_path}.unwritten")


def describe(exc: BaseException) -> str:
    """One line for a store error: its class and message, nothing of the records."""
    text = " ".join(str(exc).split())[:200]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class StoreWriter:
    """Writes batches into one SQLite connection; never loses one to a transient failure.

    ``on_state(writable)`` is called when the store stops or starts accepting writes.
    ``stopping()`` tells a retry loop that the worker is exiting: it then retries for at most
    ``exit_retry`` seconds before the caller spills what is left.
    """

    def __init__(
        self,
        conn: sqlite3.Connection,
        *,
        on_state: Callable[[bool], None],
        stopping: Callable[[], bool],
        wait: Callable[[float], object],
        exit_retry: float = 5.0,
    ) -> None:
        self._conn = conn
        self._on_state = on_state
        self._stopping = stopping
        self._wait = wait
        self._exit_retry = exit_retry
        self.writable = True
        self.set_aside = 0

    def write(self, batch: list[store.Queued]) -> tuple[int, int] | None:
        """Write ``batch``; (traces, observations) written, or None when the worker is
        exiting and the store still cannot write (the caller then spills the batch)."""
        pause = FIRST_PAUSE
        failing_since = 0.0
        attempts = 0
        while True:
            try:
                written = self._write_once(batch)
            except sqlite3.OperationalError as exc:
                attempts += 1
                now = time.monotonic()
                if not failing_since:
                    failing_since = now
                if self.writable:
                    self.writable = False
                    self._on_state(False)
                log.warning(
                    "store cannot write (%s): holding a batch of %d records, attempt %d; "
                    "ingestion answers 503 until it can",
                    describe(exc),
                    len(batch),
                    attempts,
                )
                if self._stopping() and now - failing_since >= self._exit_retry:
                    return None
                self._wait(pause)
                pause = min(pause * 2, MAX_PAUSE)
                continue
            if not self.writable:
                self.writable = True
                self._on_state(True)
                log.info(
                    "store writable again after %.1fs; the held batch of %d records is written",
                    time.monotonic() - failing_since,
                    len(batch),
                )
            return written

    def _write_once(self, batch: list[store.Queued]) -> tuple[int, int]:
        try:
            return store.write(self._conn, batch)
        except sqlite3.OperationalError:
            raise
        except Exception as exc:
            log.warning(
                "batch of %d records failed (%s); writing them one by one",
                len(batch),
                describe(exc),
            )
        traces = observations = 0
        for project, kind, record in batch:
            try:
                t, o = store.write(self._conn, [(project, kind, record)])
            except sqlite3.OperationalError:
                raise
            except Exception as exc:
                self.set_aside += 1
                log.error(
                    "record set aside, it cannot be stored: project %r, %s %r (%s)",
                    project,
                    "trace" if kind == "t" else "observation",
                    str(record.get("id"))[:128],
                    describe(exc),
                )
                continue
            traces += t
            observations += o
        return traces, observations


def save_spill(path: Path, items: Iterable[store.Queued]) -> int:
    """Write ``items`` to the spill file (atomically replacing it); returns how many."""
    tmp = path.with_name(path.name + ".tmp")
    count = 0
    with open(tmp, "wb") as out:
        for project, kind, record in items:
            payload = msgpack.packb([project, kind, record], use_bin_type=True)
            out.write(_LENGTH.pack(len(payload)) + payload)
            count += 1
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)
    return count


def load_spill(path: Path) -> list[store.Queued]:
    """The records a previous run could not write (empty when there is no spill file).

    A spill file cut short (the machine died while writing it) yields its complete
    records; the incomplete tail is reported and ignored.
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    items: list[store.Queued] = []
    at = 0
    while at + 4 <= len(data):
        (size,) = _LENGTH.unpack_from(data, at)
        if at + 4 + size > len(data):
            break
        project, kind, record = msgpack.unpackb(data[at + 4 : at + 4 + size], raw=False)
        items.append((project, kind, record))
        at += 4 + size
    if at != len(data):
        log.warning("%s: %d bytes at its end are not a whole record; ignored", path, len(data) - at)
    return items
