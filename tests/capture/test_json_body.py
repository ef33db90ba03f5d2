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
