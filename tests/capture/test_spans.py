"""capture/spans.py against synth (which knows its spans by construction), on ingestion
batches written here by hand, and on what must stay unmarked; capture/redact.py's promises."""

from __future__ import annotations

import json

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from capture.corpus import IdKind
from capture.intake import endpoint_of
from capture.redact import redact_body
from capture.spans import find_spans, mintable
from capture.synth import SynthSpec, synthesize

T, TR = int(IdKind.TRACE), int(IdKind.TRACE_REF)
OB, OR = int(IdKind.OBSERVATION), int(IdKind.OBSERVATION_REF)
TS = int(IdKind.TIMESTAMP)


@pytest.mark.parametrize("workload", ["ingestion", "query", "mixed"])
def test_every_synthetic_record_gets_the_spans_synth_wrote(workload: str) -> None:
    records = list(synthesize(SynthSpec(workload, 80, 5_000_000_000, 11)))
    assert records
    for record in records:
        found = find_spans(record.body, record.path)
        assert endpoint_of(record.method, record.path) == record.endpoint
        assert found.body_ids == tuple(sorted(record.body_ids))
        assert found.path_ids == tuple(record.path_ids)
        assert found.trace == record.trace


def _spans_of(body: bytes, spans: tuple[tuple[int, int, int], ...]) -> list[tuple[str, int]]:
    return [(body[s : s + n].decode(), k) for s, n, k in spans]


TRACE_ID = "7d1c4f8e9a2b4c6d8e0f1a2b3c4d5e6f"
SPAN_ID = "0b9e5c1a-6f2d-4e8a-9c3b-7a1d2e3f4a5b"
GEN_ID = "5f3a2b1c-0d9e-4f8a-b7c6-d5e4f3a2b1c0"
EVENT_IDS = [f"evt-{i}-0123456789abcdef" for i in range(4)]
STAMP = "2026-03-04T05:06:07.089Z"


def test_an_ingestion_batch_in_camel_case_with_spaces() -> None:
    batch = {
        "batch": [
            {
                "id": EVENT_IDS[0],
                "type": "trace-create",
                "timestamp": STAMP,
                "body": {"id": TRACE_ID, "name": "chat", "input": {"id": "short"}},
            },
            {
                "id": EVENT_IDS[1],
                "type": "span-create",
                "timestamp": STAMP,
                "body": {"id": SPAN_ID, "traceId": TRACE_ID, "startTime": STAMP},
            },
            {
                "id": EVENT_IDS[2],
                "type": "generation-create",
                "timestamp": STAMP,
                "body": {
                    "id": GEN_ID,
                    "traceId": TRACE_ID,
                    "parentObservationId": SPAN_ID,
                    "startTime": "2026-03-04T05:06:07.1Z",  # not the form replay moves
                    "completionStartTime": STAMP,
                },
            },
            {
                "id": EVENT_IDS[3],
                "type": "span-update",
                "timestamp": STAMP,
                "body": {"id": SPAN_ID},
            },
        ]
    }
    body = json.dumps(batch, indent=1).encode()  # spaces after every colon
    found = find_spans(body, "/api/public/ingestion")
    assert endpoint_of("POST", "/api/public/ingestion") == "batch"
    assert found.trace == TRACE_ID
    assert _spans_of(body, found.body_ids) == [
        (EVENT_IDS[0], OB), (STAMP, TS), (TRACE_ID, T),
        (EVENT_IDS[1], OB), (STAMP, TS), (SPAN_ID, OB), (TRACE_ID, TR), (STAMP, TS),
        (EVENT_IDS[2], OB), (STAMP, TS), (GEN_ID, OB), (TRACE_ID, TR), (SPAN_ID, OR), (STAMP, TS),
        (EVENT_IDS[3], OB), (STAMP, TS), (SPAN_ID, OR),  # an update names the span above
    ]  # fmt: skip


def test_a_trace_read_an_update_of_an_unknown_trace_and_short_ids() -> None:
    update = json.dumps({"batch": [{"id": "e1", "type": "trace-update", "body": {"id": TRACE_ID}}]})
    found = find_spans(update.encode(), "/api/public/ingestion")
    # the event id is too short to mint uniquely: left as recorded; the update names a trace
    assert _spans_of(update.encode(), found.body_ids) == [(TRACE_ID, TR)]
    assert found.trace == TRACE_ID
    short = b'{"id":"t-1","observations":[{"id":"o-1","trace_id":"t-1"}]}'
    assert find_spans(short, "/api/public/traces").body_ids == ()
    read = find_spans(b"", f"/api/public/traces/{TRACE_ID}")
    assert (read.path_ids, read.trace) == (((19, 32, TR),), TRACE_ID)


