"""A request template: one corpus record's bytes as a format string with a hole per splice.

`replay.rewrite.build_template` makes one per record; a worker renders it once per request.
The bytes that stay the same for every copy are one `bytes` format string, `fmt`, in which
each hole is ``%s`` and a literal ``%`` is ``%%``. Rendering is one `fmt % args`, where
`args` holds the request's serial in every hole but those listed in `stamps` (pairs of
hole index and recorded epoch ms: the timestamp moved to the replay clock) and `reads`
(hole indices: the trace a read names). A body that names a trace it does not define is a
second such part, whose length is counted per request.

`stamps` is one `bytes` of (hole, ms) pairs, each number an i64 in the machine's byte order
(`stamps_of`): a template read back from the spool is then one object for them, not a
tuple of a dozen ints. Rendering is compiled where replay/_fill.c was built (`fill`); it
gives exactly the answer of `filled`, the reference here, and hands it anything unusual.

A template is a tuple (a NamedTuple): replay.frame keeps many in a flat frame of bytes for
the spool, and its compiled reader makes one back from those bytes without a step in Python.
A pass over the spool sends from templates read in place instead (replay.frame's
`read_in_place`): one compiled object each, with every attribute and method of this one.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import NamedTuple

try:
    from replay import _fill
except ImportError:  # built without a C compiler: rendered in Python
    _fill = None  # type: ignore[assignment]

SERIAL, STAMP, READ = 0, 1, 2
STAMP_PAIR = struct.Struct("=qq")  # a stamp: its hole, its recorded epoch ms

Piece = bytes | tuple[int, int] | None  # a literal, a (STAMP or READ, argument) hole, a serial


def stamps_of(pairs: Sequence[int]) -> bytes:
    """Stamps (hole, recorded ms, hole, recorded ms, ...) as a template holds them."""
    if len(pairs) % 2:
        raise ValueError(f"stamps come in (hole, ms) pairs, not {len(pairs)} numbers")
    return struct.pack(f"={len(pairs)}q", *pairs)


class Part(NamedTuple):
    """Bytes with holes: `fmt` (holes as %s), how many holes, which hold a stamp or a read."""

    fmt: bytes
    slots: int
    stamps: bytes  # (hole, recorded ms) pairs: see `stamps_of`
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
    return Part(b"".join(out), slots, stamps_of(stamps), tuple(reads)), bool(reads)


def filled(
    fmt: bytes,
    slots: int,
    stamps: bytes,
    reads: Sequence[int],
    serial: bytes,
    delta_ms: int,
    read: bytes,
    iso: Callable[[int], bytes],
) -> bytes:
    """One request's serial, shifted timestamps and read target in `fmt` (the reference)."""
    if not stamps and not reads:
        return fmt % ((serial,) * slots)
    args = [serial] * slots
    for hole, ms in STAMP_PAIR.iter_unpack(stamps):
        args[hole] = iso(ms + delta_ms)
    for k in reads:
        args[k] = read
    return fmt % tuple(args)


_MILLIS = tuple(b"%03dZ" % i for i in range(1000))


class Stamps:
    """ISO-8601 timestamps (ms, Z) from epoch ms. A run's timestamps are moved to the replay
    clock, so they fall in a window a few seconds wide around it: each millisecond's is made
    once and looked up after that, and each second's prefix formatted once. (The compiled
    `fill` writes this form itself when given `Stamps.iso`, for the years 1000 to 9999.)"""

    __slots__ = ("_full", "_prefix")

    def __init__(self) -> None:
        self._prefix: dict[int, bytes] = {}
        self._full: dict[int, bytes] = {}

    def iso(self, epoch_ms: int) -> bytes:
        full = self._full.get(epoch_ms)
        if full is None:
            second, ms = divmod(epoch_ms, 1000)
            prefix = self._prefix.get(second)
            if prefix is None:
                if len(self._prefix) >= 8192:
                    self._prefix.clear()
                moment = datetime.fromtimestamp(second, UTC)
                prefix = moment.strftime("%Y-%m-%dT%H:%M:%S.").encode()
                self._prefix[second] = prefix
            if len(self._full) >= 65536:
                self._full.clear()
            full = self._full[epoch_ms] = prefix + _MILLIS[ms]
        return full


if _fill is not None:
    _fill.configure(filled, Stamps.iso)
    fill = _fill.fill
else:
    fill = filled
COMPILED = _fill is not None
"""Whether replay/_fill.c was built: templates rendered in C."""


class Template(NamedTuple):
    """One record, ready to send many times: see the module docstring. Make one with `of`."""

    endpoint: str
    offset_ns: int
    recorded_ms: int  # wall-clock ms the record was (synthetically) sent
    fmt: bytes
    slots: int
    stamps: bytes
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
            endpoint, offset_ns, recorded_ms, fmt, slots, bytes(stamps), tuple(reads), body,
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
