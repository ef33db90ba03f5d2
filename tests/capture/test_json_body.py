"""capture/json_body.py: what counts as a JSON body, and string lengths of any depth."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from capture.json_body import NOT_JSON, parsed, parsed_or_none, string_lengths

DEEP = b"[" * 100_000 + b"]" * 100_000  # deeper than json.loads follows

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=25,
)


def test_what_is_json_and_what_is_not() -> None:
    assert parsed(b"null") is None and parsed(b' {"a": [1]} ') == {"a": [1]}
    for body in (b"", b"  ", b"{", b"\xff\xfe", b"nul", DEEP):
        assert parsed(body) is NOT_JSON, body[:10]
        assert parsed_or_none(body) is None


@settings(max_examples=200, deadline=None)
@given(json_values)
def test_string_lengths_are_every_string_depth_first(value: Any) -> None:
    def reference(v: Any) -> list[int]:  # the plain recursive walk, left to right
        if isinstance(v, str):
            return [len(v)]
        if isinstance(v, dict):
            return [n for x in v.values() for n in reference(x)]
        if isinstance(v, list):
            return [n for x in v for n in reference(x)]
        return []

    assert string_lengths(value) == reference(json.loads(json.dumps(value)))


def test_string_lengths_of_a_document_as_deep_as_json_loads_reads() -> None:
    depth = 900  # (json.loads follows about a thousand levels; a recursive walk here may not)
    doc = json.loads('{"a":' * depth + '"xyz"' + "}" * depth)
    assert string_lengths([[doc]] * 3) == [3, 3, 3]


def _reference(body: bytes) -> Any:
    """`parsed` as its docstring says: json.loads, NOT_JSON for what it cannot read."""
    if not body.strip():
        return NOT_JSON
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return NOT_JSON


_pieces = st.sampled_from(
    [
        *(b"{", b"}", b"[", b"]", b'"a"', b":", b",", b"1", b" ", b"\n", b"\t", b"\x0c"),
        *(b"\x00", b"\xff", b"\xed\xa0\x80", b"\xef\xbb\xbf", b'"\\u00e9"', b"null", b"x"),
        b"-0.5e3",
    ]
)


@settings(max_examples=600, deadline=None)
@given(
    st.one_of(
        json_values.map(lambda v: json.dumps(v, ensure_ascii=False).encode()),
        json_values.map(lambda v: json.dumps(v).encode("utf-16-le")),
        st.lists(_pieces, max_size=12).map(b"".join),
        st.binary(max_size=12),
    ),
    st.sampled_from([b"", b" ", b"\r\n", b" x", b"\x0c", b"]"]),
)
def test_parsed_is_json_loads_for_any_bytes(body: bytes, tail: bytes) -> None:
    body += tail
    expected = _reference(body)
    got = parsed(body)
    assert got is NOT_JSON if expected is NOT_JSON else got == expected
