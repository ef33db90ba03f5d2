"""capture._spanwalk, the compiled span finder, checked against the reference walk
(`walked_body_spans`) and `json.loads`, never against its own code: wherever it answers,
its spans and trace are exactly the walk's and json.loads reads the body; it answers for
ordinary traffic (ingestion-shaped bodies, synthesized traffic, the bundled corpora); it
refuses (None) the cases it cannot answer exactly, and span finding (`body_spans`) still
gives the walk's answer for them."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import re
import string
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from ingestion_bodies import A, B, batch_body, bodies, nested, pool, trace_body
from spanwalk_check import checked

from capture.corpus import CorpusReader
from capture.json_body import NOT_JSON, parsed
from capture.spans import json_strings
from capture.synth import WORKLOADS, SynthSpec, synthesize
from corpora import BUNDLED, bundled_path

ROOT = Path(__file__).resolve().parents[2]
_TOKEN = re.compile(rb'"(?:[^"\\]|\\.)*"|[{}\[\]:,]')  # strings and structure, nothing else


def _keys(body: bytes) -> list[tuple[int, bytes]]:
    """(depth, raw bytes between the quotes) of every object key of a JSON document."""
    keys = []
    depth = 0
    tokens = [m.group() for m in _TOKEN.finditer(body)]
    for token, after in zip(tokens, [*tokens[1:], b""], strict=True):
        if token in (b"{", b"["):
            depth += 1
        elif token in (b"}", b"]"):
            depth -= 1
        elif token[:1] == b'"' and after == b":":
            keys.append((depth, token[1:-1]))
    return keys


def _depth(body: bytes) -> int:
    depth = deepest = 0
    for m in _TOKEN.finditer(body):
        token = m.group()
        if token in (b"{", b"["):
            depth += 1
            deepest = max(deepest, depth)
        elif token in (b"}", b"]"):
            depth -= 1
    return deepest


def _constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _integer(digits: str) -> int:
    if len(digits.lstrip("-")) > 600:
        raise ValueError("an integer json.loads may refuse (its limit may be set to 640)")
    return int(digits)


def ordinary(body: bytes) -> bool:
    """Whether `body` is valid JSON the extension is bound to answer for: none of the
    cases it may refuse (non-strict UTF-8, a key holding a backslash, NaN or Infinity,
    nesting deeper than 512, "batch" twice at the top, a batch event type holding a
    backslash, an integer of over 600 digits). A GraphQL document naming its project is
    ordinary too."""
    if body[:1] not in (b"{", b"["):
        return False
    try:
        body.decode("utf-8")
        doc = json.loads(body, parse_constant=_constant, parse_int=_integer)
    except (ValueError, RecursionError):
        return False
    keys = _keys(body)
    if any(b"\\" in key for _d, key in keys) or _depth(body) > 512:
        return False
    if isinstance(doc, dict) and "batch" in doc:
        if sum(1 for d, key in keys if d == 1 and key == b"batch") > 1:
            return False
        for path, start, end in json_strings(body):
            if path[0] == "batch" and path[2:] == ("type",) and b"\\" in body[start:end]:
                return False
    return True


# Ids of every shape, timestamps and near misses, and the keys span finding reads anywhere.
ids = (
    pool
    | st.uuids().map(str)
    | st.from_regex(r"[a-z]{1,6}-[0-9a-f]{4,14}", fullmatch=True)
    | st.text(string.ascii_letters + string.digits + "-_.:/ ", min_size=10, max_size=40)
    | st.text(st.characters(exclude_categories=["Cs"]), max_size=24)
)
_instants = st.datetimes(datetime(1, 1, 1), datetime(9999, 12, 31))
times = _instants.map(lambda d: f"{d:%Y-%m-%dT%H:%M:%S}.{d.microsecond // 1000:03d}Z") | (
    _instants.map(lambda d: d.isoformat()) | st.sampled_from(["", "2026-01-01T00:00:00Z"])
)
numbers = st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.booleans()
extras = st.fixed_dictionaries(
    {},
    optional={
        "trace_id": ids,
        "traceId": ids,
        "parent_observation_id": ids,
        "parentObservationId": ids,
        "project_id": ids,
        "timestamp": times,
        "startTime": times,
        "end_time": times,
        "completionStartTime": times,
        "name": pool.map("load-test-trace-{}".format),
        "type": st.sampled_from(["trace-create", "span-update", "generation-create", "SPAN"]),
        "batch": nested,
        "usage": numbers | st.lists(numbers, max_size=3),
        "ïd": pool,
    },
)
layouts = st.sampled_from(
    [
        {"separators": (",", ":")},
        {"separators": (", ", ": ")},
        {"indent": 1},
        {"indent": "\t", "sort_keys": True},
        {"separators": ("\r\n,\t", " :\n ")},
    ]
)
REPEATED = [b'"id"', b'"observations"', b'"body"', b'"batch"', b'"type"', b'"trace_id"']


def _objects(doc: Any) -> list[dict[str, Any]]:
    found, stack = [], [doc]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            found.append(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return found


@st.composite
def rich_bodies(draw: Any) -> bytes:
    """Trace bodies, batches and arrays of traces, their objects given references,
    timestamps, projects, names that repeat ids, numbers; dumped in one of five layouts,
    ASCII or UTF-8, with a key repeated, sometimes deeply nested."""
    doc = draw(trace_body() | batch_body() | st.lists(trace_body(), max_size=2))
    for obj in _objects(doc):
        if draw(st.integers(0, 2)) == 0:
            obj.update(draw(extras))
        if draw(st.integers(0, 19)) == 10:  # (GraphQL when the body holds an escaped quote)
            obj["projectId"] = draw(ids)
    if isinstance(doc, dict) and draw(st.integers(0, 9)) == 0:
        deep: Any = doc.get("id", "x")
        for _ in range(draw(st.sampled_from([1, 100, 511, 513]))):
            deep = [deep]
        doc["metadata"] = deep
    body = json.dumps(doc, ensure_ascii=draw(st.booleans()), **draw(layouts)).encode()
    openers = [i for i, c in enumerate(body) if c == ord("{")]
    if openers and draw(st.integers(0, 3)) == 0:  # a repeated key
        key = draw(st.sampled_from(REPEATED))
        value = json.dumps(draw(pool | st.just([{"id": A, "type": "trace-create"}]))).encode()
        at = draw(st.sampled_from(openers))
        changed = body[: at + 1] + key + b":" + value + b"," + body[at + 1 :]
        if parsed(changed) is not NOT_JSON:  # (an opener inside a string, before a close)
            body = changed
    return body


_spaces = st.sampled_from(["", " ", "  ", "\t", "\x0b", "\n", "\x85"])
_project_ids = st.sampled_from(["proj_loadtest", "p.1:x-y", "", "é", "a b", "\\", A]) | ids
_mentions = st.tuples(  # projectId: "id", spaced, and some of it missing
    st.sampled_from(["projectId", "projectId", "projectI", "xprojectId"]),
    _spaces,
    st.sampled_from([":", ":", ""]),
    _spaces,
    st.sampled_from(['"', '"', "", "'"]),
    _project_ids,
    st.sampled_from(['"', '"', "", '\\"']),
).map("".join)
_well_formed = st.tuples(
    st.sampled_from(["", " ", "  "]),
    st.sampled_from(["", " ", "  "]),
    st.sampled_from(["proj_loadtest", "p.1:x-y", A]),
).map(lambda p: f'projectId{p[0]}:{p[1]}"{p[2]}"')
_fillers = st.sampled_from(["query { traces(", ", limit: 20) ", "{ id }", "}", '"', "\\", "é"])


@st.composite
def graphql_bodies(draw: Any) -> bytes:
    """GraphQL documents in JSON: queries naming projects (quotes escaped in the body),
    spaced, cut or broken, and project ids in variables too."""
    query = "".join(draw(st.lists(_well_formed | _mentions | _fillers, max_size=8)))
    doc: dict[str, Any] = {"query": query}
    if draw(st.booleans()):
        doc["variables"] = {"projectId": draw(ids), "traceId": draw(pool)}
    if draw(st.booleans()):
        doc["id"] = draw(pool)
    return json.dumps(doc, ensure_ascii=draw(st.booleans()), **draw(layouts)).encode()


# Any nesting of the keys span finding reads, with event types at every place.
_structural_keys = st.sampled_from(
    ["id", "batch", "type", "body", "observations", "trace_id", "timestamp", "projectId", "x"]
)
_structural_scalars = (
    st.sampled_from(
        [
            *(A, B, "short-id", "", "trace-create", "trace-update", "span-update", "x-update"),
            *("trace-", "-update", "2026-01-01T00:00:01.764Z", f"load-test-trace-{A}"),
        ]
    )
    | st.none()
    | st.integers(-2, 2)
)
structural = st.recursive(
    _structural_scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.lists(st.tuples(_structural_keys, inner), max_size=4)
    ),  # (pairs: keys may repeat)
    max_leaves=14,
)


def _dump(value: Any) -> str:
    if isinstance(value, list) and all(isinstance(p, tuple) for p in value) and value:
        return "{" + ",".join(f"{json.dumps(k)}:{_dump(v)}" for k, v in value) + "}"
    if isinstance(value, list):
        return "[" + ",".join(_dump(v) for v in value) + "]"
    return json.dumps(value)


_events = st.lists(st.tuples(_structural_keys, structural), min_size=1, max_size=5)
structural_bodies = (
    structural.filter(lambda v: isinstance(v, list))
    | st.lists(_events | structural, max_size=4).map(lambda events: [("batch", events)])
).map(lambda v: _dump(v).encode())


JSON_SPACE = [b" ", b"\t", b"\n", b"\r"]
OTHER_SPACE = [b"\x0b", b"\x0c", b"\xc2\xa0", b"\xe2\x80\xa8", b"\x00"]
ESCAPED_KEYS = [
    (b'"id"', b'"\\u0069d"'),
    (b'"id"', b'"i\\u0064"'),
    (b'"batch"', b'"b\\u0061tch"'),
    (b'"type"', b'"\\u0074ype"'),
    (b'"trace_id"', b'"trace\\u005fid"'),
    (b'"trace-create"', b'"trace-\\u0063reate"'),
    (b'"observations"', b'"observation\\u0073"'),
]
MUTATIONS = [0, 1, 2, 3, 4, 4, 5, 5, 5, 6, 7, 8, 9, 9]  # validity kept: 4, 5, 9 (mostly)
CODECS = ["utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le", "utf-32-be"]


@st.composite
def mutated(draw: Any) -> bytes:
    """An ingestion-shaped body damaged one to three times: a byte inserted, deleted or
    replaced, truncated, a key or value escaped, whitespace of every kind put in (JSON's
    four and others), a slice repeated, a BOM put before it, or re-encoded as UTF-16/32."""
    body = draw(rich_bodies() | bodies() | graphql_bodies())
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(body)))
        how = draw(st.sampled_from(MUTATIONS))
        if how == 0:
            byte = draw(
                st.sampled_from(b'{}[]:,"\\ 0e-.\x00\x1f\x7f\x80\xc3\xed\xff') | st.integers(0, 255)
            )
            body = body[:at] + bytes([byte]) + body[at:]
        elif how == 1:
            body = body[:at] + body[at + 1 :]
        elif how == 2 and at < len(body):
            byte = draw(st.sampled_from(b'{}[]:,"\\ 0a\x00\x80\xff') | st.integers(0, 255))
            body = body[:at] + bytes([byte]) + body[at + 1 :]
        elif how == 3:
            body = body[:at]
        elif how == 4:
            plain, escaped = draw(st.sampled_from(ESCAPED_KEYS))
            where = [m.start() for m in re.finditer(re.escape(plain), body)]
            if where:
                at = draw(st.sampled_from(where))
                body = body[:at] + escaped + body[at + len(plain) :]
        elif how == 5:
            structure = [i + 1 for i, c in enumerate(body) if c in b"{}[]:,"] or [0]
            at = draw(st.sampled_from(structure) | st.just(at))
            space = draw(st.sampled_from(JSON_SPACE * 2 + OTHER_SPACE))
            body = body[:at] + space * draw(st.integers(1, 3)) + body[at:]
        elif how == 6:
            end = draw(st.integers(at, min(len(body), at + 60)))
            to = draw(st.integers(0, len(body)))
            body = body[:to] + body[at:end] + body[to:]
        elif how == 7:
            body = draw(st.sampled_from([b"\xef\xbb\xbf", b"\xfe\xff", b"\xff\xfe"])) + body
        elif how == 8:
            with contextlib.suppress(UnicodeError):
                body = body.decode("utf-8").encode(draw(st.sampled_from(CODECS)))
        else:  # a letter escaped: the same value inside a string, invalid outside one
            letters = [i for i, c in enumerate(body) if chr(c).isalnum()]
            if letters:
                at = draw(st.sampled_from(letters))
                body = body[:at] + b"\\u%04x" % body[at] + body[at + 1 :]
    return body


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rich_bodies() | bodies())
@example(b'{"id": "' + A.encode() + b'", "metadata": {"id": "' + B.encode() + b'"}}')
@example(b'{"observations": [], "id": "' + A.encode() + b'", "observations": [{"id": "x"}]}')
def test_it_answers_for_ingestion_shaped_bodies_exactly_as_the_walk(body: bytes) -> None:
    answer = checked(body)
    if ordinary(body):
        assert answer is not None, "refused an ordinary body"


@settings(max_examples=400, deadline=None)
@given(structural_bodies)
def test_it_answers_for_any_nesting_of_the_keys_it_reads_exactly_as_the_walk(body: bytes) -> None:
    answer = checked(body)
    if ordinary(body):
        assert answer is not None, "refused an ordinary body"


@settings(max_examples=300, deadline=None)
@given(graphql_bodies())
@example(b'{"query":"query { traces(projectId: \\"proj_loadtest\\", limit: 20) { id } }"}')
@example(b'{"q":"projectId :\\"a\\" projectId:\\"b\\"","projectId":"c\\"d"}')
def test_it_answers_for_graphql_documents_exactly_as_the_walk(body: bytes) -> None:
    answer = checked(body)
    if ordinary(body):
        assert answer is not None, "refused an ordinary body"


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
@example(b"\xef\xbb\xbf" + b'{"id": "' + A.encode() + b'"}')
@example(('{"id": "' + A + '"}').encode("utf-16-le"))
@example(b'{"\\u0069d": "' + A.encode() + b'"}')
def test_damaged_bodies_get_the_walks_answer_or_none(body: bytes) -> None:
    checked(body)


KEY_NAMES = ["id", "traceId", "batch", "type", "body", "observations"]
jsonish = st.lists(
    st.sampled_from([*'{}[]:,"\\ 0123456789abcdefghijklmnopqrstuvwxyz.eE+-'])
    | st.sampled_from([f'"{k}"' for k in KEY_NAMES] + KEY_NAMES),
    max_size=40,
).map(lambda parts: "".join(parts).encode())
# Nearly JSON: containers of scalars, most of them valid, some one character off.
_near_scalars = st.sampled_from(
    [
        *(f'"{k}"' for k in KEY_NAMES),
        *(f'"{A}"', '"trace-create"', '"a\\"b"', '"\\u0041"', '""', "true", "false", "null"),
        *("0", "-0", "12", "1.5", "-2e-3", "1E+9"),
        *("01", "1.", ".5", "-", "+1", "1e", "tru", "nul", "NaN", '"\\x"', '"\\u12"', '"a', "'a'"),
    ]
)
_commas = st.sampled_from([",", ",", ", ", "\n,", ",,", ""])
_colons = st.sampled_from([":", ":", " : ", "", "::"])
near_json = st.recursive(
    _near_scalars,
    lambda inner: (
        st.tuples(st.lists(inner, max_size=4), _commas).map(lambda p: "[" + p[1].join(p[0]) + "]")
        | st.tuples(
            st.lists(
                st.tuples(st.sampled_from([f'"{k}"' for k in KEY_NAMES]), _colons, inner),
                max_size=4,
            ),
            _commas,
        ).map(lambda p: "{" + p[1].join(k + c + v for k, c, v in p[0]) + "}")
    ),
    max_leaves=12,
).map(str.encode)


@settings(max_examples=2000, deadline=None)
@given(
    st.binary(max_size=200)
    | st.tuples(st.sampled_from([b"{", b"["]), st.binary(max_size=100)).map(b"".join)
    | jsonish
    | st.tuples(st.sampled_from([b"{", b"["]), jsonish).map(b"".join)
    | near_json
)
@example(b"[01]")
@example(b"[1.]")
@example(b"[-]")
@example(b"[.5]")
@example(b"[1e]")
@example(b"[+1]")
@example(b"[1,]")
@example(b'{"a":1,}')
@example(b"[tru]")
@example(b'["\\x"]')
@example(b'["\\u12"]')
@example(b'["\t"]')
@example(b"[]]")
@example(b"{}{}")
@example(b"[] x")
@example(b"[]\x0b")
@example(b'{"a" 1}')
@example(b"{1: 2}")
def test_it_never_answers_for_bytes_json_loads_rejects(body: bytes) -> None:
    checked(body)


@pytest.mark.parametrize(
    "body",
    [
        b'[-0, 0.0e-0, 1E+5, 1e-05, -12.5E3, true, false, null, {}, [], "", "\\ud800"]',
        b'{"a\xc3\xa9": "\xf0\x9f\x98\x80", "id": "' + A.encode() + b'"}\r\n\t ',
        b'{"id": "' + A.encode() + b'", "n": ' + b"1234567890" * 40 + b"}",  # 400 digits
        b'{"batch": [{"id": "' + A.encode() + b'", "type": "trace-create"}], "x": {"batch": 1}}',
        b"[" * 512 + b"]" * 512,
    ],
    ids=["every-scalar", "non-ascii", "400-digit-integer", "batch-twice-not-at-top", "depth-512"],
)
def test_it_answers_for_valid_json_of_every_scalar_kind(body: bytes) -> None:
    assert checked(body) is not None


def _workload_bodies() -> list[bytes]:
    found = []
    for workload in WORKLOADS:
        found += [r.body for r in synthesize(SynthSpec(workload, 40, 10 * 10**9, 11)) if r.body]
    return found


def _bench_body() -> bytes:
    spec = importlib.util.spec_from_file_location("bench_record", ROOT / "bench" / "record.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # (its dataclasses look their module up)
    try:
        spec.loader.exec_module(module)
        body: bytes = module.ingestion_body(3000)
    finally:
        del sys.modules[spec.name]
    return body


def _answers_for_traffic(traffic: list[bytes]) -> None:
    for body in traffic:
        assert checked(body) is not None, body


def test_it_answers_for_synthesized_traffic_and_the_bench_body() -> None:
    traffic = _workload_bodies()
    assert len(traffic) > 400
    _answers_for_traffic([*traffic, _bench_body()])


@pytest.mark.parametrize("name", sorted(BUNDLED))
def test_it_answers_for_every_record_of_the_bundled_corpora(name: str) -> None:
    with CorpusReader(bundled_path(name)) as reader:
        traffic = [r.body for r in reader if r.body]
    assert traffic
    _answers_for_traffic(traffic)
