"""Writing a corpus: records in time order, compressed a chunk at a time on a thread, the
index after the last chunk, and the header patched last (so a writer that died leaves a
corpus readable chunk by chunk with ``recover=True``)."""

from __future__ import annotations

import os
import zlib
from collections import deque
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import msgpack
import zstandard

from capture.corpus_check import (
    MAX_CHUNK_BYTES,
    MAX_CHUNK_RECORDS,
    writable_problem,
)
from capture.corpus_format import (
    _CHUNK,
    _HEADER,
    _INDEX,
    CHUNK_MAGIC,
    ENDPOINTS,
    FORMAT_VERSION,
    INDEX_MAGIC,
    MAGIC,
    CorpusMeta,
    Record,
    _record_to_wire,
)


def partial_path(path: str | os.PathLike[str]) -> Path:
    """Where the corpus `path` is written until it is finished (and what a crash leaves)."""
    finished = Path(path)
    return finished.with_name(finished.name + ".partial")


class CorpusWriter:
    """Writes records, in non-decreasing offset order, to a new corpus file.

    The file is written as ``PATH.partial`` and renamed into place by ``close()``, so a
    reader never sees half a corpus under the final name. On an exception inside a ``with``
    block the partial file is removed, unless ``keep_partial=True`` (a recorder keeps what
    it captured: the partial file reads with ``CorpusReader(path, recover=True)``).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        meta: CorpusMeta,
        *,
        duration_ns: int | None = None,
        chunk_records: int = 2048,
        chunk_bytes: int = 1 << 20,
        level: int = 3,
        keep_partial: bool = False,
        meta_reserve: int = 0,
    ) -> None:
        if not (0 < chunk_records <= MAX_CHUNK_RECORDS and 0 < chunk_bytes <= MAX_CHUNK_BYTES):
            raise ValueError(
                f"chunk_records must be 1 to {MAX_CHUNK_RECORDS} and chunk_bytes 1 to "
                f"{MAX_CHUNK_BYTES}"
            )
        self.path = Path(path)
        self.partial_path = partial_path(self.path)
        self.meta = meta
        self._declared_duration_ns = duration_ns
        self._chunk_records = chunk_records
        self._chunk_bytes = chunk_bytes
        self._keep_partial = keep_partial
        self._compressor = zstandard.ZstdCompressor(level=level, write_checksum=False)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="corpus-zstd")
        self._compressing: deque[tuple[Future[bytes], int, int, int]] = deque()
        self._packer = msgpack.Packer(use_bin_type=True)
        self._pending: list[list[Any]] = []
        self._pending_bytes = 0
        self._index: list[list[int]] = []
        self._records = 0
        self._last_ns = 0
        self._closed = False
        self._meta_bytes = self._packer.pack(meta.to_wire())
        if meta_reserve > 0:
            self._meta_bytes = _pack_meta(meta, _padded_base(meta) + meta_reserve)
        self._file: IO[bytes] = open(self.partial_path, "wb")  # noqa: SIM115 - closed in close()
        self._file.write(self._header_bytes(records=0, duration_ns=0, chunks=0, index_offset=0))

    def __enter__(self) -> CorpusWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def write(self, record: Record) -> None:
        if self._closed:
            raise ValueError("write to a closed corpus writer")
        if record.offset_ns < self._last_ns:
            raise ValueError(
                f"records must be in time order: offset {record.offset_ns} ns "
                f"after {self._last_ns} ns"
            )
        if record.endpoint not in ENDPOINTS:
            raise ValueError(f"unknown endpoint tag {record.endpoint!r}")
        problem = writable_problem(
            record.offset_ns, record.method, record.path, record.headers, record.body
        )
        if problem:
            raise ValueError(f"record at {record.offset_ns} ns cannot be written: {problem}")
        self._last_ns = record.offset_ns
        wire = _record_to_wire(record)
        self._pending.append(wire)
        self._pending_bytes += len(record.body) + len(record.path) + 64
        if len(self._pending) >= self._chunk_records or self._pending_bytes >= self._chunk_bytes:
            self._flush_chunk()

    def write_all(self, records: Iterable[Record]) -> None:
        for record in records:
            self.write(record)

    def flush(self) -> None:
        """Put every record written so far into whole chunks on disk (a recorder calls this
        now and then, so that a crash loses at most what came since)."""
        self._flush_chunk()
        self._write_compressed(keep=0)
        self._file.flush()

    def sync(self) -> int:
        """Put the chunks already compressed on disk (fsync) without cutting a chunk short;
        the number of records those whole chunks hold, all that a crash cannot lose."""
        self._write_compressed(keep=0)
        self._file.flush()
        os.fsync(self._file.fileno())
        return self._records

    def set_meta(self, meta: CorpusMeta) -> None:
        """Replace the metadata before `close()`: only within the room the writer was opened
        with (`meta_reserve` bytes more than the first metadata took), else ValueError."""
        self._meta_bytes = _pack_meta(meta, len(self._meta_bytes))
        self.meta = meta

    def _flush_chunk(self) -> None:
        """Hand the pending records to the compression thread; write what it has finished.

        zstd releases the GIL, so compressing chunk k on a thread while the caller builds
        chunk k+1 overlaps the two. At most two chunks wait, which bounds memory.
        """
        if not self._pending:
            return
        raw = self._packer.pack(self._pending)
        self._compressing.append(
            (
                self._pool.submit(self._compressor.compress, raw),
                len(self._pending),
                self._pending[0][0],
                self._pending[-1][0],
            )
        )
        self._pending = []
        self._pending_bytes = 0
        self._write_compressed(keep=2)

    def _write_compressed(self, keep: int) -> None:
        while len(self._compressing) > keep:
            future, records, first_ns, last_ns = self._compressing.popleft()
            payload = future.result()
            offset = self._file.tell()
            self._file.write(
                _CHUNK.pack(
                    CHUNK_MAGIC, len(payload), records, zlib.crc32(payload), first_ns, last_ns
                )
            )
            self._file.write(payload)
            self._index.append([offset, records, first_ns, last_ns])
            self._records += records

    def _header_bytes(
        self, *, records: int, duration_ns: int, chunks: int, index_offset: int
    ) -> bytes:
        fields = (MAGIC, FORMAT_VERSION, 0, records, duration_ns, chunks, index_offset)
        unsigned = _HEADER.pack(*fields, len(self._meta_bytes), 0)
        crc = zlib.crc32(self._meta_bytes, zlib.crc32(unsigned))
        return _HEADER.pack(*fields, len(self._meta_bytes), crc) + self._meta_bytes

    def close(self, duration_ns: int | None = None) -> Path:
        """Flush, write the index, patch the header and move the file into place; a
        `duration_ns` given here replaces the one given when the writer was opened."""
        if self._closed:
            return self.path
        if duration_ns is not None:
            self._declared_duration_ns = duration_ns
        self._flush_chunk()
        self._write_compressed(keep=0)
        self._pool.shutdown()
        index_offset = self._file.tell()
        index_payload = self._packer.pack(self._index)
        self._file.write(_INDEX.pack(INDEX_MAGIC, len(index_payload), zlib.crc32(index_payload)))
        self._file.write(index_payload)
        duration_ns = max(self._declared_duration_ns or 0, self._last_ns)
        self._file.seek(0)
        self._file.write(
            self._header_bytes(
                records=self._records,
                duration_ns=duration_ns,
                chunks=len(self._index),
                index_offset=index_offset,
            )
        )
        self._file.close()
        os.replace(self.partial_path, self.path)
        self._closed = True
        return self.path

    def abort(self) -> None:
        """Stop writing; keep a readable partial file only if asked to."""
        if self._closed:
            return
        self._closed = True
        if self._keep_partial:
            self._flush_chunk()
            self._write_compressed(keep=0)
        self._pool.shutdown(cancel_futures=True)
        self._file.close()
        if not self._keep_partial:
            self.partial_path.unlink(missing_ok=True)


def _padded_base(meta: CorpusMeta) -> int:
    """Bytes of the metadata map with an empty `pad` entry."""
    return len(msgpack.packb({**meta.to_wire(), "pad": b""}, use_bin_type=True))


def _pack_meta(meta: CorpusMeta, size: int) -> bytes:
    """The metadata map, padded to exactly `size` bytes with a bin entry that readers ignore:
    `pad`, or `pad_`/`pad__` for the sizes msgpack's bin heads (2, 3 or 5 bytes) would skip.
    ValueError when it does not fit."""
    base = _padded_base(meta)
    for longer in range(3):
        room = size - base - longer
        n = room if room <= 255 else room - 1 if room <= 65536 else room - 3
        wire = {**meta.to_wire(), "pad" + "_" * longer: bytes(max(n, 0))}
        packed: bytes = msgpack.packb(wire, use_bin_type=True)
        if len(packed) == size:
            return packed
    raise ValueError(f"metadata of {base} bytes does not fit in {size}")


def write_corpus(
    path: str | os.PathLike[str],
    meta: CorpusMeta,
    records: Iterable[Record],
    *,
    duration_ns: int | None = None,
    **options: Any,
) -> Path:
    """Write a whole corpus from an iterable of records."""
    with CorpusWriter(path, meta, duration_ns=duration_ns, **options) as writer:
        writer.write_all(records)
    return Path(path)


# --- reading -----------------------------------------------------------------------------
