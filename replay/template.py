"""A request template: one corpus record's bytes as a format string with a hole per splice.

`replay.rewrite.build_template` makes one per record; a worker renders it once per request.
The bytes that stay the same for every copy are one `bytes` format string, `fmt`, in which
each hole is ``%s`` and a literal ``%`` is ``%%``. Rendering is one `fmt % args`, where
`args` holds the request's serial in every hole but those listed in `stamps` (pairs of
hole index and recorded epoch ms: the timestamp moved to the replay clock) and `reads`
(hole indices: the trace a read names). A body that names a trace it does not define is a
second such part, whose length is counted per request.

A template is a tuple (a NamedTuple): replay.frame keeps many in a flat frame of bytes for
the spool, and its compiled reader makes one back from those bytes without a step in Python.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

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
