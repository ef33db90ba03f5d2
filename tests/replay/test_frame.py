"""Spool frames (replay/frame.py): every field comes back, and the compiled packer and reader
(replay/_frame.c) give exactly the Python layout's answers, damaged frames included."""

from __future__ import annotations

import re
import struct
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from replay import frame
from replay.pacing import TimelineEntry
from replay.rewrite import Stamps
from replay.template import READ, STAMP, Part, Template, part_of

NOT_BUILT = (
    "replay/_frame.c was not built: install a C compiler and the Python headers "
    "(gcc, python3-dev), then `pip install -e .` again"
)
compiled: Any = frame._frame
needs_compiled = pytest.mark.skipif(compiled is None, reason=NOT_BUILT)
ISO = Stamps().iso
I64 = st.integers(-(2**63), 2**63 - 1)
pieces_st = st.lists(
    st.one_of(
        st.binary(max_size=40),
        st.sampled_from([b"%", b"%s", b"100%"]),
        st.none(),  # the serial
        st.tuples(st.just(STAMP), st.integers(0, 4_000_000_000_000)),
        st.just((READ, 0)),
    ),
    max_size=20,
)
# a few endpoints, repeated (the reader keeps the last one), two of the same length, one
# not ASCII
endpoints = st.sampled_from(["ingest", "traces", "trace-get", "", "ingést", "é"]) | st.text(
    max_size=12
)


# trace id prefixes and suffixes repeat from one template to the next (the reader keeps the
# last one): some of the same length, differing in one byte
acks = st.sampled_from([(b"006b86b273ff34fc", b"000"), (b"006b86b273ff34fd", b"001")])


@st.composite
def templates(draw: st.DrawFn) -> Template:
    request, _ = part_of([draw(st.sampled_from([b"GET /", b"HEAD /", b"POST /"])),
                          *draw(pieces_st)])  # fmt: skip
    body = draw(st.none() | pieces_st)
    return Template.of(
        endpoint=draw(endpoints),
        offset_ns=draw(I64),
        recorded_ms=draw(I64),
        request=request,
        body=None if body is None else part_of(body)[0],
        ack=draw(st.none() | acks | st.tuples(st.binary(max_size=20), st.binary(max_size=20))),
        read_fallback=draw(
            st.sampled_from([b"", b"fallback", b"fallbacK"]) | st.binary(max_size=40)
        ),
        has_read=draw(st.booleans()),
    )


pairs_st = st.lists(st.tuples(st.builds(TimelineEntry, I64, I64, I64), templates()), max_size=8)


def test_it_is_built() -> None:
    assert frame.COMPILED, NOT_BUILT


def packed_pairs(pairs: list[tuple[TimelineEntry, Template]]) -> bytes:
    return frame.packed([e for e, _t in pairs], [t for _e, t in pairs])


def plain(value: Any) -> Any:
    """A template or entry as nested plain values, its types named (equality of tuples alone
    would not tell a Part from a tuple)."""
    if isinstance(value, tuple):
        return (type(value).__name__, [plain(v) for v in value])
    return (type(value).__name__, value)


@settings(max_examples=300, deadline=None)
@given(pairs=pairs_st)
def test_a_frame_gives_back_every_field(pairs: list[tuple[TimelineEntry, Template]]) -> None:
    data = frame.pack_frame([e for e, _t in pairs], [t for _e, t in pairs])
    got = frame.unpack_frame(data)
    assert [plain(item) for item in got] == [plain(item) for item in pairs]
    assert [plain(t) for t in frame.unpack_templates(data)] == [plain(t) for _e, t in pairs]
    for (_e, a), (_f, b) in zip(got, pairs, strict=True):
        assert a.render(b"123456789", 3, b"r", ISO) == b.render(b"123456789", 3, b"r", ISO)


@needs_compiled
@settings(max_examples=300, deadline=None)
@given(pairs=pairs_st)
def test_the_compiled_packer_and_reader_are_the_layout(
    pairs: list[tuple[TimelineEntry, Template]],
) -> None:
    data = packed_pairs(pairs)
    assert compiled.pack([e for e, _t in pairs], [t for _e, t in pairs]) == data
    for entries in (True, False):
        want = frame.unpacked(data, entries)
        assert [plain(x) for x in compiled.unpack(data, entries)] == [plain(x) for x in want]


def test_the_layout_is_as_documented() -> None:
    """One template packed by hand from the module's description of the layout."""
    body = Part(b"{%s}", 1, struct.pack("=qq", 0, 5), ())
    template = Template("ingest", 7, 8, b"POST /%s", 1, b"", (0,), body, b"a", b"", b"f", True,
                        False)  # fmt: skip

    def text(data: bytes) -> bytes:
        return struct.pack("=I", len(data)) + data

    want = (
        struct.pack("=I", 1) + struct.pack("=qqq", 1, 2, 3)
        + text(b"ingest") + struct.pack("=qq", 7, 8)
        + text(b"POST /%s") + struct.pack("=III", 1, 0, 1) + struct.pack("=I", 0)
        + b"\x01" + text(b"{%s}") + struct.pack("=III", 1, 1, 0) + struct.pack("=qq", 0, 5)
        + text(b"a") + text(b"") + text(b"f") + b"\x01"
    )  # fmt: skip
    assert frame.packed([TimelineEntry(1, 2, 3)], [template]) == want
    if compiled is not None:  # (without it, frames are marshalled: see the last test)
        assert compiled.pack([TimelineEntry(1, 2, 3)], [template]) == want


