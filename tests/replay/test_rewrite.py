"""Templates: request bytes encoded once, ids minted by splicing, timestamps moved."""

from __future__ import annotations

import itertools
import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from capture.corpus import CorpusReader, IdKind, Record
from replay import rewrite
from replay.address import Target
from replay.encoder import Encoder
from replay.rewrite import IdMinter, RewriteError, Stamps, build_template, serial_hex

TRACE = "6ac1ebd431699832e8513f84c562fa82"
OBS1 = "0f5b2c1e-8d6a-4e1b-9c3d-2a7f6e5d4c3b"
OBS2 = "1a2b3c4d-5e6f-4a1b-8c2d-3e4f5a6b7c8d"
STAMP1 = "2026-01-01T00:00:05.250Z"
STAMP2 = "2026-01-01T00:00:06.999Z"
CREATED_MS = 1767225600000  # 2026-01-01T00:00:00Z


def _encoder() -> Encoder:
    return Encoder(Target.parse("http://127.0.0.1:9"), "sk-test", "replay-test")


def _build(record: Record, worker: int = 0, nonce: int = 1, **kw: Any) -> rewrite.Template:
    enc = _encoder()
    options: dict[str, Any] = {"created_ms": CREATED_MS, **kw}
    return build_template(
        record,
        request_start=enc.request_start,
        head_end=enc.head_end,
        minter=IdMinter(worker, nonce),
        **options,
    )


def _ingest() -> Record:
    """A hand-made ingest record: one trace, a span and a generation that points at it."""
    parts: list[tuple[str, int | None]] = [
        ('{"id":"', None),
        (TRACE, IdKind.TRACE),
        ('","name":"load-test-trace-', None),
        (TRACE, IdKind.TRACE_REF),
        ('","timestamp":"', None),
        (STAMP1, IdKind.TIMESTAMP),
        ('","observations":[{"id":"', None),
        (OBS1, IdKind.OBSERVATION),
        ('","trace_id":"', None),
        (TRACE, IdKind.TRACE_REF),
        ('","start_time":"', None),
        (STAMP1, IdKind.TIMESTAMP),
        ('"},{"id":"', None),
        (OBS2, IdKind.OBSERVATION),
        ('","trace_id":"', None),
        (TRACE, IdKind.TRACE_REF),
        ('","parent_observation_id":"', None),
        (OBS1, IdKind.OBSERVATION_REF),
        ('","end_time":"', None),
        (STAMP2, IdKind.TIMESTAMP),
        ('"}]}', None),
    ]
    body, spans, pos = "", [], 0
    for text, kind in parts:
        if kind is not None:
            spans.append((pos, len(text), int(kind)))
        body += text
        pos += len(text)
    return Record(
        offset_ns=5_000_000_000,
        endpoint="ingest",
        method="POST",
        path="/api/public/traces",
        headers=(("Content-Type", "application/json"), ("Authorization", "Bearer leaked")),
        body=body.encode(),
        body_ids=tuple(spans),
        trace=TRACE,
    )


def _get(trace: str = TRACE) -> Record:
    prefix = "/api/public/traces/"
    return Record(
        offset_ns=6_000_000_000,
        endpoint="get",
        method="GET",
        path=prefix + trace,
        headers=(("Accept", "application/json"),),
        body=b"",
        path_ids=((len(prefix), len(trace), int(IdKind.TRACE_REF)),),
        trace=trace,
    )


def _split(request: bytes) -> tuple[str, dict[str, str], bytes]:
    head, _, body = request.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
    return lines[0], headers, body


