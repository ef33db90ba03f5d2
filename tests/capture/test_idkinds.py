"""capture/idkinds.py, the kinds of a body's ids read from its parsed document, checked by
what span finding gives with them against the reference walk over every JSON token
(`walked_body_spans`): the same spans and trace for every body where `id_kinds` answers,
with id values that repeat at other places, nested ids, ids as plain values, duplicate
keys, escapes and brackets in strings; and it answers for the bodies a recorder sees most
(including strings holding brackets, which the bracket counts refuse)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import example, given, settings
from ingestion_bodies import A as _A
from ingestion_bodies import B as _B
from ingestion_bodies import bodies

from capture.corpus import IdKind
from capture.idkinds import id_kinds
from capture.spans import _SPAN_SCANNER, _event_kinds, body_spans, walked_body_spans
from capture.synth import SynthSpec, synthesize

T, TR = int(IdKind.TRACE), int(IdKind.TRACE_REF)
OB, OR = int(IdKind.OBSERVATION), int(IdKind.OBSERVATION_REF)


def _by_values(body: bytes) -> Any:
    """What span finding gives where the kinds by value answer (the bracket counts are
    behind them), else None."""
    doc = json.loads(body)
    batch = _event_kinds(doc) if "batch" in doc else None
    kinds = id_kinds(body, doc, batch)
    if kinds is None or _SPAN_SCANNER._by_values(body, kinds) is None:
        return None
    return _SPAN_SCANNER.spans(body, batch, kinds)


@settings(max_examples=600, deadline=None)
@given(bodies())
@example(b'{"id": "' + _A.encode() + b'", "metadata": {"id": "' + _B.encode() + b'"}}')
@example(b'{"id": "\\u0030123456789abcdef0123", "m": {"id": "0123456789abcdef0123"}}')
@example(b'{"id": "' + _A.encode() + b'", "id": "' + _B.encode() + b'"}')
@example(b'{"id": "' + _A.encode() + b'", "observations": [{"id": "' + _A.encode() + b'"}]}')
def test_where_it_answers_span_finding_gives_exactly_the_walks_spans(body: bytes) -> None:
    doc = json.loads(body)
    if "batch" in doc and not all(isinstance(e, dict) for e in doc["batch"]):
        return  # span finding asks this way only for a batch of objects
    walked = walked_body_spans(body)
    assert body_spans(body) == walked
    found = _by_values(body)
    if found is not None:
        assert found == walked


def test_it_answers_for_synthetic_traffic() -> None:
    records = list(synthesize(SynthSpec("mixed", 60, 5_000_000_000, 5)))
    bodies = [r.body for r in records if r.body.startswith(b"{")]
    assert len(bodies) >= len(records) // 2
    for body in bodies:
        assert _by_values(body) == walked_body_spans(body)


def test_it_answers_where_a_string_holds_a_bracket() -> None:
    body = json.dumps(
        {
            "id": _A,
            "name": "[draft] {x}",
            "observations": [{"id": _B, "trace_id": _A, "input": "a ] b"}],
        }
    ).encode()
    assert _SPAN_SCANNER.spans(body, None) is None  # the bracket counts cannot
    spans, trace = _by_values(body)
    assert [(body[s : s + n].decode(), k) for s, n, k in spans] == [(_A, T), (_B, OB), (_A, TR)]
    assert trace == _A
    assert (spans, trace) == walked_body_spans(body)


def _body(template: str, *values: str) -> bytes:
    return (template % values).encode()


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(_body('{"id": "%s", "id": "%s"}', _A, _B), id="a second id in one object"),
        pytest.param(_body('{"id": "%s", "name": "id"}', _A), id="id as a value"),
        pytest.param(_body('{"id": "%s", "meta": {"id": "%s"}}', _A, _B), id="an id elsewhere"),
        pytest.param(
            _body('{"observations": [], "id": "%s", "observations": [{"id": "%s"}]}', _A, _A),
            id="one value, two kinds, and a repeated observations",
        ),
        pytest.param(
            _body(
                '{"id": "%s", "observations": [{"id": "\\u0030%s"}, {"id": "%s"}]}', _A, _A[1:], _A
            ),
            id="one value, two kinds, and one of them escaped",
        ),
        pytest.param(
            _body(
                '{"batch": [{"body": {}, "id": "%s", "type": "trace-create",'
                ' "body": {"id": "%s"}}]}',
                _A,
                _A,
            ),
            id="one value, two kinds, and a repeated body",
        ),
        pytest.param(
            _body('{"observations": [{"id": "%s"}], "observations": [{"id": "%s"}]}', _A, _B),
            id="a second observations",
        ),
    ],
)
def test_it_refuses_where_a_value_could_be_at_another_place(body: bytes) -> None:
    assert _by_values(body) is None
    assert body_spans(body) == walked_body_spans(body)


def test_a_batch_by_value() -> None:
    event, span = "evt-0-0123456789abcdef", "0b9e5c1a-6f2d-4e8a-9c3b-7a1d2e3f4a5b"
    doc = {
        "batch": [
            {"id": event, "type": "trace-update", "body": {"id": "t-1"}},
            {"id": "e", "type": "span-create", "body": {"id": span, "traceId": _A}},
            {"id": "evt-2-0123456789abcdef", "type": 7, "body": {"id": _B}},
        ]
    }
    body = json.dumps(doc).encode()
    kinds = id_kinds(body, doc, _event_kinds(doc))
    assert kinds == {
        event.encode(): OB,
        b"t-1": TR,
        b"e": OB,
        span.encode(): OB,
        b"evt-2-0123456789abcdef": None,  # an event whose type is not a string
        _B.encode(): None,
    }
    spans, trace = _by_values(body)
    assert [(body[s : s + n].decode(), k) for s, n, k in spans] == [
        (event, OB),
        (span, OB),
        (_A, TR),
    ]
    assert trace == "t-1"  # the first trace reference, minted or not
    assert (spans, trace) == walked_body_spans(body)


def test_one_value_of_two_kinds_is_read_in_document_order() -> None:
    trace = {"observations": [{"id": _A, "trace_id": _A}], "id": _A}  # its own observation
    body = json.dumps(trace).encode()
    assert id_kinds(body, trace, None) == [(_A.encode(), OB), (_A.encode(), T)]
    spans, named = _by_values(body)
    assert [k for _s, _n, k in spans] == [OB, TR, T]
    assert (spans, named) == walked_body_spans(body)


def test_a_batch_that_creates_and_updates_one_observation() -> None:
    span = "0b9e5c1a-6f2d-4e8a-9c3b-7a1d2e3f4a5b"
    events = [
        {"id": "evt-0-0123456789abcdef", "type": "trace-create", "body": {"id": _A, "x": "[1]"}},
        {"type": "span-create", "id": "evt-1-0123456789abcdef", "body": {"id": span}},
        {"body": {"id": span, "traceId": _A}, "type": "span-update", "id": "evt-2-0123456789ab"},
    ]
    doc = {"batch": events}
    body = json.dumps(doc).encode()
    assert isinstance(id_kinds(body, doc, _event_kinds(doc)), list)  # in order
    spans, named = _by_values(body)
    marked = [(body[s : s + n].decode(), k) for s, n, k in spans]
    assert marked == [
        ("evt-0-0123456789abcdef", OB),
        (_A, T),
        ("evt-1-0123456789abcdef", OB),
        (span, OB),
        (span, OR),  # the update's body, before its event's id
        (_A, TR),
        ("evt-2-0123456789ab", OB),
    ]
    assert named == _A
    assert (spans, named) == walked_body_spans(body)