def outcome(read: Any, data: bytes, entries: bool) -> Any:
    try:
        return [plain(x) for x in read(data, entries)]
    except ValueError as exc:
        return (type(exc).__name__, str(exc))


@needs_compiled
@settings(max_examples=200, deadline=None)
@given(pairs=pairs_st.filter(bool), data=st.data())
def test_a_damaged_frame_is_the_same_answer_or_error_from_both(
    pairs: list[tuple[TimelineEntry, Template]], data: st.DataObject
) -> None:
    good = bytearray(packed_pairs(pairs))
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(good) - 1))
        good[at] = data.draw(st.integers(0, 255))
    damaged = bytes(good)
    for entries in (True, False):
        assert outcome(compiled.unpack, damaged, entries) == outcome(frame.unpacked, damaged,
                                                                    entries)  # fmt: skip


@needs_compiled
def test_every_cut_of_a_frame_is_an_error_naming_where() -> None:
    pairs = [
        (TimelineEntry(k, k, 1), Template.of("ingést", 5, 7, part_of([b"GET /", None])[0],
         part_of([b"{", (STAMP, 9), b"}"])[0], (b"p", b"s"), b"f", True))
        for k in range(3)
    ]  # fmt: skip
    data = packed_pairs(pairs)
    for cut in range(len(data)):
        python = outcome(frame.unpacked, data[:cut], True)
        assert python[0] in ("ValueError", "UnicodeDecodeError"), cut
        assert outcome(compiled.unpack, data[:cut], True) == python, cut
        with pytest.raises(OSError, match=re.escape(f"damaged frame at byte 4096 ({python[1]})")):
            frame.unpack_templates(data[:cut], 4096)
    after = r"damaged frame at byte 7 \(1 bytes after the last template\)"
    with pytest.raises(OSError, match=after):
        frame.unpack_frame(data + b"\x00", 7)
    assert len(frame.unpack_frame(data)) == 3


@needs_compiled
def test_a_count_its_bytes_cannot_hold_is_refused_before_anything_is_made() -> None:
    data = struct.pack("=I", 2**32 - 1) + b"\x00" * 200
    for read in (compiled.unpack, frame.unpacked):
        with pytest.raises(ValueError, match="4294967295 templates cannot fit in 204 bytes"):
            read(data, True)


@needs_compiled
@pytest.mark.parametrize(
    ("entries", "templates", "message"),
    [
        ([(1, 2)], [None], "not a TimelineEntry"),
        ([TimelineEntry(1, 2, 3)], [("ingest",)], "not a Template"),
        ([TimelineEntry(1, 2, 2**63)], [None], "not a 64-bit integer"),
        ([TimelineEntry(1, 2, 3)], [], "as many entries as templates"),
    ],
)
def test_the_compiled_packer_refuses_what_is_not_a_frame(
    entries: list[Any], templates: list[Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        compiled.pack(entries, templates)


@needs_compiled
def test_a_template_field_of_the_wrong_type_is_refused() -> None:
    good = Template.of("ingest", 1, 2, part_of([b"GET /"])[0], None, None, b"", False)
    wrong = (("fmt", "text"), ("stamps", [1, 2]), ("stamps", b"x" * 8), ("slots", -1),
             ("ack_prefix", 3))  # fmt: skip
    for field, value in wrong:
        with pytest.raises(ValueError):
            compiled.pack([TimelineEntry(1, 2, 3)], [good._replace(**{field: value})])
    assert compiled.pack([TimelineEntry(1, 2, 3)], [good]) == frame.packed(
        [TimelineEntry(1, 2, 3)], [good]
    )


@settings(max_examples=100, deadline=None)
@given(pairs=pairs_st)
def test_without_the_extension_frames_are_marshalled_and_read_back(
    pairs: list[tuple[TimelineEntry, Template]],
) -> None:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(frame, "_frame", None)
        data = frame.pack_frame([e for e, _t in pairs], [t for _e, t in pairs])
        assert data == frame.marshalled([e for e, _t in pairs], [t for _e, t in pairs])
        assert [plain(x) for x in frame.unpack_frame(data)] == [plain(x) for x in pairs]
        got = frame.unpack_templates(data)
        assert [plain(t) for t in got] == [plain(t) for _e, t in pairs]
        with pytest.raises(OSError, match="damaged frame at byte 9"):
            frame.unpack_frame(data[:-1], 9)
