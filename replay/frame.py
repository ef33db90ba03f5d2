"""A spool frame: many (TimelineEntry, Template) pairs as one flat run of bytes.

replay.spool keeps templates on disk in frames and reads every one back once per pass, on
the core that sends; reading a frame must cost little beside rendering its templates. The
layout is flat, every number at a fixed width in the machine's own byte order (a frame is
read only by the process that wrote it), so the compiled reader (replay/_frame.c) makes
each template's objects straight from the bytes: no generic decoder, no intermediate tuple.
This module is the layout's reference (`packed`, `unpacked`): the compiled reader and
packer give exactly its answers, faster. Where the extension was not built, frames are
marshalled tuples instead (`marshal` makes them in C, each template is then one call on its
tuple), which reads back in about twice the compiled reader's time where the layout in
Python would take several times as long.

    frame    = count:u32, count x (entry, template)
    entry    = record:i64, offset_ns:i64, gap_ns:i64
    template = endpoint:str, offset_ns:i64, recorded_ms:i64, request:part,
               has_body:u8, [body:part], ack_prefix:bytes, ack_suffix:bytes,
               read_fallback:bytes, flags:u8 (1 has_read, 2 head)
    part     = fmt:bytes, slots:u32, stamps:u32, reads:u32, stamps x (hole:i64, ms:i64),
               reads x u32
    bytes    = length:u32, that many bytes (str: its UTF-8)

A pass over the spool reads each template in place (`read_in_place`): one small compiled
object, `replay._frame.InPlaceTemplate`, whose spans point into the frame's bytes, which it
keeps. It has a Template's attributes and methods with the same values (its `template()` is
the Template, read from the same bytes), renders from the frame without copying its format
string, and so costs one object per request where a Template read back costs about five
(the tuple, a copy of its format string, its stamps, two numbers).

A frame that is not one (cut short, with bytes left over, a count its bytes cannot hold)
is an `OSError` naming its byte offset in the spool, from any reader.
"""

from __future__ import annotations

import marshal
import struct
from collections.abc import Sequence
from typing import Any

from replay.pacing import TimelineEntry
from replay.template import STAMP_PAIR, Part, Stamps, Template

try:
    from replay import _frame
except ImportError:  # built without a C compiler: marshalled frames
    _frame = None  # type: ignore[assignment]

Item = tuple[TimelineEntry, Template]

U8, U32 = struct.Struct("=B"), struct.Struct("=I")
ENTRY = struct.Struct("=qqq")
NUMBERS = struct.Struct("=qq")  # a template's offset_ns, recorded_ms
COUNTS = struct.Struct("=III")  # a part's slots, stamps, reads
HAS_READ, HEAD = 1, 2
SMALLEST_ITEM = ENTRY.size + 4 + NUMBERS.size + 4 + COUNTS.size + 1 + 3 * 4 + 1

if _frame is not None:
    _frame.configure(Template, Part, TimelineEntry, Stamps.iso)
COMPILED = _frame is not None
"""Whether replay/_frame.c was built: frames packed and read back in C."""


def pack_frame(entries: Sequence[TimelineEntry], templates: Sequence[Template]) -> bytes:
    """Entries and their templates, in order, as one frame."""
    if _frame is not None:
        return _frame.pack(entries, templates)
    return marshalled(entries, templates)


def unpack_frame(frame: bytes, where: int = 0) -> list[Item]:
    """Every (TimelineEntry, Template) of a frame, in order; an OSError naming the frame
    (`where`: its byte offset in the spool) for one that is not a frame."""
    return _unpack(frame, where, True)


def unpack_templates(frame: bytes, where: int = 0) -> list[Template]:
    """The templates of a frame alone, in order (a pass that needs no entries)."""
    return _unpack(frame, where, False)


def read_in_place(frame: bytes, entries: bool, where: int = 0) -> list[Any]:
    """What `unpack_frame` (`entries`) or `unpack_templates` gives, each template read in
    place where the extension was built (see the module docstring): what a pass over the
    spool sends from."""
    return _unpack(frame, where, entries, True)


def _unpack(frame: bytes, where: int, entries: bool, in_place: bool = False) -> list[Any]:
    try:
        if _frame is not None:
            return _frame.unpack(frame, entries, in_place)
        return unmarshalled(frame, entries)
    except (ValueError, EOFError, TypeError) as exc:
        raise OSError(f"template spool: a damaged frame at byte {where} ({exc})") from None


