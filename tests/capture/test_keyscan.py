"""capture/keyscan.py, the fast path of span finding, against the reference walk over every
JSON token (capture/spans.py's `json_strings` and `walked_body_spans`): the same spans, the
same kinds, the same trace, on generated trace bodies, ingestion batches and any JSON, with
escapes, nesting, duplicate keys and unusual whitespace."""

from __future__ import annotations

import json
import re
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from capture.keyscan import KeyScanner
from capture.spans import (
    OBSERVATION_REF_KEYS,
    PROJECT_KEYS,
    TIME_KEYS,
    TRACE_REF_KEYS,
    body_spans,
    json_strings,
    walked_body_spans,
)

NAMES = TIME_KEYS | TRACE_REF_KEYS | OBSERVATION_REF_KEYS | PROJECT_KEYS | {"id"}
CONTAINERS = {"observations", "batch", "body"}
SCANNER = KeyScanner(NAMES, paths={"id"}, containers=CONTAINERS)
TILING = KeyScanner(NAMES)  # every path through the tiling: a named key is never given one

_hex = "0123456789abcdef"
ids = st.one_of(
    st.text(_hex, min_size=32, max_size=32),  # mintable
    st.text(_hex, min_size=3, max_size=12),  # too short to mint
    st.builds(
        lambda a, b: f"load-test-trace-{a}{b}",
        st.text(_hex, min_size=4, max_size=4),
        st.text(_hex, min_size=12, max_size=12),
    ),
    st.sampled_from(["", 'a"quoted"-0123456789abcdef', "back\\slash-0123456789abcd"]),
)
stamps = st.one_of(
    st.builds(
        lambda d, ms: f"2026-03-{d:02d}T05:06:07.{ms:03d}Z",
        st.integers(1, 28),
        st.integers(0, 999),
    ),
    st.sampled_from(["2026-03-04T05:06:07.1Z", "yesterday"]),
)
texts = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cs",)) | st.sampled_from('"\\{}[]:,'),
    max_size=24,
)
keys = st.sampled_from(
    [*sorted(NAMES), "observations", "batch", "body", "type", "name", "input", "output", "x"]
) | st.text(max_size=6)
scalars = st.none() | st.booleans() | st.integers() | ids | stamps | texts
any_json = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=5),
    max_leaves=25,
)


def _observation(draw: Any) -> dict[str, Any]:
    obs: dict[str, Any] = {"id": draw(ids), "type": draw(st.sampled_from(["SPAN", "GENERATION"]))}
    for key in draw(st.lists(st.sampled_from(sorted(NAMES - {"id"})), max_size=3)):
        obs[key] = draw(stamps if key in TIME_KEYS else ids)
    obs["input"] = draw(any_json)
    return obs


@st.composite
def trace_bodies(draw: Any) -> Any:
    doc: dict[str, Any] = {"id": draw(ids), "name": draw(texts), "timestamp": draw(stamps)}
    doc["metadata"] = draw(any_json)
    doc["observations"] = [_observation(draw) for _ in range(draw(st.integers(0, 4)))]
    return doc


@st.composite
def batches(draw: Any) -> Any:
    events: list[Any] = []
    for _ in range(draw(st.integers(0, 4))):
        kind = draw(
            st.sampled_from(["trace-create", "span-create", "generation-update", "trace-update", 7])
        )
        event = {"id": draw(ids), "type": kind, "timestamp": draw(stamps)}
        event["body"] = _observation(draw)
        events.append(event)
        if draw(st.integers(0, 9)) == 0:
            events.append(draw(scalars))  # not an object: the array index is not keyscan's
    return {"batch": events, "metadata": draw(any_json)}


documents = st.one_of(trace_bodies(), batches(), any_json)
layouts = st.sampled_from(
    [
        {"separators": (",", ":")},
        {"separators": (", ", ": ")},
        {"separators": (" ,\r\n", " :\t")},
        {"indent": 2},
        {"indent": "\t", "separators": (" , ", " : ")},
    ]
)


