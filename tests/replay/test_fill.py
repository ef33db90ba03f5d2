"""Rendering in C (replay/_fill.c) against the reference in Python (replay.template.filled):
the same bytes for every template and request, the same error for everything it hands back,
and Stamps.iso's form for every millisecond of the years 1000 to 9999."""

from __future__ import annotations

import struct
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from replay import template
from replay.template import READ, STAMP, Piece, Stamps, filled, part_of

NOT_BUILT = (
    "replay/_fill.c was not built: install a C compiler and the Python headers "
    "(gcc, python3-dev), then `pip install -e .` again"
)
compiled: Any = template._fill
needs_compiled = pytest.mark.skipif(compiled is None, reason=NOT_BUILT)

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
FIRST_MS = int(datetime(1000, 1, 1, tzinfo=UTC).timestamp() * 1000)
LAST_MS = int(datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC).timestamp() * 1000) + 999
MANY_STAMPS = struct.pack("=70q", *[v for k in range(35) for v in (k, 10**12 + k)])  # > 64 holes
pieces_st = st.lists(
    st.one_of(
        st.binary(max_size=40),  # literals, '%' among them
        st.sampled_from([b"%", b"%s", b"%%d", b"100%", b"%%%s"]),
        st.none(),  # the serial
        st.tuples(st.just(STAMP), st.integers(FIRST_MS - 10**12, LAST_MS + 10**12)),
        st.just((READ, 0)),
    ),
    max_size=80,  # past the 64 holes the C keeps on its stack
)


def outcome(fill: Callable[..., bytes], *args: Any) -> tuple[str, Any]:
    """What `fill` gives: its bytes, or the type and message of what it raises."""
    try:
        return "bytes", fill(*args)
    except Exception as exc:  # (the two must raise the same thing)
        return type(exc).__name__, str(exc)


def test_it_is_built() -> None:
    assert template.COMPILED, NOT_BUILT
    assert template.fill is compiled.fill


@needs_compiled
@settings(max_examples=500, deadline=None)
@given(
    pieces=pieces_st,
    serial=st.binary(min_size=9, max_size=9) | st.binary(max_size=3),
    delta=st.integers(-(10**13), 10**13) | st.integers(-(2**70), 2**70),
    read=st.binary(max_size=40),
)
def test_the_compiled_fill_is_the_reference(
    pieces: list[Piece], serial: bytes, delta: int, read: bytes
) -> None:
    part, _reads = part_of(pieces)
    args = (*part, serial, delta, read, Stamps().iso)
    assert outcome(compiled.fill, *args) == outcome(filled, *args)


@needs_compiled
@settings(max_examples=2000, deadline=None)
@given(ms=st.integers(FIRST_MS - 86_400_000, LAST_MS + 86_400_000))
@example(ms=0)
@example(ms=-1)  # 1969-12-31T23:59:59.999Z: the second and the day round down
@example(ms=FIRST_MS)
@example(ms=FIRST_MS - 1)  # year 999: left to Python
@example(ms=LAST_MS)
@example(ms=LAST_MS + 1)  # year 10000: Python raises
@example(ms=951_782_400_000)  # 2000-02-29
@example(ms=-2_203_891_200_000)  # 1900-03-01 (1900 has no 29 February)
@example(ms=4_107_542_400_000)  # 2100-03-01
def test_a_stamp_is_written_as_stamps_iso_writes_it(ms: int) -> None:
    fmt, slots, stamps, reads = part_of([b"<", (STAMP, ms), b">"])[0]
    args = (fmt, slots, stamps, reads, b"serial", 0, b"", Stamps().iso)
    assert outcome(compiled.fill, *args) == outcome(filled, *args)
    if FIRST_MS <= ms <= LAST_MS:  # independently of both: datetime's own ISO form
        moment = EPOCH + timedelta(milliseconds=ms)
        assert compiled.fill(*args) == b"<%sZ>" % moment.isoformat(timespec="milliseconds")[
            :23
        ].encode("ascii")


@needs_compiled
@pytest.mark.parametrize(
    "args",
    [
        (b"a%sb", 1, struct.pack("=qq", 0, 5), (), b"s", 1, b"", lambda ms: b"%d" % ms),
        (b"a%db", 1, b"", (), b"s", 0, b"", Stamps().iso),  # another conversion
        (b"a%sb%s", 1, b"", (), b"s", 0, b"", Stamps().iso),  # a hole too many
        (b"a%sb", 2, b"", (), b"s", 0, b"", Stamps().iso),  # a hole too few
        (b"a%sb%", 1, b"", (), b"s", 0, b"", Stamps().iso),  # a lone % at the end
        (b"a%sb%s", 2, struct.pack("=qq", -1, 5), (), b"s", 0, b"", Stamps().iso),
        (b"a%sb", 1, struct.pack("=qq", 1, 5), (), b"s", 0, b"", Stamps().iso),
        (b"a%sb", 1, b"\0" * 8, (), b"s", 0, b"", Stamps().iso),  # half a pair
        (b"a%sb%s", 2, b"", (-1,), b"s", 0, b"r", Stamps().iso),
        (b"a%sb", 1, b"", (1,), b"s", 0, b"r", Stamps().iso),
        (b"a%sb", 1, b"", (True,), b"s", 0, b"r", Stamps().iso),
        (b"a%sb", 1, b"", [0], b"s", 0, b"r", Stamps().iso),
        (b"a%sb", 1, b"", (), "s", 0, b"", Stamps().iso),  # a str serial
        (b"a%sb", 1, b"", (), bytearray(b"s"), 0, b"", Stamps().iso),
        (b"a%sb", 1, b"", (), b"s", 0, b"", None),
        (b"a%sb", 1, struct.pack("=qq", 0, 2**62), (), b"s", 2**62, b"", Stamps().iso),
        (b"a%sb", 1, struct.pack("=qq", 0, 0), (), b"s", 2**64, b"", Stamps().iso),
        (b"a%sb", 1, b"", (), b"s", 2**64, b"", Stamps().iso),  # no stamp: delta unused
        (b"", 0, b"", (), b"s", 0, b"", Stamps().iso),
        (b"%%" * 100, 0, b"", (), b"s", 0, b"", Stamps().iso),
        (b"x" * 70 + b"%s" * 70, 70, MANY_STAMPS, (69,), b"s", 0, b"r", Stamps().iso),
    ],
)
def test_what_it_does_not_read_it_hands_to_the_reference(args: tuple[Any, ...]) -> None:
    assert outcome(compiled.fill, *args) == outcome(filled, *args)


@needs_compiled
def test_a_template_renders_with_it() -> None:
    """Template.render goes through the compiled fill (the module's `fill` is it)."""
    part, reads = part_of([b"POST /x?t=", (STAMP, 1_700_000_000_123), b"&s=", None])
    made = template.Template.of("ingest", 0, 0, part, None, None, b"", reads)
    got = made.render(b"abc", 1000, b"", Stamps().iso)
    assert got == b"POST /x?t=2023-11-14T22:13:21.123Z&s=abc"
