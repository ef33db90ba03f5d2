"""Templates read in place from a spool frame (replay/_in_place.c): each one is the Template
the frame holds, attribute for attribute, and renders exactly its bytes, unusual templates
and arguments included."""

from __future__ import annotations

import gc
import struct
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from replay import frame
from replay.pacing import TimelineEntry
from replay.template import STAMP, Part, Stamps, Template, part_of
from tests.replay.test_frame import compiled, packed_pairs, pairs_st, templates

pytestmark = pytest.mark.skipif(compiled is None, reason="replay/_frame.c was not built")

FIELDS = (*Template._fields, "defines_trace")
serials = st.binary(max_size=12)
deltas = st.integers(-(2**40), 2**40) | st.integers(-(2**70), 2**70)
reads = st.binary(max_size=30)


def outcome(call: Any, *args: Any, **kwargs: Any) -> tuple[str, Any]:
    try:
        return ("ok", call(*args, **kwargs))
    except Exception as exc:  # the same error, or the same answer
        return (type(exc).__name__, str(exc))


def in_place(templates: list[Template]) -> list[Any]:
    entries = [TimelineEntry(k, k, 1) for k in range(len(templates))]
    return frame.read_in_place(frame.pack_frame(entries, templates), False)


@settings(max_examples=300, deadline=None)
@given(pairs=pairs_st, serial=serials, delta=deltas, read=reads)
def test_each_is_the_template_it_was_and_renders_its_bytes(
    pairs: list[tuple[TimelineEntry, Template]], serial: bytes, delta: int, read: bytes
) -> None:
    data = packed_pairs(pairs)
    got = frame.read_in_place(data, True)
    assert [e for e, _t in got] == [e for e, _t in pairs]
    iso = Stamps().iso
    for (_e, made), (_e2, read_back) in zip(pairs, got, strict=True):
        assert type(read_back) is compiled.InPlaceTemplate
        assert type(read_back.template()) is Template
        assert read_back.template() == made
        assert type(read_back.template().body) is type(made.body)  # a Part, or None
        for name in FIELDS:
            assert getattr(read_back, name) == getattr(made, name), name
        assert read_back.trace_id(serial) == made.trace_id(serial)
        assert outcome(read_back.render, serial, delta, read, iso) == outcome(
            made.render, serial, delta, read, iso
        )


@settings(max_examples=100, deadline=None)
@given(made=templates())
def test_it_iterates_compares_and_hashes_as_its_template(made: Template) -> None:
    [read_back] = in_place([made])
    [again] = in_place([made])
    assert tuple(read_back) == tuple(made)
    assert read_back == made and made == read_back and read_back == again
    assert (read_back != made) is False
    assert hash(read_back) == hash(made)
    assert read_back != made._replace(endpoint=made.endpoint + "x")


ODD = Part(b"a%db", 1, b"", ())  # another conversion: the reference raises


@pytest.mark.parametrize(
    "part",
    [
        ODD,
        Part(b"a%sb%s", 1, b"", ()),  # a hole too many
        Part(b"a%sb", 2, b"", ()),  # a hole too few
        Part(b"a%sb%", 1, b"", ()),  # a lone % at the end
        Part(b"a%sb%s", 2, struct.pack("=qq", -1, 5), ()),  # a stamp's hole out of range
        Part(b"a%sb", 1, struct.pack("=qq", 1, 5), ()),
        Part(b"a%sb", 1, struct.pack("=qq", 0, 10**17), ()),  # a year past 9999
        Part(b"a%sb", 1, b"", (1,)),  # a read's hole out of range
        Part(b"x" * 70 + b"%s" * 70, 70, struct.pack("=70q", *range(70)) * 2, (69,)),
        Part(b"%%" * 100, 0, b"", ()),
    ],
)
@pytest.mark.parametrize("in_body", [False, True])
def test_what_it_does_not_render_itself_is_the_templates_answer(part: Part, in_body: bool) -> None:
    plain, _ = part_of([b"POST /x?s=", None])
    request, body = (plain, part) if in_body else (part, None)
    made = Template.of("ingest", 0, 1_700_000_000_000, request, body, (b"p", b"s"), b"f", True)
    [read_back] = in_place([made])
    for args in [
        (b"abc", 5, b"r", Stamps().iso),
        (b"abc", 5, b"r", lambda ms: b"%d" % ms),  # another iso
        (b"abc", 2**64, b"r", Stamps().iso),  # a delta past 64 bits
    ]:
        assert outcome(read_back.render, *args) == outcome(made.render, *args)