def _dump(doc: Any, layout: dict[str, Any], ascii_only: bool, escaped_key: bool) -> bytes:
    body = json.dumps(doc, ensure_ascii=ascii_only, **layout).encode()
    if escaped_key:  # a key spelt with an escape still names the same key
        body = body.replace(b'"id"', b'"i\\u0064"', 1).replace(b'"traceId"', b'"trace\\u0049d"', 1)
    return body


@settings(max_examples=400, deadline=None)
@given(documents, layouts, st.booleans(), st.booleans())
def test_fast_span_finding_gives_exactly_the_walks_spans(
    doc: Any, layout: dict[str, Any], ascii_only: bool, escaped_key: bool
) -> None:
    body = _dump(doc, layout, ascii_only, escaped_key)
    assert body_spans(body) == walked_body_spans(body)


def _shape(keys: tuple[Any, ...]) -> tuple[Any, ...]:
    """What keyscan promises of the keys above a value: the name itself, and for an id
    whether each container above is an array or under one of CONTAINERS."""
    if keys[-1] != "id":
        return (keys[-1],)
    above = ("#" if isinstance(k, int) else (k if k in CONTAINERS else "") for k in keys[:-1])
    return (*above, keys[-1])


@settings(max_examples=300, deadline=None)
@given(documents, layouts, st.booleans())
def test_both_ways_of_keyscan_find_every_plain_value_under_a_name_the_walk_finds(
    doc: Any, layout: dict[str, Any], ascii_only: bool
) -> None:
    body = _dump(doc, layout, ascii_only, escaped_key=False)
    walked = {
        (start, end, _shape(keys))
        for keys, start, end in json_strings(body)
        if keys and keys[-1] in NAMES and b"\\" not in body[start:end]
    }
    escaped_key = re.search(rb'\\.[^"\\]*"\s*:', body)  # json.dumps writes some keys so
    tiled = SCANNER._by_tiling(body)
    if tiled is None:  # only a document that is a scalar, or a key holding an escape
        assert escaped_key or not isinstance(doc, (dict, list))
    else:
        assert {(start, end, _shape(keys)) for keys, start, end in tiled} == walked
    by_brackets = SCANNER._by_brackets(body)
    if by_brackets is None:  # only a key holding an escape, or a string holding a bracket
        assert (
            escaped_key
            or any(set(body[start:end]) & set(b"{}[]") for _keys, start, end in json_strings(body))
            or re.search(rb'"[^"]*[{}\[\]][^"]*"\s*:', body)
        )
    else:
        assert {(start, end, _shape(keys)) for keys, start, end in by_brackets} == walked


def test_keyscan_gives_up_where_it_cannot_step_through() -> None:
    assert SCANNER.scan(b'{"i\\u0064": "0123456789abcdef0123"}') is None  # escaped key
    assert SCANNER.scan('{"id": "x"}'.encode("utf-16-le")) is None  # NUL bytes
    assert SCANNER._by_tiling(b'"id"') is None  # not an object or array
    assert SCANNER._by_tiling(b'{"id": "a"} x') is None  # trailing bytes
    assert SCANNER._by_brackets(b'{"id": "a", "text": "[1]"}') is None  # a bracket in text
    assert SCANNER._by_brackets(b'{"id": "a", "text": "\\"[\\""}') is None


def test_keyscan_steps_over_names_inside_text_and_under_other_keys() -> None:
    body = (
        b'{"note": "\\"id\\": \\"not-a-key\\"", "id" : "trace-0123456789ab",'
        b' "input": {"traceId": "t\\u0031", "timestamp": 5, "id": {"id": "deep"}},'
        b' "observations": [1, {"id": "obs-0123456789ab"}]}'
    )
    for found, unnamed in ((SCANNER._by_tiling(body), "input"), (SCANNER._by_brackets(body), "")):
        assert found is not None
        assert [(keys, body[s:e]) for keys, s, e in found] == [
            (("id",), b"trace-0123456789ab"),
            ((unnamed, "", "id"), b"deep") if unnamed == "" else (("input", "id", "id"), b"deep"),
            (("observations", 0, "id"), b"obs-0123456789ab"),  # the first object in the array
        ]