def test_ingest_renders_valid_json_with_consistent_fresh_ids() -> None:
    tpl = _build(_ingest())
    line, headers, body = _split(tpl.render(serial_hex(7), 0, b"", Stamps().iso))
    assert line == "POST /api/public/traces HTTP/1.1"
    assert headers["content-length"] == str(len(body)) == str(len(_ingest().body))
    assert headers["authorization"] == "Bearer sk-test"  # the target's key, never the corpus's
    doc = json.loads(body)
    trace = doc["id"]
    assert trace != TRACE and len(trace) == 32 and re.fullmatch(r"[0-9a-f]{32}", trace)
    assert doc["name"] == f"load-test-trace-{trace}"
    span, gen = doc["observations"]
    assert span["trace_id"] == gen["trace_id"] == trace
    assert gen["parent_observation_id"] == span["id"] != OBS1
    # a minted UUID keeps its dashes where they were
    assert [m.start() for m in re.finditer("-", span["id"])] == [8, 13, 18, 23]
    assert tpl.trace_id(serial_hex(7)).decode() == trace


def test_ids_are_unique_across_serials_and_workers() -> None:
    # 4 workers x 300 requests: every trace and observation id distinct
    traces, observations = set(), set()
    stamps = Stamps()
    for worker in range(4):
        tpl = _build(_ingest(), worker=worker, nonce=99)
        for serial in range(300):
            doc = json.loads(_split(tpl.render(serial_hex(serial), 0, b"", stamps.iso))[2])
            traces.add(doc["id"])
            observations.update(o["id"] for o in doc["observations"])
    assert len(traces) == 1200
    assert len(observations) == 2400


def test_runs_differ_by_nonce() -> None:
    # the same worker and serial in two runs mint different ids
    a = _build(_ingest(), nonce=1).trace_id(serial_hex(0))
    b = _build(_ingest(), nonce=2).trace_id(serial_hex(0))
    assert a != b


@settings(max_examples=200, deadline=None)
@given(
    a=st.tuples(st.integers(0, 255), st.integers(0, rewrite.MAX_SERIAL)),
    b=st.tuples(st.integers(0, 255), st.integers(0, rewrite.MAX_SERIAL)),
)
def test_minting_is_injective(a: tuple[int, int], b: tuple[int, int]) -> None:
    # the ids a rendered request carries (its trace's, its two observations') are the same
    # for two requests only when both came from the same worker with the same serial
    def ids(worker: int, serial: int) -> tuple[str, ...]:
        tpl = _build(_ingest(), worker=worker, nonce=5)
        doc = json.loads(_split(tpl.render(serial_hex(serial), 0, b"", Stamps().iso))[2])
        found = (doc["id"], *(o["id"] for o in doc.get("observations", [])))
        assert len(set(found)) == len(found)  # within one request, all different
        return found

    first, second = ids(*a), ids(*b)
    assert (first == second) == (a == b)
    assert not set(first) & set(second) or a == b


