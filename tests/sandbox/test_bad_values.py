"""Values the sandbox cannot keep faithfully are refused at the door with 400 (or a 207 error
for that event), and reads answer for any row the store may hold."""

from __future__ import annotations

import json
import math
import sqlite3
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sandbox import strict_json
from sandbox.payload import PayloadError, format_timestamp_ms, parse_timestamp_ms

from .conftest import PROJECT_A, make_trace

POISON = ["9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+23:59"]


@pytest.mark.parametrize("stamp", POISON)
def test_out_of_range_timestamps_are_refused_and_reads_keep_working(api: Any, stamp: str) -> None:
    trace = make_trace(1, timestamp=stamp)
    reply = api.post("/api/public/traces", trace)
    assert reply.status == 400 and reply.json["field"] == "body.timestamp", reply.body
    obs = make_trace(1)
    obs["observations"][0]["start_time"] = stamp
    reply = api.post("/api/public/traces", obs)
    assert reply.status == 400 and reply.json["field"] == "body.observations[0].start_time"
    good = make_trace(1)
    batch = {
        "batch": [
            {"id": "poison", "type": "trace-create", "timestamp": stamp, "body": {"id": "p1"}},
            {"id": "poison-body", "type": "trace-create", "body": {"id": "p2", "timestamp": stamp}},
            {"id": "fine", "type": "trace-create", "body": {"id": good["id"]}},
        ]
    }
    reply = api.post("/api/public/ingestion", batch)
    assert reply.status == 207
    assert [e["id"] for e in reply.json["errors"]] == ["poison", "poison-body"]
    assert [s["id"] for s in reply.json["successes"]] == ["fine"]
    api.flush()
    assert api.get("/api/public/traces?limit=100").status == 200
    assert api.get("/api/public/metrics/traces?period=hour").status == 200
    assert api.get(f"/api/public/traces/{good['id']}").status == 200


_STAMPS = st.builds(
    lambda moment, minutes: moment.replace(tzinfo=timezone(timedelta(minutes=minutes))),
    st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59)),
    st.integers(-23 * 60 - 59, 23 * 60 + 59),
)


@settings(max_examples=300)
@given(_STAMPS)
def test_every_accepted_timestamp_can_be_written_back(moment: datetime) -> None:
    # independent of the code: the UTC instant is either inside datetime's range or not
    try:
        utc = moment.astimezone(UTC)
    except OverflowError:
        utc = None
    try:
        ms = parse_timestamp_ms(moment.isoformat(), "t")
    except PayloadError:
        assert utc is None or utc.year in (1, 9999)  # only at the edges of the range
        return
    assert utc is not None
    text = format_timestamp_ms(ms)
    assert text is not None and parse_timestamp_ms(text, "t") == ms
    assert abs(datetime.fromisoformat(text).timestamp() - utc.timestamp()) < 0.001


@pytest.mark.parametrize(
    "body",
    [
        b'{"id": "n1", "metadata": {"n": 18446744073709551616}}',  # 2**64
        b'{"id": "n2", "metadata": {"n": -9223372036854775809}}',  # -(2**63) - 1
        b'{"id": "n3", "input": NaN}',
        b'{"id": "n4", "input": Infinity}',
        b'{"id": "n5", "input": [-Infinity]}',
        b'{"id": "n6", "output": 1e400}',
    ],
)
def test_numbers_the_pipeline_cannot_keep_are_400(api: Any, body: bytes) -> None:
    reply = api.post("/api/public/traces", body)
    assert reply.status == 400, reply.body
    assert reply.json["field"] == "body"


def test_the_largest_numbers_it_keeps_come_back_exactly(api: Any) -> None:
    trace = make_trace(0, metadata={"max": 2**63 - 1, "min": -(2**63), "f": 1.7976931348623157e308})
    api.ingest(trace)
    api.flush()
    stored = api.get(f"/api/public/traces/{trace['id']}").json
    assert stored["metadata"] == trace["metadata"]


@pytest.mark.parametrize(
    "value", [b"NaN", b"Infinity", b"-Infinity", b"1e999", b"99999999999999999999"]
)
def test_admin_pods_refuses_non_finite_and_huge_numbers(api: Any, value: bytes) -> None:
    reply = api.post("/admin/pods", b'{"pods": ' + value + b"}", key=api.ADMIN)
    assert reply.status == 400, reply.body


