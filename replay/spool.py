"""Templates built once and kept on disk, for a shard too large to keep in memory.

Without it, a worker whose shard exceeds its template cache decodes and builds every record
again as it sends it (~11 µs for a 1.8 KB record, ~38 µs for an ingestion trace), on the
core that sends: one worker is then CPU-bound below 25,000 req/s. The spool builds each
template once, while the worker loads, into frames of `replay.frame` (flat bytes, read back
in C), compressed as LZ4 blocks of about FRAME_BYTES of template bytes, in an anonymous
temporary file, each frame after its two lengths (compressed, raw); a pass reads them back
in order, READ_BYTES of whole frames per read, and holds one read and one frame in memory
(nor is an index of frames kept: memory stays flat however long the shard). LZ4: the read
is on the core that sends, and LZ4 gives a frame back several times faster than zstd
(bench/spool_formats.py). A pass reads each template in place (replay.frame's
`read_in_place`): one small object pointing into its frame, which it keeps. Frames are
large enough that the steps taken once per frame (decompressing, a call into the reader,
this generator) are a small share of a request, and small enough to stay in the core's
cache while their templates are rendered and sent (see replay.ahead; bench/spooled.py).

The file is created unlinked (O_TMPFILE, in $TMPDIR or `directory`), so nothing is left
behind however the worker ends. Each pass reads with `os.pread` at its own offsets, so
passes do not share a file position. A failure to write (a full disk) is an `OSError` for
the caller, which can fall back to building per pass.

    with TemplateSpool() as spool:
        spool.add(entry, template) ...   # in shard order
        spool.finish()
        for entry, template in spool.read(): ...   # as often as needed (templates in place)

A pass may also begin while templates are still being added (`follow()`): it reads the
frames written so far and says when it has caught up, so sending can start before the spool
is complete.
"""

from __future__ import annotations

import itertools
import os
import struct
import tempfile
from collections.abc import Iterator
from typing import Any

import lz4.block

from replay import frame as layout
from replay.pacing import TimelineEntry
from replay.template import Template

FRAME_BYTES = 64 << 10  # template bytes per LZ4 frame (what one step decompresses)
ITEM_BYTES = 96  # what a template's entry, numbers and short strings add to a frame
READ_BYTES = 256 << 10  # whole frames read at once (a larger frame is read alone)
FRAME_HEAD = struct.Struct("<II")  # each frame: its compressed and raw lengths, then LZ4


class TemplateSpool:
    """(TimelineEntry, Template) pairs written once, read back any number of times."""

    def __init__(self, directory: str | None = None) -> None:
        # (closed by close(), not a with block: the spool outlives this call)
        self._file = tempfile.TemporaryFile(dir=directory, prefix="replay-spool-")  # noqa: SIM115
        self._fd = self._file.fileno()
        self._entries: list[TimelineEntry] = []  # the frame being filled
        self._templates: list[Template] = []
        self._frame_bytes = 0
        self._written = 0  # bytes in the file (no index kept: memory stays flat however long)
        self.count = 0  # templates added
        self.last_record = -1  # the corpus index of the last one
        self.has_read = False  # does any template read a trace it does not define?
        self.finished = False
        self._flushed = (0, -1)  # (count, last_record) of the templates in whole frames

    def add(self, entry: TimelineEntry, template: Template) -> None:
        self._entries.append(entry)
        self._templates.append(template)
        self._frame_bytes += len(template.fmt) + ITEM_BYTES
        if template.body is not None:
            self._frame_bytes += len(template.body.fmt)
        self.count += 1
        self.last_record = entry.record
        self.has_read = self.has_read or template.has_read
        if self._frame_bytes >= FRAME_BYTES:
            self._flush()

    def finish(self) -> None:
        """No more templates: write the last frame (reads see only finished frames)."""
        if self._entries:
            self._flush()
        self.finished = True

    def flush(self) -> None:
        """Write the templates added so far as a frame now (a pass that follows the writer
        sees them at once), however short."""
        if self._entries:
            self._flush()

    def seal(self) -> None:
        """Finish with what is already in whole frames, writing nothing more (after a write
        failed): templates added since are forgotten, `count` and `last_record` say so."""
        self._entries.clear()
        self._templates.clear()
        self._frame_bytes = 0
        self.count, self.last_record = self._flushed
        self.finished = True

    @property
    def bytes_on_disk(self) -> int:
        return self._written

    def read(self) -> Iterator[tuple[TimelineEntry, Template]]:
        """One pass over every template, in the order added."""
        if not self.finished:
            raise RuntimeError("TemplateSpool.read before finish")
        return itertools.chain.from_iterable(self._frames(True))  # (never waits: no None)

    def follow(self) -> Iterator[tuple[TimelineEntry, Template] | None]:
        """One pass that may begin before `finish()`: every template once its frame is written,
        and None each time the pass has caught up with the writer (ask again later; the pass
        goes on from where it was). It ends after the last template once finished."""
        for frame in self._frames(True):
            if frame is None:
                yield None
            else:
                yield from frame

    def rounds(self) -> Iterator[Template]:
        """The templates alone (no entries), in the order added, round and round for ever
        (nothing, for an empty spool)."""
        if not self.finished:
            raise RuntimeError("TemplateSpool.rounds before finish")
        if not self.count:
            return iter(())
        return itertools.chain.from_iterable(self._rounds())

    def _rounds(self) -> Iterator[Any]:
        while True:
            yield from self._frames(False)

    def _frames(self, entries: bool) -> Iterator[Any]:
        """One pass, a frame at a time: the list of its items (pairs, or templates alone
        without `entries`), or None when the pass has caught up with the writer. The caller
        flattens the lists (in C: a template costs no step of this generator)."""
        decompress = lz4.block.decompress
        read_in_place = layout.read_in_place
        head, unpack_head = FRAME_HEAD.size, FRAME_HEAD.unpack_from
        offset = 0
        buffer, at = b"", 0  # whole frames read at once, and where the next begins in them
        while True:
            end = self._written  # whole frames only (see _flush)
            if offset >= end:
                if self.finished:
                    return
                yield None
                continue
            if at + head > len(buffer):
                buffer, at = self._pread(max(min(READ_BYTES, end - offset), head), offset), 0
            packed, raw = unpack_head(buffer, at)
            size = head + packed
            if at + size > len(buffer):  # the frame runs past this read: read from its start
                buffer, at = self._pread(max(min(READ_BYTES, end - offset), size), offset), 0
            view = memoryview(buffer)[at + head : at + size]
            try:
                frame = decompress(view, uncompressed_size=raw)
            except lz4.block.LZ4BlockError as exc:
                raise OSError(f"template spool: a damaged frame at byte {offset} ({exc})") from None
            finally:
                view.release()
            yield read_in_place(frame, entries, offset)
            at += size
            offset += size

    def _pread(self, size: int, offset: int) -> bytes:
        data = os.pread(self._fd, size, offset)
        if len(data) != size:
            raise OSError(f"template spool: short read at byte {offset}")
        return data

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> TemplateSpool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _flush(self) -> None:
        frame = layout.pack_frame(self._entries, self._templates)
        compressed = lz4.block.compress(frame, store_size=False)
        self._file.write(FRAME_HEAD.pack(len(compressed), len(frame)) + compressed)
        self._file.flush()  # in the file before a pass that follows the writer may read it
        self._written += FRAME_HEAD.size + len(compressed)
        self._flushed = (self.count, self.last_record)
        self._entries.clear()
        self._templates.clear()
        self._frame_bytes = 0