def test_timestamps_move_by_the_delta() -> None:
    # a delta of 30 days and 1.5 s moves every timestamp by exactly that
    delta = 30 * 86_400_000 + 1_500
    doc = json.loads(_split(_build(_ingest()).render(serial_hex(1), delta, b"", Stamps().iso))[2])

    def ms(text: str) -> int:
        return int(datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%f%z").timestamp() * 1000)

    assert ms(doc["timestamp"]) == ms(STAMP1) + delta
    assert ms(doc["observations"][1]["end_time"]) == ms(STAMP2) + delta
    assert doc["observations"][1]["end_time"].endswith("Z")


def test_timestamps_kept_when_the_corpus_has_no_start() -> None:
    body = _split(_build(_ingest(), created_ms=None).render(serial_hex(1), 10**9, b"", str.encode))[
        2
    ]
    assert STAMP1.encode() in body and STAMP2.encode() in body


@pytest.mark.parametrize(
    "ms",
    [
        0,  # the epoch
        1767225600000,  # 2026-01-01T00:00:00.000Z
        1767225600999,  # the last millisecond of a second
        1767225601000,  # and the first of the next
        4102444799999,  # 2099-12-31T23:59:59.999Z
    ],
)
def test_stamps_format_like_datetime(ms: int) -> None:
    expected = datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    stamps = Stamps()
    assert stamps.iso(ms).decode() == expected
    assert stamps.iso(ms).decode() == expected  # from the per-second cache, too
    assert rewrite.parse_iso_ms(expected) == ms


@settings(max_examples=50, deadline=None)
@given(
    base=st.integers(0, 4102444799999 - 10_000),
    offsets=st.lists(st.integers(0, 10_000), min_size=1, max_size=300),
)
def test_stamps_made_once_and_looked_up_after_stay_exact(base: int, offsets: list[int]) -> None:
    # a run's timestamps revisit the same milliseconds over and over: the first time is
    # formatted, later ones are looked up; both must read as datetime writes them
    stamps = Stamps()
    for ms in [base + o for o in offsets * 2]:
        expected = datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")
        assert stamps.iso(ms).decode() == expected[:-3] + "Z"


def test_stamps_stay_exact_after_the_lookups_are_cleared() -> None:
    stamps = Stamps()
    start = 1767225600000
    first = [stamps.iso(start + i) for i in range(70_000)]  # past what is kept: cleared once
    again = [stamps.iso(start + i) for i in range(0, 70_000, 997)]
    assert again == first[::997]
    assert first[-1] == b"2026-01-01T00:01:09.999Z"


@pytest.mark.parametrize(
    "text",
    ["2026-01-01T00:00:00Z", "2026-01-01 00:00:00.000Z", "2026-13-01T00:00:00.000Z", "x" * 24],
)
def test_parse_iso_refuses_other_text(text: str) -> None:
    assert rewrite.parse_iso_ms(text) is None


def test_parse_iso_takes_ascii_digits_only_even_for_a_second_it_knows() -> None:
    # '²' is a digit to str.isdigit() but not to int(): once the second was cached, such
    # a timestamp in a record used to raise ValueError out of the template builder
    assert rewrite.parse_iso_ms("2026-01-01T00:00:00.000Z") == CREATED_MS
    assert rewrite.parse_iso_ms(b"2026-01-01T00:00:00.000Z") == CREATED_MS
    assert rewrite.parse_iso_ms("2026-01-01T00:00:00.\u00b2\u00b2\u00b2Z") is None
    assert rewrite.parse_iso_ms(b"2026-01-01T00:00:00.\xb2\xb2\xb2Z") is None


def test_reads_name_the_given_trace_or_fall_back_to_the_recorded_one() -> None:
    tpl = _build(_get())
    assert tpl.has_read and not tpl.defines_trace
    line = _split(tpl.render(serial_hex(3), 0, b"f" * 32, Stamps().iso))[0]
    assert line == f"GET /api/public/traces/{'f' * 32} HTTP/1.1"
    assert tpl.read_fallback == TRACE.encode()
    assert b"Content-Length" not in tpl.render(serial_hex(3), 0, b"x", Stamps().iso)


def test_project_is_replaced_and_length_recounted() -> None:
    body = b'{"query":"traces(projectId: \\"proj_loadtest\\")"}'
    start = body.index(b"proj_loadtest")
    record = Record(
        0,
        "graphql",
        "POST",
        "/graphql",
        (),
        body,
        body_ids=((start, len("proj_loadtest"), int(IdKind.PROJECT)),),
    )
    _, headers, out = _split(_build(record, project_id="p-1").render(b"0" * 9, 0, b"", str.encode))
    assert b"p-1" in out and b"proj_loadtest" not in out
    assert headers["content-length"] == str(len(out)) == str(len(body) - 10)


def test_a_body_that_reads_a_trace_counts_its_length_per_request() -> None:
    # a trace reference in a body this record does not ingest: replaced, length recounted
    body = b'{"trace":"' + TRACE.encode() + b'"}'
    record = Record(0, "batch", "POST", "/x", (), body, body_ids=((10, 32, int(IdKind.TRACE_REF)),))
    tpl = _build(record)
    for read in (b"short-trace-id", b"a-much-longer-trace-id-than-the-recorded-one-was"):
        _, headers, out = _split(tpl.render(b"0" * 9, 0, read, str.encode))
        assert json.loads(out)["trace"] == read.decode()
        assert headers["content-length"] == str(len(out))


@pytest.mark.parametrize(
    ("span", "message"),
    [
        ((7, 8, int(IdKind.TRACE)), "cannot be rewritten uniquely"),  # an 8-character id
        ((7, 400, int(IdKind.TRACE)), "out of range"),  # a span past the body's end
    ],
)
def test_unsafe_records_are_refused(span: tuple[int, int, int], message: str) -> None:
    record = Record(0, "ingest", "POST", "/x", (), b'{"id":"abcdefgh"}', body_ids=(span,))
    with pytest.raises(RewriteError, match=message):
        _build(record)


def test_bundled_corpus_templates_round_trip(tmp_path: Path) -> None:
    # every record of a mixed synthetic corpus renders to a parseable request of the same size
    from capture.synth import SynthSpec, write_synth_corpus

    path = write_synth_corpus(SynthSpec("mixed", 40, 3 * 1_000_000_000, 4), tmp_path / "m.atc")
    stamps = Stamps()
    with CorpusReader(path) as reader:
        records = list(reader)
    seen = set()
    for serial, record in enumerate(records):
        tpl = _build(record, project_id="proj_loadtest")
        out = tpl.render(serial_hex(serial), 0, b"", stamps.iso)
        line, headers, body = _split(out)
        assert line.startswith(f"{record.method} ")
        if record.body:
            json.loads(body)
            assert int(headers["content-length"]) == len(body) == len(record.body)
        seen.add(record.endpoint)
    assert {"ingest", "list", "get"} <= seen


def test_serial_digits_cover_long_runs() -> None:
    # 9 hex digits: 68 billion requests per worker before a serial would repeat
    assert rewrite.MAX_SERIAL == 16**9 - 1
    assert len(serial_hex(rewrite.MAX_SERIAL)) == rewrite.SERIAL_DIGITS
    assert len({serial_hex(n) for n in itertools.islice(range(10**6), 0, 10**6, 997)}) == 1004


@pytest.mark.parametrize(("method", "head"), [("HEAD", True), ("GET", False), ("POST", False)])
def test_a_template_knows_when_its_response_has_no_body(method: str, head: bool) -> None:
    # the answer to HEAD ends with its head, whatever its Content-Length says
    assert _build(_get()._replace(method=method)).head is head


# --- templates against a reference rewrite -------------------------------------------------

_IDS = [TRACE, OBS1, OBS2, "0123456789abcdef0123456789abcdef", "a7d4e1c2b-4bbb-8ccc-0123456789ab"]
_STAMPS = [STAMP1, STAMP2, "2026-01-01T00:00:00Z", "2026-02-30T00:00:00.000Z"]
_KINDS = [IdKind.TRACE, IdKind.TRACE_REF, IdKind.OBSERVATION, IdKind.OBSERVATION_REF]
_filler = st.text(alphabet='abc{}":, %', max_size=6)
_span = st.one_of(
    st.tuples(st.sampled_from(_IDS), st.sampled_from(_KINDS)),
    st.tuples(st.sampled_from(_STAMPS), st.just(IdKind.TIMESTAMP)),
    st.tuples(st.sampled_from(["proj_a", "p"]), st.just(IdKind.PROJECT)),
)


def _text(parts: list[tuple[str, tuple[str, IdKind]]], tail: str) -> tuple[bytes, tuple[Any, ...]]:
    text, spans = "", []
    for filler, (value, kind) in parts:
        text += filler
        spans.append((len(text), len(value), int(kind)))
        text += value
    return (text + tail).encode(), tuple(spans)


def _reference(
    record: Record, serial: bytes, delta_ms: int, read: bytes, created_ms: int | None,
    project_id: str | None, minter: IdMinter,
) -> bytes:  # fmt: skip
    """What a request must be, span by span, written without templates or pieces."""
    texts = ((record.path.encode(), record.path_ids), (bytes(record.body), record.body_ids))
    ordinal: dict[bytes, int] = {}
    defined: dict[int, set[bytes]] = {IdKind.TRACE: set(), IdKind.OBSERVATION: set()}
    for text, spans in texts:
        for start, length, kind in spans:
            if kind in (IdKind.TRACE, IdKind.OBSERVATION):
                defined[kind].add(text[start : start + length])
                ordinal.setdefault(text[start : start + length], len(ordinal))

    def rewritten(text: bytes, spans: Any) -> bytes:
        out, pos = b"", 0
        for start, length, kind in spans:
            raw = text[start : start + length]
            ms = rewrite.parse_iso_ms(raw)
            refers_to = {IdKind.TRACE_REF: IdKind.TRACE, IdKind.OBSERVATION_REF: IdKind.OBSERVATION}
            if kind in (IdKind.TRACE, IdKind.OBSERVATION) or raw in defined.get(
                refers_to.get(kind, -1), ()
            ):
                raw = minter.prefix(raw.decode()) + serial + b"%03x" % ordinal[raw]
            elif kind == IdKind.TRACE_REF:
                raw = read
            elif kind == IdKind.TIMESTAMP and created_ms is not None and ms is not None:
                raw = Stamps().iso(ms + delta_ms)
            elif kind == IdKind.PROJECT and project_id is not None:
                raw = project_id.encode()
            out, pos = out + text[pos:start] + raw, start + length
        return out + text[pos:]

    enc = _encoder()
    path, body = (rewritten(text, spans) for text, spans in texts)
    start = enc.request_start(record.method) + path
    if body or record.method in ("POST", "PUT", "PATCH"):
        return start + enc.head_end(record.headers, len(body)) + body
    return start + enc.head_end(record.headers, rewrite.NO_BODY)


@settings(max_examples=300, deadline=None)
@given(
    method=st.sampled_from(["GET", "POST", "HEAD", "DELETE", "PUT"]),
    path_id=st.one_of(st.none(), st.tuples(st.sampled_from(_IDS), st.sampled_from(_KINDS))),
    body=st.lists(st.tuples(_filler, _span), max_size=8),
    tail=_filler,
    created=st.booleans(),
    project_id=st.one_of(st.none(), st.just("proj_loadtest")),
    serial=st.integers(0, 2**36 - 1),
    delta_ms=st.integers(-(10**9), 10**9),
)
def test_a_template_renders_what_a_span_by_span_rewrite_writes(
    method: str, path_id: Any, body: Any, tail: str, created: bool, project_id: str | None,
    serial: int, delta_ms: int,
) -> None:  # fmt: skip
    # Random records (ids defined and referenced in any order, in the path and the body,
    # timestamps valid and not, project ids): the template's bytes, whatever the serial,
    # delta and read, are those of a naive rewrite of each span in place.
    path, path_ids = _text([("/api/public/traces/", path_id)] if path_id else [], "")
    body_bytes, body_ids = _text(body, tail)
    record = Record(
        offset_ns=5_000_000_000, endpoint="e", method=method,
        path=path.decode() or "/api/public/traces", headers=(("Accept", "*/*"),),
        body=body_bytes, path_ids=path_ids, body_ids=body_ids, trace=TRACE,
    )  # fmt: skip
    created_ms = CREATED_MS if created else None
    minter = IdMinter(3, 9)
    tpl = build_template(
        record, request_start=_encoder().request_start, head_end=_encoder().head_end,
        minter=minter, created_ms=created_ms, project_id=project_id,
    )  # fmt: skip
    tag = serial_hex(serial)
    read = b"fedcba9876543210fedcba9876543210"
    got = tpl.render(tag, delta_ms, read, Stamps().iso)
    assert got == _reference(record, tag, delta_ms, read, created_ms, project_id, minter)
    unresolved = [
        (text, s) for text, spans in ((path, path_ids), (body_bytes, body_ids)) for s in spans
        if s[2] == IdKind.TRACE_REF and text[s[0] : s[0] + s[1]] not in {
            t[s0 : s0 + n] for t, sp in ((path, path_ids), (body_bytes, body_ids))
            for s0, n, k in sp if k == IdKind.TRACE
        }
    ]  # fmt: skip
    assert tpl.has_read == bool(unresolved)
