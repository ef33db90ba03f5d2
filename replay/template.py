"""A request template: one corpus record's bytes as a format string with a hole per splice.

`replay.rewrite.build_template` makes one per record; a worker renders it once per request.
The bytes that stay the same for every copy are one `bytes` format string, `fmt`, in which
each hole is ``%s`` and a literal ``%`` is ``%%``. Rendering is one `fmt % args`, where
`args` holds the request's serial in every hole but those listed in `stamps` (pairs of
hole index and recorded epoch ms: the timestamp moved to the replay clock) and `reads`
(hole indices: the trace a read names). A body that names a trace it does not define is a
second such part, whose length is counted per request.

Flat layout. A template (with its `TimelineEntry`) is also one run of bytes, `pack` and
`unpack`, for replay.spool: a fixed header (ITEM), then the int arrays, then the byte
strings, each as long as the header says. Reading one back is a header unpack, a few slices
and two array casts: no per-piece objects are made, so a template read back from the spool
costs about what one kept in memory does.

    ITEM header (native byte order, no padding: the spool is read by the process that wrote it)
        size          u32  bytes of the whole item, header included
        record        i64  TimelineEntry: the record's index in the corpus,
        entry_offset  i64    its offset (ns),
        gap           i64    and the gap to the next record of the shard (ns)
        offset        i64  Template.offset_ns
        recorded_ms   i64  Template.recorded_ms
        flags         u32  HAS_READ | HEAD | HAS_BODY
        then the lengths, u32 each, of what follows the header, in this order:
        stamps, reads                 request part: int64 counts (a stamp is two int64)
        body_stamps, body_reads       body part: int64 counts
        endpoint, ack_prefix, ack_suffix, read_fallback, fmt, body_fmt    bytes
        slots, body_slots             holes in fmt and in body_fmt (no bytes of their own)
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NamedTuple

from replay.pacing import TimelineEntry

SERIAL, STAMP, READ = 0, 1, 2

Piece = bytes | tuple[int, int] | None  # a literal, a (STAMP or READ, argument) hole, a serial

ITEM = struct.Struct("=IqqqqqI" + "I" * 12)
HAS_READ, HEAD, HAS_BODY = 1, 2, 4
_INT = 8  # bytes per int64 of the arrays


class Part(NamedTuple):
    """Bytes with holes: `fmt` (holes as %s), how many holes, which hold a stamp or a read."""

    fmt: bytes
    slots: int
    stamps: Sequence[int]  # hole, recorded ms, hole, recorded ms, ...
    reads: Sequence[int]  # holes


def part_of(pieces: list[Piece]) -> tuple[Part, bool]:
    """The `Part` of bytes written as `pieces` (literals, None for the serial, (kind,
    argument) for a STAMP or READ hole), and whether a READ hole is among them."""
    out: list[bytes] = []
    stamps: list[int] = []
    reads: list[int] = []
    slots = 0
    for piece in pieces:
        if piece.__class__ is bytes:
            out.append(piece.replace(b"%", b"%%"))
            continue
        out.append(b"%s")
        if piece is not None:
            kind, arg = piece
            if kind == READ:
                reads.append(slots)
            else:
                stamps += (slots, arg)
        slots += 1
    return Part(b"".join(out), slots, tuple(stamps), tuple(reads)), bool(reads)


def fill(
    fmt: bytes,
    slots: int,
    stamps: Sequence[int],
    reads: Sequence[int],
    serial: bytes,
    delta_ms: int,
    read: bytes,
    iso: Callable[[int], bytes],
) -> bytes:
    """The hot path: one request's serial, shifted timestamps and read target in `fmt`."""
    if not stamps and not reads:
        return fmt % ((serial,) * slots)
    args = [serial] * slots
    for k in range(0, len(stamps), 2):
        args[stamps[k]] = iso(stamps[k + 1] + delta_ms)
    for k in reads:
        args[k] = read
    return fmt % tuple(args)


class Template:
    """One record, ready to send many times: see the module docstring."""

    __slots__ = (
        "ack_prefix",
        "ack_suffix",
        "body",
        "endpoint",
        "fmt",
        "has_read",
        "head",
        "offset_ns",
        "read_fallback",
        "reads",
        "recorded_ms",
        "slots",
        "stamps",
    )

    def __init__(
        self,
        endpoint: str,
        offset_ns: int,
        recorded_ms: int,
        request: Part,
        body: Part | None,
        ack: tuple[bytes, bytes] | None,
        read_fallback: bytes,
        has_read: bool,
    ) -> None:
        self.endpoint = endpoint
        self.offset_ns = offset_ns
        self.recorded_ms = recorded_ms  # wall-clock ms the record was (synthetically) sent
        self.fmt, self.slots, self.stamps, self.reads = request
        self.body = body  # a body with a READ hole: its length is written per request
        self.ack_prefix, self.ack_suffix = ack if ack is not None else (b"", b"")
        self.has_read = has_read
        self.read_fallback = read_fallback
        self.head = self.fmt.startswith(b"HEAD ")  # its response ends with its head

    @property
    def defines_trace(self) -> bool:
        return bool(self.ack_prefix)

    def trace_id(self, serial: bytes) -> bytes:
        """The minted id of the trace this request ingests (for reads to name later)."""
        return self.ack_prefix + serial + self.ack_suffix

    def render(
        self, serial: bytes, delta_ms: int, read: bytes, iso: Callable[[int], bytes]
    ) -> bytes:
        head = fill(self.fmt, self.slots, self.stamps, self.reads, serial, delta_ms, read, iso)
        body = self.body
        if body is None:
            return head
        text = fill(*body, serial, delta_ms, read, iso)
        return b"%s%d\r\n\r\n%s" % (head, len(text), text)


