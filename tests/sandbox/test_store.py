"""The SQLite store on its own: merge upserts, placeholders, durations, queries, isolation."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from sandbox import store
from sandbox.payload import parse_event, parse_trace

NOW = 1_767_225_600_000  # 2026-01-01T00:00:00Z


@pytest.fixture
def conn(tmp_path: Path) -> sqlite3.Connection:
    return store.connect(tmp_path / "t.db")


def _trace(trace_id: str, second: int, **fields: object) -> dict[str, object]:
    return {
        "id": trace_id,
        "timestamp": f"2026-01-01T00:00:{second:02d}Z",
        "observations": [
            {"id": f"{trace_id}-a", "type": "SPAN", "start_time": "2026-01-01T00:00:00Z",
             "end_time": "2026-01-01T00:00:00.250Z"},
            {"id": f"{trace_id}-b", "type": "GENERATION", "start_time": "2026-01-01T00:00:00.100Z",
             "end_time": "2026-01-01T00:00:01Z"},
        ],
        **fields,
    }  # fmt: skip


def _write(conn: sqlite3.Connection, project: str, body: dict[str, object]) -> None:
    store.write(conn, [(project, kind, rec) for kind, rec in parse_trace(body, NOW)])


def test_duration_is_latest_end_minus_earliest_start(conn: sqlite3.Connection) -> None:
    _write(conn, "p", _trace("t1", 1))
    trace = store.get_trace(conn, "p", "t1")
    assert trace is not None
    assert trace["durationMs"] == 1000
    assert [o["id"] for o in trace["observations"]] == ["t1-a", "t1-b"]


def test_upsert_is_idempotent_and_merges(conn: sqlite3.Connection) -> None:
    _write(conn, "p", _trace("t1", 1, name="first", input={"q": 1}))
    _write(conn, "p", _trace("t1", 1, name="first", input={"q": 1}))
    assert store.count_traces(conn, "p") == 1
    # a later upsert without input keeps it, and overwrites the name it gives
    _write(conn, "p", {"id": "t1", "name": "second"})
    trace = store.get_trace(conn, "p", "t1")
    assert trace is not None
    assert trace["name"] == "second" and trace["input"] == {"q": 1}
    assert len(trace["observations"]) == 2


def test_update_event_fills_in_without_erasing(conn: sqlite3.Connection) -> None:
    events = [
        {"id": "1", "type": "span-create",
         "body": {"id": "s", "traceId": "t", "name": "step", "startTime": "2026-01-01T00:00:00Z"}},
        {"id": "2", "type": "span-update",
         "body": {"id": "s", "endTime": "2026-01-01T00:00:03Z", "output": {"ok": True}}},
    ]  # fmt: skip
    items = [("p", k, r) for e in events for k, r in parse_event(e, NOW)]
    store.write(conn, items)
    trace = store.get_trace(conn, "p", "t")
    assert trace is not None, "an observation creates a placeholder trace"
    (span,) = trace["observations"]
    assert span["name"] == "step" and span["output"] == {"ok": True}
    assert span["endTime"] == "2026-01-01T00:00:03.000Z"
    assert trace["durationMs"] == 3000


def test_projects_are_isolated_even_with_equal_ids(conn: sqlite3.Connection) -> None:
    _write(conn, "a", _trace("same", 1, name="from-a"))
    _write(conn, "b", _trace("same", 2, name="from-b"))
    a, b = store.get_trace(conn, "a", "same"), store.get_trace(conn, "b", "same")
    assert a is not None and b is not None
    assert (a["name"], b["name"]) == ("from-a", "from-b")
    assert store.count_traces(conn, "a") == 1
    assert store.get_trace(conn, "c", "same") is None


def test_list_filters_pages_and_orders_newest_first(conn: sqlite3.Connection) -> None:
    for i in range(7):
        _write(conn, "p", _trace(f"t{i}", i, name="test run" if i % 2 else "other"))
    traces, total = store.list_traces(conn, "p", limit=3, page=1)
    assert total == 7 and [t["id"] for t in traces] == ["t6", "t5", "t4"]
    assert traces[0]["observations"] == ["t6-a", "t6-b"]
    traces, _ = store.list_traces(conn, "p", limit=3, page=3)
    assert [t["id"] for t in traces] == ["t0"]
    traces, total = store.list_traces(conn, "p", limit=50, page=1, search="TEST")
    assert total == 3 and {t["id"] for t in traces} == {"t1", "t3", "t5"}
    _, total = store.list_traces(conn, "p", limit=50, page=1, name="other")
    assert total == 4
    _, total = store.list_traces(conn, "p", limit=50, page=1, from_ms=NOW + 2000, to_ms=NOW + 5000)
    assert total == 3  # seconds 2, 3, 4: from inclusive, to exclusive
    # search is a substring, not a pattern
    _, total = store.list_traces(conn, "p", limit=50, page=1, search="%")
    assert total == 0


def test_metrics_buckets_count_and_average(conn: sqlite3.Connection) -> None:
    _write(conn, "p", _trace("t1", 1))
    _write(conn, "p", {"id": "t2", "timestamp": "2026-01-01T01:30:00Z"})
    _write(conn, "p", {"id": "old", "timestamp": "2025-01-01T00:00:00Z"})
    days = store.trace_metrics(conn, "p", "day", NOW + 3_600_000)
    assert days == [{"bucket": "2026-01-01T00:00:00.000Z", "count": 2, "avgDurationMs": 1000.0}]
    hours = store.trace_metrics(conn, "p", "hour", NOW + 3_600_000)
    assert [(h["bucket"][11:13], h["count"]) for h in hours] == [("00", 1), ("01", 1)]
    assert hours[1]["avgDurationMs"] is None  # a trace without observations has no duration
