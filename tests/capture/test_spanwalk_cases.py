"""capture._spanwalk on written-out cases: the trickiest rules of span finding with their
spans spelled out, each case where it must refuse (and span finding then still gives the
walk's answer), and bodies built to break a parser (deep, huge, NUL, long numbers)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from spanwalk_check import NOT_BUILT, checked, native

import capture.spans
from capture.corpus import IdKind
from capture.spans import body_spans, walked_body_spans

T, TR, OB, OR = (
    int(IdKind.TRACE),
    int(IdKind.TRACE_REF),
    int(IdKind.OBSERVATION),
    int(IdKind.OBSERVATION_REF),
)
TS, PR = int(IdKind.TIMESTAMP), int(IdKind.PROJECT)
A = "0123456789abcdef0123456789abcdef"
B = "6c3c764e-c8e1-4af2-a22b-b22ccd14228d"
E = "evt-0123456789abcdef"


def test_it_is_built() -> None:
    assert capture.spans.COMPILED, NOT_BUILT


def _body(template: str, *values: str) -> bytes:
    return (template % values).encode()


@pytest.mark.parametrize(
    ("body", "spans", "trace"),
    [
        pytest.param(  # the trace id again in free text: a reference, as synth marks it
            _body('{"id":"%s","name":"load-test-trace-%s"}', A, A),
            ((7, 32, T), (65, 32, TR)),
            A,
            id="trace-id-in-free-text",
        ),
        pytest.param(  # unmintable ids and every reference to them unmarked; the first
            # trace reference still names the trace
            _body(
                '{"id":"short-id","observations":[{"id":"%s","trace_id":"short-id",'
                '"parent_observation_id":"tiny"}]}',
                B,
            ),
            ((40, 36, OB),),
            "short-id",
            id="unmintable-ids-unmarked",
        ),
        pytest.param(  # the trace id inside another id: the id's span, which starts first
            _body('{"id":"%s","observations":[{"id":"x%s"}]}', A, A),
            ((7, 32, T), (64, 33, OB)),
            A,
            id="overlap-keeps-the-first",
        ),
        pytest.param(  # the event's type after its ids still gives their kinds
            _body('{"batch":[{"id":"%s","body":{"id":"%s"},"type":"trace-create"}]}', E, A),
            ((17, 20, OB), (53, 32, T)),
            A,
            id="batch-type-after-ids",
        ),
        pytest.param(  # a repeated type: the last one counts (the object keeps it)
            _body(
                '{"batch":[{"type":"span-create","id":"%s","body":{"id":"%s"},'
                '"type":"trace-update"}]}',
                E,
                A,
            ),
            ((38, 20, OB), (74, 32, TR)),
            A,
            id="batch-type-repeated",
        ),
        pytest.param(  # an all-digit trace id inside a number is an occurrence too
            _body('{"id":"%s","n":%s7}', "1234567890123456", "1234567890123456"),
            ((7, 16, T), (29, 16, TR)),
            "1234567890123456",
            id="trace-id-in-a-number",
        ),
        pytest.param(  # an occurrence right after a backslash is not one (even "\\\\")
            _body('{"id":"%s","p":"C:\\\\%s"}', A, A),
            ((7, 32, T),),
            A,
            id="occurrence-after-a-backslash",
        ),
        pytest.param(  # after an escape's letter it is one, escapes in its string or not
            _body('{"id":"%s","n":"\\n%s"}', A, A),
            ((7, 32, T), (48, 32, TR)),
            A,
            id="occurrence-after-an-escape",
        ),
        pytest.param(  # occurrences do not overlap each other: found left to right
            _body('{"id":"%s","t":"%s"}', "a" * 16, "a" * 40),
            ((7, 16, T), (30, 16, TR), (46, 16, TR)),
            "a" * 16,
            id="repeating-occurrences",
        ),
        pytest.param(  # an occurrence in a key counts too
            _body('{"id":"%s","%s":1}', A, A),
            ((7, 32, T), (42, 32, TR)),
            A,
            id="trace-id-as-a-key",
        ),
        pytest.param(  # both ids of a repeated key are the trace's; the first names it
            _body('{"id":"%s","id":"%s"}', A, "b" * 16),
            ((7, 32, T), (47, 16, T)),
            A,
            id="id-repeated",
        ),
        pytest.param(  # only a 24-byte ISO time with milliseconds and Z
            b'{"timestamp":"2026-01-01T00:00:01.764Z","startTime":"2026-01-01T00:00:01Z",'
            b'"end_time":"2026-01-01T00:00:01.764+00:00"}',
            ((14, 24, TS),),
            None,
            id="timestamps",
        ),
        pytest.param(  # an escaped value is never marked: its bytes are not its value
            _body('{"id":"\\u0030%s","observations":[{"id":"%s"}]}', A[1:], B),
            ((69, 36, OB),),
            None,
            id="escaped-id-unmarked",
        ),
        pytest.param(  # a GraphQL query naming its project between escaped quotes
            b'{"query":"query { traces(projectId: \\"proj_loadtest\\", limit: 20) { id } }"}',
            ((38, 13, PR),),
            None,
            id="graphql-project",
        ),
    ],
)
def test_the_trickiest_rules(body: bytes, spans: tuple[object, ...], trace: str | None) -> None:
    assert walked_body_spans(body) == (spans, trace)
    assert checked(body) is not None
    assert body_spans(body) == (spans, trace)


NAN = b'{"id": "' + A.encode() + b'", "x": %s}'
BATCH = '{"batch":[{"id":"%s","type":"trace-create","body":{"id":"%s"}}]%s}'


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b' {"id": "' + A.encode() + b'"}', id="leading-space"),
        pytest.param(b'"' + A.encode() + b'"', id="a-string"),
        pytest.param(b"123", id="a-number"),
        pytest.param(b"\xef\xbb\xbf" + b'{"id": "' + A.encode() + b'"}', id="bom"),
        pytest.param(_body('{"id": "%s"}', A).decode().encode("utf-16"), id="utf-16"),
        pytest.param(_body('{"id": "%s"}', A).decode().encode("utf-16-le"), id="utf-16-le"),
        pytest.param(_body('{"id": "%s"}', A).decode().encode("utf-32-le"), id="utf-32-le"),
        pytest.param(b'{"id": "' + A.encode() + b'", "n": "\xff"}', id="invalid-utf8"),
        pytest.param(b'{"id": "' + A.encode() + b'", "n": "\xed\xa0\x80"}', id="utf8-surrogate"),
        pytest.param(b'{"id": "' + A.encode() + b'", "n": "\xc0\xaf"}', id="overlong-utf8"),
        pytest.param(b'{"id": "' + A.encode() + b'", "n": "\xf4\x90\x80\x80"}', id="above-10ffff"),
        pytest.param(b'{"id": "' + A.encode() + b'", "n": "\xe2\x82"}', id="cut-utf8"),
        pytest.param(b'{"\\u0069d": "' + A.encode() + b'"}', id="escaped-key-id"),
        pytest.param(b'{"id": "' + A.encode() + b'", "a\\"b": 1}', id="key-with-quote"),
        pytest.param(b'{"\\\\": 1, "id": "' + A.encode() + b'"}', id="key-backslash"),
        pytest.param(
            _body('{"observations":[{"\\u0069d":"%s"}],"id":"%s"}', B, A), id="nested-key-escape"
        ),
        pytest.param(NAN % b"NaN", id="nan"),
        pytest.param(NAN % b"Infinity", id="infinity"),
        pytest.param(NAN % b"-Infinity", id="minus-infinity"),
        pytest.param(NAN % b"[1, NaN]", id="nan-in-array"),
        pytest.param(_body('{"id":"%s","m":%s1%s}', A, "[" * 513, "]" * 513), id="depth-514"),
        pytest.param(b"[" * 513 + b"]" * 513, id="depth-513"),
        pytest.param(_body(BATCH, E, A, ',"batch":[]'), id="batch-twice"),
        pytest.param(_body('{"batch":[],' + BATCH[1:], E, A, ""), id="batch-twice-first-empty"),
        pytest.param(
            _body('{"batch":[{"id":"%s","type":"trace-\\u0063reate","body":{"id":"%s"}}]}', E, A),
            id="batch-type-escaped",
        ),
        pytest.param(_body('{"id": "%s",}', A), id="trailing-comma"),
        pytest.param(_body('{"id" "%s"}', A), id="missing-colon"),
        pytest.param(_body('{"id": "%s"} {}', A), id="two-documents"),
        pytest.param(_body('{"id": "%s"', A), id="unclosed"),
        pytest.param(_body('{"id": "%s"]', A), id="mismatched-close"),
        pytest.param(_body('{"id": "%s", "n": 01}', A), id="leading-zero"),
        pytest.param(_body('{"id": "%s", "n": "\\x41"}', A), id="bad-escape"),
        pytest.param(_body('{"id": "%s", "n": "a\tb"}', A), id="raw-tab-in-string"),
        pytest.param(_body('{"id": "%s"}\x0b', A), id="vertical-tab-after"),
        pytest.param(_body('{"id": "%s", "n": tru}', A), id="bad-literal"),
        pytest.param(b'{"id": "abc\x00def0123456789abcdef"}', id="nul-in-string"),
    ],
)
def test_it_refuses_and_span_finding_still_gives_the_walks_answer(body: bytes) -> None:
    assert native(body) is None
    assert checked(body) is None  # and the wrapper and body_spans give the walk's answer


def test_the_refused_cases_that_are_json_get_the_walks_spans() -> None:
    escaped_type = _body(
        '{"batch":[{"id":"%s","type":"trace-\\u0063reate","body":{"id":"%s"}}]}', E, A
    )
    assert body_spans(escaped_type) == (((17, 20, OB), (80, 32, T)), A)
    assert body_spans(_body(BATCH, E, A, ',"batch":[]')) == ((), None)  # the last batch
    nan = NAN % b"NaN"
    assert json.loads(nan)["x"] != json.loads(nan)["x"]  # json.loads reads it
    assert body_spans(nan) == (((8, 32, T),), A)


def test_deep_nesting_is_refused_without_a_crash() -> None:
    for body in (b"[" * 200_000, b"[" * 200_000 + b"]" * 200_000, b'{"a":' * 200_000):
        assert native(body) is None
        assert body_spans(body) == walked_body_spans(body) == ((), None)


def test_a_20_mb_body() -> None:
    """Thousands of observations with long texts naming the trace: it answers, as the walk."""
    text = "lorem ipsum " * 850 + A + ' [x] {y} \\ " é '
    doc = {
        "id": A,
        "timestamp": "2026-01-01T00:00:01.764Z",
        "observations": [
            {"id": f"{i:08d}-0000-4000-8000-{i:012d}", "trace_id": A, "input": text}
            for i in range(2_000)
        ],
    }
    body = json.dumps(doc, ensure_ascii=False).encode()
    assert len(body) > 20_000_000
    answer = checked(body)
    assert answer is not None
    assert len(answer[0]) == 2 + 2_000 * 3  # the id, the time; each id, reference, mention


def test_a_nul_byte_in_a_string_is_refused() -> None:
    body = _body('{"id": "%s", "name": "a', A) + b"\x00" + b'b"}'
    with pytest.raises(ValueError):
        json.loads(body)
    assert native(body) is None


def test_integers_of_400_digits() -> None:
    digits = ("1234567890" * 40).encode()
    body = _body('{"id": "%s", "n": ', A) + digits + b', "m": [-' + digits + b"]}"
    assert checked(body) == (((8, 32, T),), 8, 40)


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(
            _body('{"é": 1, "id": "%s"}', A).decode().encode("utf-16-le"), id="utf-16-non-ascii-key"
        ),
        pytest.param(
            _body('{"\\u0069d": "%s"}', A).decode().encode("utf-16"), id="utf-16-escaped-key"
        ),
        pytest.param(b'{"\xed\xa0\x80": 1, "id": "' + A.encode() + b'"}', id="surrogate-key"),
    ],
)
def test_the_walk_reads_every_body_json_loads_reads(body: bytes) -> None:
    """Keys the walk once decoded as UTF-8 (UTF-16 bodies, encoded surrogates) raised."""
    json.loads(body)
    assert native(body) is None
    assert body_spans(body) == walked_body_spans(body)
    if b"\x00" in body:  # UTF-16: no span could be its text
        assert walked_body_spans(body) == ((), None)


def test_it_follows_the_interpreters_integer_digit_limit() -> None:
    """json.loads refuses integers past sys.get_int_max_str_digits(), at least 640."""
    body = _body('{"id": "%s", "n": %s}', A, "7" * 1_000)
    limit = sys.get_int_max_str_digits()
    sys.set_int_max_str_digits(640)
    try:
        with pytest.raises(ValueError):
            json.loads(body)
        assert native(body) is None
    finally:
        sys.set_int_max_str_digits(limit)


UNCONFIGURED = """
import sys
from capture import _spanwalk
body = sys.stdin.buffer.read()
before = _spanwalk.body_spans(body)  # capture.spans not imported yet: it configures it
from capture.spans import walked_body_spans
assert "capture.spans" in sys.modules
print(before is None or before[0] == walked_body_spans(body)[0])
"""


def test_it_answers_exactly_or_not_at_all_before_it_is_configured() -> None:
    """capture.spans gives the extension its key names; before that it cannot be exact."""
    body = _body('{"id": "%s", "timestamp": "2026-01-01T00:00:01.764Z"}', A)
    done = subprocess.run(
        [sys.executable, "-c", UNCONFIGURED], input=body, capture_output=True, check=True
    )
    assert done.stdout.strip() == b"True"
