"""find_spans against synth's own spans and hand-built bodies; redaction's invariants."""

from __future__ import annotations

import json
import string
import subprocess
import sys
from pathlib import Path

import production as prod
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from capture import spans
from capture.corpus import CorpusReader, IdKind
from capture.redact import KEEP_KEYS, redact_body, redact_path, redact_text
from capture.spans import find_spans, mintable
from corpora import bundled_path

TRACE_ID = "5f0c6a0e2d7b4b0c9c7a1e3f2b6d8a41"
OBS_ID = "1c9e3e52-8f0e-4c57-9a3d-6f1f2b7c4d10"
STAMP = "2026-03-04T05:06:07.890Z"


@pytest.mark.parametrize("workload", ["ingestion", "mixed", "query"])
def test_find_spans_agrees_with_synth_on_every_bundled_record(workload: str) -> None:
    # synth marks spans while writing each body; find_spans finds them by key name
    with CorpusReader(bundled_path(workload)) as reader:
        for record in reader:
            spans = find_spans(bytes(record.body), record.path)
            assert spans.body_ids == tuple(record.body_ids)
            assert spans.path_ids == tuple(record.path_ids)
            if record.trace is not None:
                assert spans.trace == record.trace


def _at(body: bytes, span: tuple[int, int, int]) -> tuple[str, int]:
    start, length, kind = span
    return body[start : start + length].decode(), kind


def test_trace_body_spans_by_key() -> None:
    body = json.dumps(
        {
            "id": TRACE_ID,
            "name": f"run {TRACE_ID}",
            "timestamp": STAMP,
            "sessionId": "s-1",
            "observations": [
                {"id": OBS_ID, "traceId": TRACE_ID, "type": "SPAN", "startTime": STAMP},
                {"id": "short", "parentObservationId": OBS_ID, "type": "EVENT"},
                {"id": "x", "startTime": "2026-03-04T05:06:07Z"},  # not 24 bytes: kept
            ],
        }
    ).encode()
    spans = find_spans(body, "/api/public/traces")
    found = [_at(body, s) for s in spans.body_ids]
    assert found == [
        (TRACE_ID, IdKind.TRACE),
        (TRACE_ID, IdKind.TRACE_REF),  # inside the name, as synth marks it
        (STAMP, IdKind.TIMESTAMP),
        (OBS_ID, IdKind.OBSERVATION),
        (TRACE_ID, IdKind.TRACE_REF),
        (STAMP, IdKind.TIMESTAMP),
        (OBS_ID, IdKind.OBSERVATION_REF),
    ]
    assert spans.trace == TRACE_ID


def test_batch_spans_follow_event_types() -> None:
    event_id = "9b1c3e52-8f0e-4c57-9a3d-6f1f2b7c4d10"
    body = json.dumps(
        {
            "batch": [
                {
                    "id": event_id,
                    "type": "trace-create",
                    "timestamp": STAMP,
                    "body": {"id": TRACE_ID},
                },
                {"id": OBS_ID, "type": "span-update", "body": {"id": OBS_ID, "traceId": TRACE_ID}},
            ]
        }
    ).encode()
    found = [_at(body, s) for s in find_spans(body, "/api/public/ingestion").body_ids]
    assert found == [
        (event_id, IdKind.OBSERVATION),
        (STAMP, IdKind.TIMESTAMP),
        (TRACE_ID, IdKind.TRACE),
        (OBS_ID, IdKind.OBSERVATION),  # the event's own id
        (OBS_ID, IdKind.OBSERVATION_REF),  # an update names an observation made before
        (TRACE_ID, IdKind.TRACE_REF),
    ]


def test_short_ids_are_left_as_recorded_with_their_references() -> None:
    body = b'{"id":"t1","observations":[{"id":"o1","trace_id":"t1","type":"SPAN"}]}'
    assert find_spans(body, "/api/public/traces").body_ids == ()
    assert not mintable("t1") and mintable(TRACE_ID) and mintable(OBS_ID)


def test_path_spans() -> None:
    path = f"/api/public/traces/{TRACE_ID}"
    assert find_spans(b"", path).path_ids == ((19, 32, int(IdKind.TRACE_REF)),)
    assert find_spans(b"", "/api/projects/p-1").path_ids == ((14, 3, int(IdKind.PROJECT)),)
    assert find_spans(b"", "/x?projectId=abc&limit=1").path_ids == ((13, 3, int(IdKind.PROJECT)),)


# --- redaction ------------------------------------------------------------------------------

text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), max_codepoint=0x1F6FF), max_size=40
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4),
    max_leaves=12,
)


def _strings(value: object, key: str | None = None) -> list[tuple[str | None, str]]:
    if isinstance(value, str):
        return [(key, value)]
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _strings(v, k)]
    if isinstance(value, list):
        return [p for v in value for p in _strings(v, key)]
    return []