@pytest.mark.parametrize(
    ("method", "path", "endpoint"),
    [
        ("POST", "/api/public/traces", "ingest"),
        ("GET", "/api/public/traces", "list"),
        ("GET", "/api/public/traces?limit=50&page=2", "list"),
        ("GET", "/api/public/traces?limit=20&search=refund", "search"),
        ("GET", "/api/public/traces?research=x", "list"),  # a parameter named otherwise
        ("GET", "/api/public/traces/abc", "get"),
        ("GET", "/api/public/traces/abc/observations", None),
        ("DELETE", "/api/public/traces/abc", None),
        ("POST", "/api/public/ingestion", "batch"),
        ("GET", "/api/public/metrics/traces?period=day", "metrics"),
        ("POST", "/graphql", "graphql"),
        ("GET", "/api/projects/p1", "project"),
        ("GET", "/health", None),
        ("GET", "/metrics", None),
        ("POST", "/api/public/scores", None),
    ],
)
def test_endpoint_tags(method: str, path: str, endpoint: str | None) -> None:
    assert endpoint_of(method, path) == endpoint


@given(st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=40))
@example("0000;000000000000")  # (a separator replay keeps in place: mintable)
@example('0000"000000000000')
def test_mintable_is_replays_rule(value: str) -> None:
    # replay/rewrite.py's check_id, written out independently: 16+ characters, the last 12
    # letters or digits, 4 letters or digits before them; and nothing JSON would escape
    tail_ok = len(value) >= 16 and value[-12:].isalnum() and value.isascii()
    head_ok = sum(c.isalnum() for c in value[:-12]) >= 4
    plain = '"' not in value and "\\" not in value  # (printable ASCII: the two JSON escapes)
    assert mintable(value) == (tail_ok and head_ok and plain)


WORDS = ("refund", "invoice", "password", "weekend", "customer")


def test_redaction_keeps_shape_ids_and_numbers_and_no_text() -> None:
    for record in synthesize(SynthSpec("ingestion", 50, 2_000_000_000, 3)):
        redacted = redact_body(record.body)
        assert len(redacted) == len(record.body)
        before, after = json.loads(record.body), json.loads(redacted)
        assert after["id"] == before["id"]
        assert after["timestamp"] == before["timestamp"]
        assert after["metadata"]["model"] == before["metadata"]["model"]
        assert after["metadata"]["tokens"] == before["metadata"]["tokens"]
        for old, new in zip(before["observations"], after["observations"], strict=True):
            assert {k: old[k] for k in old if k not in ("name", "input", "output")} == {
                k: new[k] for k in new if k not in ("name", "input", "output")
            }
        text = redacted.decode()
        for word in WORDS:
            assert word not in text
        assert redact_body(record.body) == redacted  # deterministic
        # ids and timestamps are still where the spans say, the name's copy of the id too
        assert set(find_spans(redacted, record.path).body_ids) == set(record.body_ids)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(["input", "output", "name", "id", "x", "model"]), inner)
    ),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(json_values, st.booleans())
def test_redaction_keeps_any_json_valid_and_the_same_length(
    value: object, ascii_only: bool
) -> None:
    body = json.dumps(value, ensure_ascii=ascii_only).encode()
    redacted = redact_body(body)
    assert len(redacted) == len(body)
    after = json.loads(redacted)

    def shape(v: object) -> object:
        if isinstance(v, dict):
            return {k: shape(x) for k, x in v.items()}
        if isinstance(v, list):
            return [shape(x) for x in v]
        return "s" if isinstance(v, str) else v

    assert shape(after) == shape(value)


# --- json_strings against a walk of the parsed document ------------------------------------

_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


def _walk(doc: object, path: tuple[object, ...] = ()) -> list[tuple[tuple[object, ...], str]]:
    """Every string value of a parsed document with the keys and indexes above it, in
    document order (an independent reading: json.loads, then plain recursion)."""
    if isinstance(doc, str):
        return [(path, doc)]
    if isinstance(doc, list):
        return [found for i, item in enumerate(doc) for found in _walk(item, (*path, i))]
    if isinstance(doc, dict):
        return [found for key, item in doc.items() for found in _walk(item, (*path, key))]
    return []


@settings(max_examples=300, deadline=None)
@given(
    _json_values,
    st.sampled_from([(",", ":"), (", ", ": "), (" ,\n", " :\t")]),
    st.booleans(),
)
def test_json_strings_finds_every_string_value_with_its_keys(
    doc: object, separators: tuple[str, str], ascii_only: bool
) -> None:
    from capture.spans import json_strings

    body = json.dumps(doc, separators=separators, ensure_ascii=ascii_only).encode()
    parsed = json.loads(body)  # duplicate keys collapse: compare with what json reads
    found = [
        (keys, json.loads(b'"' + body[start:end] + b'"')) for keys, start, end in json_strings(body)
    ]
    assert found == _walk(parsed)