def test_arguments_it_does_not_read_are_the_templates_answer() -> None:
    request, reads = part_of([b"POST /x?t=", (STAMP, 1_700_000_000_123), b"&s=", None])
    made = Template.of("ingest", 0, 0, request, None, None, b"", reads)
    [read_back] = in_place([made])
    iso = Stamps().iso
    for args, kwargs in [
        ((b"abc", 1000, b"", iso), {}),
        ((), {"serial": b"abc", "delta_ms": 1000, "read": b"", "iso": iso}),
        (("abc", 1000, b"", iso), {}),  # a str serial: the Template's TypeError
        ((bytearray(b"abc"), 1000, b"", iso), {}),
        ((b"abc", 1000.0, b"", iso), {}),
        ((b"abc", 1000, b""), {}),  # one argument short
    ]:
        assert outcome(read_back.render, *args, **kwargs) == outcome(made.render, *args, **kwargs)
    assert read_back.render(b"abc", 1000, b"", iso) == b"POST /x?t=2023-11-14T22:13:21.123Z&s=abc"
    assert outcome(read_back.trace_id, "abc") == outcome(made.trace_id, "abc")


def test_a_body_is_rendered_after_its_length() -> None:
    request, _ = part_of([b"POST /x HTTP/1.1\r\nContent-Length: "])
    body, _ = part_of([b'{"id":"', None, b'","at":"', (STAMP, 0), b'"}'])
    made = Template.of("ingest", 0, 0, request, body, None, b"", False)
    [read_back] = in_place([made])
    text = b'{"id":"abc","at":"1970-01-01T00:00:01.000Z"}'
    expected = b"POST /x HTTP/1.1\r\nContent-Length: 44\r\n\r\n" + text
    assert len(text) == 44
    assert read_back.render(b"abc", 1000, b"", Stamps().iso) == expected


def test_it_keeps_its_frame_alive() -> None:
    request, _ = part_of([b"GET /t/", None, b" HTTP/1.1\r\n\r\n"])
    made = Template.of("trace-get", 3, 4, request, None, (b"p", b"s"), b"f", False)
    entries = [TimelineEntry(0, 0, 1)]
    read_back = frame.read_in_place(bytes(frame.pack_frame(entries, [made])), False)
    [one] = read_back
    del read_back
    gc.collect()
    assert one.render(b"77", 0, b"", Stamps().iso) == b"GET /t/77 HTTP/1.1\r\n\r\n"
    assert (one.endpoint, one.offset_ns, one.recorded_ms, one.trace_id(b"9")) == (
        "trace-get", 3, 4, b"p9s"
    )  # fmt: skip


def test_a_damaged_frame_read_in_place_names_where() -> None:
    request, _ = part_of([b"GET /", None])
    data = frame.pack_frame([TimelineEntry(0, 0, 1)], [Template.of("e", 0, 0, request, None,
                                                                   None, b"", False)])  # fmt: skip
    for cut in range(len(data)):
        with pytest.raises(OSError, match="damaged frame at byte 512"):
            frame.read_in_place(data[:cut], False, 512)


@settings(max_examples=200, deadline=None)
@given(pairs=pairs_st.filter(bool), data=st.data())
def test_a_damaged_frame_is_refused_in_place_as_it_is_read_back(
    pairs: list[tuple[TimelineEntry, Template]], data: st.DataObject
) -> None:
    damaged = bytearray(packed_pairs(pairs))
    for _ in range(data.draw(st.integers(1, 4))):
        damaged[data.draw(st.integers(0, len(damaged) - 1))] = data.draw(st.integers(0, 255))
    for entries in (True, False):
        as_templates = outcome(compiled.unpack, bytes(damaged), entries)
        in_place = outcome(compiled.unpack, bytes(damaged), entries, True)
        if as_templates[0] != "ok":
            assert in_place == as_templates
            continue
        assert in_place[0] == "ok"
        got = [
            (e, t.template()) if entries else t.template()
            for e, t in (item if entries else (None, item) for item in in_place[1])
        ]
        assert got == as_templates[1]