def _skeleton(value: object) -> object:
    if isinstance(value, str):
        return len(value)
    if isinstance(value, dict):
        return {k: _skeleton(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_skeleton(v) for v in value]
    return value


def _same_class(a: str, b: str) -> bool:
    for x, y in zip(a, b, strict=True):
        for cls in (string.ascii_lowercase, string.ascii_uppercase, string.digits):
            if (x in cls) != (y in cls):
                return False
        if x.isascii() and not x.isalnum() and x != y:
            return False
        if len(x.encode()) != len(y.encode()):
            return False
    return True


@settings(max_examples=200, deadline=None)
@given(doc=json_values, ascii_only=st.booleans())
def test_redaction_keeps_structure_sizes_and_classes(doc: object, ascii_only: bool) -> None:
    body = json.dumps(
        {"input": doc, "model": "gpt-4o", "usage": {"input": 12}}, ensure_ascii=ascii_only
    ).encode()
    red = redact_body(body)
    assert len(red) == len(body)
    before, after = json.loads(body), json.loads(red)
    assert _skeleton(after) == _skeleton(before)  # keys, numbers, nulls, string lengths
    assert after["model"] == "gpt-4o" and after["usage"] == {"input": 12}
    for (key, old), (_k, new) in zip(_strings(before), _strings(after), strict=True):
        if key in KEEP_KEYS:
            assert new == old
        else:
            assert _same_class(old, new), (old, new)
    assert redact_body(body) == red  # deterministic: filler depends on position and class


def test_redaction_keeps_ids_and_timestamps_in_text() -> None:
    body = json.dumps(
        {
            "id": TRACE_ID,
            "name": f"load-test-trace-{TRACE_ID}",
            "timestamp": STAMP,
            "output": "Secret answer 42",
        }
    ).encode()
    after = json.loads(redact_body(body))
    assert after["id"] == TRACE_ID and after["timestamp"] == STAMP
    assert after["name"].endswith(TRACE_ID) and not after["name"].startswith("load")
    assert after["output"] != "Secret answer 42" and len(after["output"]) == 16
    assert redact_body(body) == redact_body(body)  # deterministic


def test_redact_opaque_and_paths() -> None:
    assert redact_body(b"name=Alice&x=1") == redact_text("name=Alice&x=1").encode()
    assert redact_body(b"\xff\xfe\x00") == b"***"
    path = redact_path("/api/public/traces?search=Refund%20please&limit=20&page=2")
    assert path.endswith("&limit=20&page=2") and "Refund" not in path


def test_redacted_import_leaves_no_original_text(tmp_path: Path) -> None:
    reqs = list(prod.requests(seed=11, rate=40, duration_s=3))
    gor = tmp_path / "fleet.gor"
    prod.write_gor(reqs, str(gor), responses=False)
    run = [sys.executable, "-c", "from capture.cli import main; main()"]
    plain, red = tmp_path / "plain.atc", tmp_path / "red.atc"
    for out, extra in ((plain, []), (red, ["--redact"])):
        done = subprocess.run(
            [*run, "import", "goreplay", str(gor), "-o", str(out), *extra],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
    dump = subprocess.run(
        [*run, "dump", str(red), "--jsonl"], capture_output=True, text=True, timeout=60
    )
    assert dump.returncode == 0
    decoded = "\n".join(
        json.dumps(json.loads(line), ensure_ascii=False) for line in dump.stdout.splitlines()
    )
    for word in (
        "zebra",
        "quartz",
        "Ünïcode",
        "naïve",
        "日本語",
        "prompt",
        "Customer",
        "alice@example.com",
        prod.SECRET,
    ):
        assert word not in decoded, word
    with CorpusReader(plain) as a, CorpusReader(red) as b:
        pairs = list(zip(a, b, strict=True))
    assert pairs
    for x, y in pairs:
        assert len(x.body) == len(y.body) and x.offset_ns == y.offset_ns
        assert x.body_ids == y.body_ids  # ids and timestamps kept, at the same bytes
        for start, length, _kind in x.body_ids:
            assert x.body[start : start + length] == y.body[start : start + length]
        if x.endpoint == "ingest":
            dx, dy = json.loads(x.body), json.loads(y.body)
            assert dy["metadata"]["model"] == dx["metadata"]["model"]
            assert [o.get("usage") for o in dy["observations"]] == [
                o.get("usage") for o in dx["observations"]
            ]


def test_path_spans_of_a_long_target_are_found_but_not_remembered() -> None:
    before = spans._remembered_path_spans.cache_info().currsize
    long_path = f"/api/public/traces/{TRACE_ID}?q=" + "x" * 5000
    for _ in range(2):  # the second time as the first: found again, never kept
        assert find_spans(b"", long_path).path_ids == ((19, 32, int(IdKind.TRACE_REF)),)
    assert spans._remembered_path_spans.cache_info().currsize == before
    short = f"/api/public/traces/{TRACE_ID}?q=remembered"
    assert spans.path_spans(short) == spans.path_spans(short)
    assert spans._remembered_path_spans.cache_info().currsize == before + 1
