"""capture/spanscan.py, span finding's first way, against the reference walk over every JSON
token (capture/spans.py's `walked_body_spans`): where it answers, exactly the walk's spans
and trace, on trace bodies, ingestion batches and any JSON, with ids that collide, overlap
and cannot be minted, escapes, brackets in strings, unicode and unusual whitespace; and it
answers for the bodies a recorder sees most, so that they never take a slower way."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from capture.corpus import IdKind
from capture.spans import (
    _MINTABLE,
    _SPAN_SCANNER,
    _event_kinds,
    body_spans,
    mintable,
    walked_body_spans,
)
from capture.synth import SynthSpec, synthesize

T, TR = int(IdKind.TRACE), int(IdKind.TRACE_REF)
OB, OR = int(IdKind.OBSERVATION), int(IdKind.OBSERVATION_REF)
TS, PR = int(IdKind.TIMESTAMP), int(IdKind.PROJECT)

_BASE = "0123456789abcdef0123456789abcdef"
ids = st.one_of(
    st.sampled_from(  # a few that collide, hold one another, or cannot be minted
        [
            _BASE,
            _BASE[:20],  # a prefix of the first: its occurrences overlap
            "x" + _BASE[:20],  # holds the prefix one byte in
            f"load-test-trace-{_BASE}",  # a name holding the first
            "6c3c764e-c8e1-4af2-a22b-b22ccd14228d",
            "short-id",
            "",
            "----------------abcdefghijkl",  # no letters or digits before its tag
            "é0123456789abcdef0123",  # not ASCII
            'a"quote-0123456789abcdef',
            "back\\slash-0123456789ab",
        ]
    ),
    st.text("0123456789abcdefXYZ-_.:", min_size=10, max_size=40),
)
stamps = st.one_of(
    st.builds(
        lambda d, ms: f"2026-03-{d:02d}T05:06:07.{ms:03d}Z", st.integers(1, 28), st.integers(0, 999)
    ),
    st.sampled_from(["2026-03-04T05:06:07.1Z", "2026-03-04T05:06:07.123Z ", "now"]),
)
texts = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cs",)) | st.sampled_from('"\\{}[]:,'),
    max_size=20,
)
NAMED = [
    "id",
    "trace_id",
    "traceId",
    "parent_observation_id",
    "parentObservationId",
    "projectId",
    "project_id",
    "timestamp",
    "startTime",
    "end_time",
    "completion_start_time",
]
keys = st.sampled_from([*NAMED, "observations", "batch", "body", "name", "input", "x"]) | st.text(
    max_size=5
)
scalars = st.none() | st.booleans() | st.integers() | ids | stamps | texts
any_json = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=5),
    max_leaves=20,
)


@st.composite
def observations(draw: Any) -> dict[str, Any]:
    obs: dict[str, Any] = {"id": draw(ids), "type": "GENERATION"}
    for key in draw(st.lists(st.sampled_from(NAMED[1:]), max_size=4)):
        obs[key] = draw(stamps if "time" in key.lower() else ids)
    if draw(st.booleans()):
        obs["input"] = draw(any_json)
    return obs


@st.composite
def trace_bodies(draw: Any) -> Any:
    doc: dict[str, Any] = {"id": draw(ids), "name": draw(ids | texts), "timestamp": draw(stamps)}
    if draw(st.booleans()):
        doc["metadata"] = draw(any_json)
    doc["observations"] = draw(st.lists(observations(), max_size=4))
    return doc


@st.composite
def batches(draw: Any) -> Any:
    kinds = st.sampled_from(
        ["trace-create", "trace-update", "span-create", "generation-update", "event-create", 5]
    )
    events = [
        {
            "id": draw(ids),
            "type": draw(kinds),
            "timestamp": draw(stamps),
            "body": draw(observations()),
        }
        for _ in range(draw(st.integers(0, 4)))
    ]
    return {"batch": events, "metadata": draw(any_json)}


layouts = st.sampled_from(
    [
        {"separators": (",", ":")},
        {"separators": (", ", ": ")},
        {"separators": (" ,\r\n", " :\t")},
        {"indent": 2},
    ]
)


def _dump(doc: Any, layout: dict[str, Any], ascii_only: bool) -> bytes:
    return json.dumps(doc, ensure_ascii=ascii_only, **layout).encode()


def _scanned(body: bytes) -> Any:
    doc = json.loads(body)
    batch = _event_kinds(doc) if isinstance(doc, dict) and "batch" in doc else None
    return _SPAN_SCANNER.spans(body, batch)


@settings(max_examples=500, deadline=None)
@given(st.one_of(trace_bodies(), batches(), any_json), layouts, st.booleans())
@example({"id": _BASE, "name": "x" + _BASE[:20], "traceId": _BASE[:20]}, {}, True)
@example({"id": _BASE, "observations": [{"id": _BASE[:20], "x": "y" + _BASE}]}, {}, True)
@example({"batch": [{"id": "e", "type": "trace-update", "body": {"id": "t"}}]}, {}, True)
@example({"id": _BASE, "query": 'a(projectId: "' + _BASE + '")'}, {}, True)
def test_where_it_answers_it_gives_exactly_the_walks_spans(
    doc: Any, layout: dict[str, Any], ascii_only: bool
) -> None:
    body = _dump(doc, layout, ascii_only)
    walked = walked_body_spans(body)
    assert body_spans(body) == walked
    events = doc.get("batch") if isinstance(doc, dict) else None
    if isinstance(events, list) and not all(isinstance(e, dict) for e in events):
        return  # span finding asks this way only for a batch of objects
    scanned = _scanned(body)
    if scanned is not None:
        assert scanned == walked
    elif isinstance(doc, dict):  # only a string holding a bracket, or a key an escape
        strings = re.findall(rb'"(?:[^"\\]|\\.)*"', body)
        assert any(set(s) & set(b"{}[]") for s in strings) or any(b"\\" in s for s in strings)


def test_it_answers_for_synthetic_traffic_and_matches_synth() -> None:
    records = list(synthesize(SynthSpec("mixed", 60, 5_000_000_000, 3)))
    answered = 0
    for record in records:
        if not record.body.strip() or not record.body.startswith(b"{"):
            continue
        scanned = _scanned(record.body)
        if scanned is None:
            continue
        answered += 1
        assert scanned[0] == tuple(sorted(record.body_ids))
        assert scanned[0] == walked_body_spans(record.body)[0]
    assert answered >= len(records) // 2


def test_a_trace_body_by_hand() -> None:
    trace, obs = _BASE, "6c3c764e-c8e1-4af2-a22b-b22ccd14228d"
    body = json.dumps(
        {
            "id": trace,
            "name": f"load-test-trace-{trace}",
            "timestamp": "2026-01-01T00:00:01.764Z",
            "metadata": {"id": "0123456789abcdef-nested", "note": "plain"},
            "observations": [
                {"id": obs, "trace_id": trace, "start_time": "2026-01-01T00:00:02.000Z"},
                {"id": "short", "parent_observation_id": "short", "end_time": "later"},
            ],
        },
        separators=(", ", ": "),
    ).encode()
    spans, named = _scanned(body)
    marked = [(body[s : s + n].decode(), k) for s, n, k in spans]
    assert marked == [
        (trace, T),
        (trace, TR),  # inside the name
        ("2026-01-01T00:00:01.764Z", TS),
        (obs, OB),
        (trace, TR),
        ("2026-01-01T00:00:02.000Z", TS),
    ]  # the nested id, the short ids and the time that is not ISO stay unmarked
    assert named == trace


def test_a_batch_by_hand_with_an_update_of_a_trace_it_cannot_mint() -> None:
    event, span = "evt-0-0123456789abcdef", "0b9e5c1a-6f2d-4e8a-9c3b-7a1d2e3f4a5b"
    body = json.dumps(
        {
            "batch": [
                {"id": event, "type": "trace-update", "body": {"id": "t-1"}},
                {"id": "e", "type": "span-create", "body": {"id": span, "traceId": _BASE}},
            ]
        }
    ).encode()
    spans, named = _scanned(body)
    marked = [(body[s : s + n].decode(), k) for s, n, k in spans]
    assert marked == [(event, OB), (span, OB), (_BASE, TR)]
    assert named == "t-1"  # the first trace reference, minted or not


@pytest.mark.parametrize(
    "body",
    [
        b'{"i\\u0064": "0123456789abcdef0123"}',  # a key spelt with an escape
        b'{"id": "0123456789abcdef0123", "text": "[1]"}',  # a string holding a bracket
        '{"id": "0123456789abcdef0123"}'.encode("utf-16-le"),  # NUL bytes
        b'{"id": "0123456789abcdef0123", "x": ' + b"[" * 300 + b"]" * 300 + b"}",  # deep
    ],
)
def test_it_says_none_where_it_cannot_answer_and_the_others_do(body: bytes) -> None:
    assert _SPAN_SCANNER.spans(body, None) is None
    if b"\x00" not in body:
        assert body_spans(body) == walked_body_spans(body)


def test_many_shallow_containers_are_not_too_deep() -> None:
    body = json.dumps({"id": _BASE, "x": [[1]] * 300}).encode()
    assert _SPAN_SCANNER.spans(body, None) == walked_body_spans(body) == (((8, 32, T),), _BASE)


@settings(max_examples=2000, deadline=None)
@given(st.text(st.sampled_from('aZ09-_. é"\\') | st.characters(), max_size=30))
def test_the_mintable_pattern_is_mintable(value: str) -> None:
    raw = value.encode("utf-8", "surrogatepass")
    if b'"' not in raw:
        matched = re.match(b"(?:" + _MINTABLE + b')"', raw + b'"')
        assert (matched is not None) == mintable(raw.decode("utf-8", "replace"))


@pytest.mark.parametrize("times", [1, 31, 32, 33, 200])
def test_a_trace_id_named_many_times_gets_every_occurrence(times: int) -> None:
    body = json.dumps({"id": _BASE, "text": " ".join([_BASE] * times), "x": "y" + _BASE}).encode()
    scanned = _scanned(body)
    assert scanned == walked_body_spans(body)
    assert [k for _s, _n, k in scanned[0]] == [T] + [TR] * (times + 1)
