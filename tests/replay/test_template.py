"""Templates as format strings (replay/template.py), against a plain concatenation of the
pieces they were made from."""

from __future__ import annotations

import struct
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from replay.rewrite import Stamps
from replay.template import READ, STAMP, Part, Piece, Template, part_of

ISO = Stamps().iso
MS = st.integers(0, 4_000_000_000_000)  # epoch ms up to the year 2096

pieces_st = st.lists(
    st.one_of(
        st.binary(max_size=40),  # literals, '%' among them
        st.sampled_from([b"%", b"%s", b"%%d", b"100%"]),
        st.none(),  # the serial
        st.tuples(st.just(STAMP), MS),
        st.just((READ, 0)),
    ),
    max_size=30,
)


def spliced(pieces: list[Piece], serial: bytes, delta_ms: int, read: bytes) -> bytes:
    """What the pieces say the request is: each hole filled in place, by concatenation."""
    out = b""
    for piece in pieces:
        if piece is None:
            out += serial
        elif isinstance(piece, bytes):
            out += piece
        elif piece[0] == STAMP:
            out += ISO(piece[1] + delta_ms)
        else:
            out += read
    return out


def template(request: list[Piece], body: list[Piece] | None, **kw: Any) -> Template:
    part, reads = part_of(request)
    body_part = part_of(body)[0] if body is not None else None
    options: dict[str, Any] = {
        "endpoint": "ingest", "offset_ns": 5, "recorded_ms": 7, "ack": None,
        "read_fallback": b"", "has_read": reads or body is not None, **kw,
    }  # fmt: skip
    return Template.of(request=part, body=body_part, **options)


@settings(max_examples=300, deadline=None)
@given(
    request=pieces_st,
    body=st.none() | pieces_st,
    serial=st.binary(min_size=9, max_size=9),
    delta=st.integers(-(10**9), 10**9),
    read=st.binary(max_size=40),
)
def test_a_rendered_template_is_its_pieces_spliced(
    request: list[Piece], body: list[Piece] | None, serial: bytes, delta: int, read: bytes
) -> None:
    got = template([b"POST /x ", *request], body).render(serial, delta, read, ISO)
    head = spliced([b"POST /x ", *request], serial, delta, read)
    if body is None:
        assert got == head
    else:
        text = spliced(body, serial, delta, read)
        assert got == head + str(len(text)).encode() + b"\r\n\r\n" + text


def test_part_of_counts_holes_and_says_where_the_reads_are() -> None:
    part, reads = part_of([b"a%", None, b"b", (STAMP, 99), None, (READ, 0), b"c"])
    assert part == Part(b"a%%%sb%s%s%sc", 4, struct.pack("=2q", 1, 99), (3,))
    assert reads
    assert part_of([b"x", None])[1] is False