def pack(entry: TimelineEntry, template: Template) -> bytes:
    """`entry` and `template` as one flat item (see the module docstring)."""
    body = template.body or Part(b"", 0, (), ())
    endpoint = template.endpoint.encode("utf-8")
    ints = struct.pack(
        f"={len(template.stamps) + len(template.reads) + len(body.stamps) + len(body.reads)}q",
        *template.stamps, *template.reads, *body.stamps, *body.reads,
    )  # fmt: skip
    strings = (
        endpoint,
        template.ack_prefix,
        template.ack_suffix,
        template.read_fallback,
        template.fmt,
        body.fmt,
    )
    flags = (
        HAS_READ * template.has_read + HEAD * template.head + HAS_BODY * (template.body is not None)
    )
    size = ITEM.size + len(ints) + sum(map(len, strings))
    head = ITEM.pack(
        size, entry.record, entry.offset_ns, entry.gap_ns, template.offset_ns,
        template.recorded_ms, flags, len(template.stamps), len(template.reads),
        len(body.stamps), len(body.reads), *map(len, strings), template.slots, body.slots,
    )  # fmt: skip
    return b"".join((head, ints, *strings))


def items(frame: bytes, where: int = 0) -> Iterator[tuple[TimelineEntry, Template]]:
    """Every (TimelineEntry, Template) packed in `frame`, in order; an OSError naming the
    frame (`where`: its byte offset in the spool) for an item that does not fit in it."""
    return _unpacked(frame, where, True)


def templates(frame: bytes, where: int = 0) -> Iterator[Template]:
    """`items` without their entries (a pass that needs only the templates)."""
    return _unpacked(frame, where, False)


def _unpacked(frame: bytes, where: int, entries: bool) -> Any:
    view = memoryview(frame)
    unpack, head = ITEM.unpack_from, ITEM.size
    new, entry = Template.__new__, tuple.__new__
    at, end = 0, len(frame)
    try:
        while at < end:
            (
                size, record, entry_offset, gap, offset, recorded_ms, flags, n_stamps,
                n_reads, n_body_stamps, n_body_reads, n_endpoint, n_ack_prefix, n_ack_suffix,
                n_fallback, n_fmt, n_body_fmt, slots, body_slots,
            ) = unpack(frame, at)  # fmt: skip
            if size < head or at + size > end:
                raise OSError(f"template spool: a damaged item in the frame at byte {where}")
            p = at + head
            template = new(Template)
            if n_stamps:
                q = p + n_stamps * _INT
                template.stamps = view[p:q].cast("q").tolist()
                p = q
            else:
                template.stamps = ()
            if n_reads:
                q = p + n_reads * _INT
                template.reads = view[p:q].cast("q").tolist()
                p = q
            else:
                template.reads = ()
            if flags & HAS_BODY:
                q = p + n_body_stamps * _INT
                body_stamps = view[p:q].cast("q").tolist()
                p, q = q, q + n_body_reads * _INT
                body_reads = view[p:q].cast("q").tolist()
                p = q
            q = p + n_endpoint
            template.endpoint = str(frame[p:q], "utf-8")
            p, q = q, q + n_ack_prefix
            template.ack_prefix = frame[p:q]
            p, q = q, q + n_ack_suffix
            template.ack_suffix = frame[p:q]
            p, q = q, q + n_fallback
            template.read_fallback = frame[p:q]
            p, q = q, q + n_fmt
            template.fmt = frame[p:q]
            if flags & HAS_BODY:
                template.body = Part(frame[q : q + n_body_fmt], body_slots, body_stamps, body_reads)
            else:
                template.body = None
            template.slots = slots
            template.offset_ns = offset
            template.recorded_ms = recorded_ms
            template.has_read = flags & HAS_READ == HAS_READ
            template.head = flags & HEAD == HEAD
            at += size
            if entries:
                yield entry(TimelineEntry, (record, entry_offset, gap)), template
            else:
                yield template
    finally:
        view.release()