def packed(entries: Sequence[TimelineEntry], templates: Sequence[Template]) -> bytes:
    """The layout in Python: what `pack_frame` gives (the compiled packer's reference)."""
    if len(entries) != len(templates):
        raise ValueError("a frame needs as many entries as templates")
    out = bytearray(U32.pack(len(templates)))
    for entry, t in zip(entries, templates, strict=True):
        out += ENTRY.pack(*entry)
        _bytes(out, t.endpoint.encode())
        out += NUMBERS.pack(t.offset_ns, t.recorded_ms)
        _part(out, t.fmt, t.slots, t.stamps, t.reads)
        out += U8.pack(t.body is not None)
        if t.body is not None:
            _part(out, *t.body)
        for piece in (t.ack_prefix, t.ack_suffix, t.read_fallback):
            _bytes(out, piece)
        out += U8.pack((HAS_READ if t.has_read else 0) | (HEAD if t.head else 0))
    return bytes(out)


def unpacked(frame: bytes, entries: bool) -> list[Any]:
    """The layout in Python: what `unpack_frame` (`entries`) or `unpack_templates` gives,
    or a ValueError saying what is wrong with the frame."""
    reader = _Reader(frame)
    count = reader.take(U32)[0]
    if count > len(frame) // SMALLEST_ITEM:
        raise ValueError(f"{count} templates cannot fit in {len(frame)} bytes")
    out: list[Any] = []
    new = tuple.__new__
    for _ in range(count):
        entry = new(TimelineEntry, reader.take(ENTRY))
        endpoint = reader.bytes().decode()
        offset_ns, recorded_ms = reader.take(NUMBERS)
        request = reader.part()
        body = reader.part() if reader.take(U8)[0] else None
        ack_prefix, ack_suffix, read_fallback = reader.bytes(), reader.bytes(), reader.bytes()
        flags = reader.take(U8)[0]
        template = new(
            Template,
            (endpoint, offset_ns, recorded_ms, *request, body, ack_prefix, ack_suffix,
             read_fallback, bool(flags & HAS_READ), bool(flags & HEAD)),
        )  # fmt: skip
        out.append((entry, template) if entries else template)
    if reader.at != len(frame):
        raise ValueError(f"{len(frame) - reader.at} bytes after the last template")
    return out


_BODY = Template._fields.index("body")


def marshalled(entries: Sequence[TimelineEntry], templates: Sequence[Template]) -> bytes:
    """A frame as marshalled tuples (without the extension): the entries, then the templates,
    each a plain tuple, its body one too (marshal takes no tuple subclass)."""
    if len(entries) != len(templates):
        raise ValueError("a frame needs as many entries as templates")
    plains = [
        tuple(t) if t.body is None else (*t[:_BODY], tuple(t.body), *t[_BODY + 1 :])
        for t in templates
    ]
    return marshal.dumps(([tuple(e) for e in entries], plains))


def unmarshalled(frame: bytes, entries: bool) -> list[Any]:
    """What `marshalled` wrote: (TimelineEntry, Template) pairs, or the Templates alone."""
    got, plains = marshal.loads(frame)
    if len(got) != len(plains):
        raise ValueError("as many entries as templates")
    new = tuple.__new__
    templates = [
        new(Template, t if t[_BODY] is None else (*t[:_BODY], Part(*t[_BODY]), *t[_BODY + 1 :]))
        for t in plains
    ]
    if not entries:
        return templates
    return [(new(TimelineEntry, e), t) for e, t in zip(got, templates, strict=True)]


def _bytes(out: bytearray, data: bytes) -> None:
    out += U32.pack(len(data))
    out += data


def _part(out: bytearray, fmt: bytes, slots: int, stamps: bytes, reads: Sequence[int]) -> None:
    if len(stamps) % STAMP_PAIR.size:
        raise ValueError("stamps are not (hole, ms) pairs")
    _bytes(out, fmt)
    out += COUNTS.pack(slots, len(stamps) // STAMP_PAIR.size, len(reads))
    out += stamps
    out += struct.pack(f"={len(reads)}I", *reads)


class _Reader:
    """A frame read from the front, each step checked against its end."""

    def __init__(self, frame: bytes) -> None:
        self.frame = frame
        self.at = 0

    def take(self, shape: struct.Struct) -> tuple[int, ...]:
        self._need(shape.size)
        value = shape.unpack_from(self.frame, self.at)
        self.at += shape.size
        return value

    def bytes(self) -> bytes:
        length = self.take(U32)[0]
        self._need(length)
        self.at += length
        return self.frame[self.at - length : self.at]

    def part(self) -> Part:
        fmt = self.bytes()
        slots, stamps, reads = self.take(COUNTS)
        self._need(stamps * STAMP_PAIR.size + reads * U32.size)
        pairs = self.frame[self.at : self.at + stamps * STAMP_PAIR.size]
        self.at += len(pairs)
        holes = self.take(struct.Struct(f"={reads}I"))
        return tuple.__new__(Part, (fmt, slots, pairs, holes))

    def _need(self, size: int) -> None:
        if self.at + size > len(self.frame):
            raise ValueError(
                f"cut short: {size} bytes wanted at byte {self.at} of {len(self.frame)}"
            )
