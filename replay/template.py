"""A request template: one corpus record's bytes as a format string with a hole per splice.

`replay.rewrite.build_template` makes one per record; a worker renders it once per request.
The bytes that stay the same for every copy are one `bytes` format string, `fmt`, in which
each hole is ``%s`` and a literal ``%`` is ``%%``. Rendering is one `fmt % args`, where
`args` holds the request's serial in every hole but those listed in `stamps` (pairs of
hole index and recorded epoch ms: the timestamp moved to the replay clock) and `reads`
(hole indices: the trace a read names). A body that names a trace it does not define is a
second such part, whose length is counted per request.

Frames. Templates (each with its `TimelineEntry`) are kept on disk by replay.spool in frames
of many: `pack_frame` writes one with `marshal`, `unpack_frame` reads it back. A template is
a tuple (a NamedTuple), so reading one back makes it from the tuple `marshal` made in C: no
per-field work in Python, and a template read from the spool costs little more than one
kept in memory. `marshal` is the interpreter's own format for trusted data: a frame is
read only by the process that wrote it, from an unlinked file of its own.
"""

from __future__ import annotations

import marshal
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from replay.pacing import TimelineEntry

SERIAL, STAMP, READ = 0, 1, 2

Piece = bytes | tuple[int, int] | None  # a literal, a (STAMP or READ, argument) hole, a serial


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


class Template(NamedTuple):
    """One record, ready to send many times: see the module docstring. Make one with `of`."""

    endpoint: str
    offset_ns: int
    recorded_ms: int  # wall-clock ms the record was (synthetically) sent
    fmt: bytes
    slots: int
    stamps: Sequence[int]
    reads: Sequence[int]
    body: Part | None  # a body with a READ hole: its length is written per request
    ack_prefix: bytes
    ack_suffix: bytes
    read_fallback: bytes
    has_read: bool
    head: bool  # a HEAD request: its response ends with its head

    @classmethod
    def of(
        cls,
        endpoint: str,
        offset_ns: int,
        recorded_ms: int,
        request: Part,
        body: Part | None,
        ack: tuple[bytes, bytes] | None,
        read_fallback: bytes,
        has_read: bool,
    ) -> Template:
        fmt, slots, stamps, reads = request
        prefix, suffix = ack if ack is not None else (b"", b"")
        return cls(
            endpoint, offset_ns, recorded_ms, fmt, slots, tuple(stamps), tuple(reads), body,
            prefix, suffix, read_fallback, has_read, fmt.startswith(b"HEAD "),
        )  # fmt: skip

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


Item = tuple[TimelineEntry, Template]
Plain = tuple[Any, ...]  # a template as a frame holds it: a plain tuple, its body one too
_BODY = Template._fields.index("body")


def plain(template: Template) -> Plain:
    """`template` as a plain tuple (as `marshal` takes it)."""
    body = template.body
    if body is None:
        return tuple(template)
    return (*template[:_BODY], tuple(body), *template[_BODY + 1 :])


def pack_frame(entries: Sequence[TimelineEntry], templates: Sequence[Plain]) -> bytes:
    """Entries and their templates (`plain`), in order, as one frame. The entries are a
    frame of their own inside it: a pass that needs the templates alone never makes them."""
    has_body = any(t[_BODY] is not None for t in templates)
    inner = marshal.dumps([tuple(e) for e in entries])
    return marshal.dumps((has_body, inner, list(templates)))


def unpack_frame(frame: bytes, where: int = 0) -> list[Item]:
    """Every (TimelineEntry, Template) of a frame, in order; an OSError naming the frame
    (`where`: its byte offset in the spool) for one that is not a frame."""
    try:
        has_body, inner, plains = marshal.loads(frame)
        new = tuple.__new__
        entries = [new(TimelineEntry, e) for e in marshal.loads(inner)]
        templates = _templates(has_body, plains)
    except (ValueError, EOFError, TypeError) as exc:
        raise OSError(f"template spool: a damaged frame at byte {where} ({exc})") from None
    if len(entries) != len(templates):
        raise OSError(f"template spool: a damaged frame at byte {where} (entries and templates)")
    return list(zip(entries, templates, strict=True))


def unpack_templates(frame: bytes, where: int = 0) -> list[Template]:
    """The templates of a frame alone, in order (a pass that needs no entries)."""
    try:
        has_body, _inner, plains = marshal.loads(frame)
        return _templates(has_body, plains)
    except (ValueError, EOFError, TypeError) as exc:
        raise OSError(f"template spool: a damaged frame at byte {where} ({exc})") from None


def _templates(has_body: bool, plains: list[Plain]) -> list[Template]:
    if not has_body:
        new = tuple.__new__
        return [new(Template, t) for t in plains]
    return [_with_body(t) for t in plains]


def _with_body(t: Plain) -> Template:
    body = None if t[_BODY] is None else Part(*t[_BODY])
    return tuple.__new__(Template, (*t[:_BODY], body, *t[_BODY + 1 :]))