def test_graphql_refuses_non_finite_numbers(api: Any) -> None:
    body = b'{"query": "{ project(id: \\"proj-a\\") { id } }", "variables": {"x": NaN}}'
    reply = api.post("/graphql", body)
    assert reply.status == 400 and reply.json["errors"]


_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(strict_json.MIN_INT, strict_json.MAX_INT)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=200)
@given(
    _JSON,
    st.integers(min_value=strict_json.MAX_INT + 1) | st.integers(max_value=strict_json.MIN_INT - 1),
)
def test_strict_json_keeps_what_fits_and_refuses_what_does_not(value: Any, big: int) -> None:
    assert strict_json.loads(json.dumps(value)) == value
    with pytest.raises(strict_json.NotStorable):
        strict_json.loads(json.dumps([value, big]))
    with pytest.raises(strict_json.NotStorable):
        strict_json.loads(json.dumps({"v": value, "x": math.inf}))


def test_reads_answer_for_any_stored_row(launch: Any, connect: Any, tmp_path: Path) -> None:
    # rows no longer accepted at the door, as an older sandbox may have stored them
    db = tmp_path / "old.db"
    sb = launch(db=db)
    api = connect(sb)
    api.ingest(make_trace(1))
    api.flush()
    rows = [
        ("far-future", 10**15, "[1, NaN]", '{"k": Infinity}', "[1]", "not a number"),
        ("far-past", -(10**15), "{not json", None, '"a string"', None),
        ("text-time", "yesterday", None, None, None, 1.5),
    ]
    conn = sqlite3.connect(db, isolation_level=None, timeout=30)
    with conn:
        for trace_id, ts, input_, metadata, extra, duration in rows:
            conn.execute(
                "INSERT INTO traces (project_id, id, ts_ms, input, metadata, extra, duration_ms, "
                "created_ms, updated_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (PROJECT_A, trace_id, ts, input_, metadata, extra, duration, ts, ts),
            )
            conn.execute(
                "INSERT INTO observations (project_id, id, trace_id, type, start_ms, end_ms, "
                "usage, created_ms, updated_ms) VALUES (?, ?, ?, 'SPAN', ?, ?, ?, 0, 0)",
                (PROJECT_A, f"{trace_id}-o", trace_id, ts, ts, "{bad"),
            )
    conn.close()
    listing = api.get("/api/public/traces?limit=100")
    assert listing.status == 200
    json.loads(listing.body)  # valid JSON, no NaN
    for trace_id, *_ in rows:
        reply = api.get(f"/api/public/traces/{trace_id}")
        assert reply.status == 200, reply.body
        assert reply.json["timestamp"] is None or trace_id == "text-time"
    assert api.get("/api/public/traces/far-future").json["input"] == "[1, NaN]"  # as stored
    for period in ("hour", "day"):
        assert api.get(f"/api/public/metrics/traces?period={period}").status == 200
    query = '{ traces(projectId: "proj-a", limit: 50) { id timestamp input durationMs } }'
    assert api.post("/graphql", {"query": query}).status == 200


@pytest.mark.parametrize(
    "body",
    [
        {"pods": 1, "podRate": 1.5e308},  # X(N) would be Infinity, served as invalid JSON
        {"pods": 1, "podRate": 1e9 * 1.01},
        {"pods": 1, "queueDepth": 10**7},
        {"pods": 257},
    ],
)
def test_admin_pods_refuses_a_model_beyond_its_limits(api: Any, body: dict[str, Any]) -> None:
    reply = api.post("/admin/pods", body, key=api.ADMIN)
    assert reply.status == 400, reply.body


def test_batch_and_id_sizes_are_bounded(api: Any) -> None:
    events = [
        {"id": f"e{i}", "type": "trace-create", "body": {"id": f"t{i}"}} for i in range(10_001)
    ]
    reply = api.post("/api/public/ingestion", {"batch": events})
    assert reply.status == 400 and reply.json["field"] == "batch"
    reply = api.post("/api/public/traces", {"id": "x" * 513})
    assert reply.status == 400 and reply.json["field"] == "body.id"
    assert api.post("/api/public/traces", {"id": "x" * 512}).status == 200
