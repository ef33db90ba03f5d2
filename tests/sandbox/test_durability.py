"""The sandbox never acknowledges what it then loses: a store that cannot write (a lock held
by another connection, a full database) stops acknowledgements (503 with Retry-After, /ready
503) and every trace acknowledged before is written once it can be, across a restart too."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

from sandbox import store
from sandbox.writer import spill_path

from .conftest import PROJECT_A, make_trace

BOUND_SECONDS = 90.0  # each loop below ends by then, on the busiest machine


def _post_until_refused(api: Any, padding: int = 0) -> tuple[list[str], Any]:
    """Post traces until one is refused; (ids acknowledged with 200, the refusal)."""
    acknowledged: list[str] = []
    deadline = time.monotonic() + BOUND_SECONDS
    while time.monotonic() < deadline:
        trace = make_trace(observations=1)
        if padding:
            trace["input"] = {"padding": "x" * padding}
        reply = api.post("/api/public/traces", trace)
        if reply.status != 200:
            return acknowledged, reply
        acknowledged.append(trace["id"])
    raise AssertionError(f"still acknowledging after {BOUND_SECONDS}s")


def _wait_ready(api: Any, status: int) -> None:
    deadline = time.monotonic() + BOUND_SECONDS
    while api.get("/ready", key=None).status != status:
        assert time.monotonic() < deadline, f"/ready never answered {status}"
        time.sleep(0.05)


def _stored_ids(db: Path) -> set[str]:
    conn = store.connect(db, readonly=True)
    try:
        return set(store.trace_ids(conn, PROJECT_A))
    finally:
        conn.close()


def _assert_one_line_summaries(log: str) -> None:
    lines = [line for line in log.splitlines() if "store cannot write" in line]
    assert lines, log[-2000:]
    for line in lines:
        assert len(line) < 400, line  # a summary, never the records
    assert "What is the weather" not in log  # no trace content in the log


def test_a_locked_store_stops_acknowledging_and_loses_nothing(
    launch: Any, connect: Any, tmp_path: Path
) -> None:
    db = tmp_path / "locked.db"
    sb = launch(db=db)
    api = connect(sb)
    api.ingest(make_trace())
    api.flush()
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # another connection holds the write lock
    try:
        acknowledged, refused = _post_until_refused(api)
        assert refused.status == 503, refused.body
        assert int(refused.headers["retry-after"]) >= 1
        assert api.get("/ready", key=None).status == 503
        assert api.get("/health", key=None).status == 200  # alive, only not ready
        batch = {"batch": [{"id": "e1", "type": "trace-create", "body": {"id": "t-batch"}}]}
        assert api.post("/api/public/ingestion", batch).status == 503
        assert api.get("/api/public/traces").status == 200  # reads still work
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    _wait_ready(api, 200)
    api.flush()
    assert set(acknowledged) <= _stored_ids(db)
    assert api.post("/api/public/traces", make_trace()).status == 200
    _assert_one_line_summaries(sb.read_log())
    assert "ROLLBACK failed" not in sb.read_log()


def test_a_full_store_stops_acknowledging_and_keeps_what_it_acknowledged_across_a_restart(
    launch: Any, connect: Any, tmp_path: Path
) -> None:
    db = tmp_path / "full.db"
    sb = launch(db=db, max_db_size=256 * 1024)  # SQLite's max_page_count: a full disk
    api = connect(sb)
    acknowledged, refused = _post_until_refused(api, padding=2000)
    assert refused.status == 503, refused.body
    assert int(refused.headers["retry-after"]) >= 1
    assert api.get("/ready", key=None).status == 503
    assert len(acknowledged) > 20  # the limit was reached by real writes
    log = sb.read_log()
    sb.stop(timeout=120)
    assert sb.returncode == 0
    _assert_one_line_summaries(log)
    assert "database or disk is full" in log
    held = acknowledged and not set(acknowledged) <= _stored_ids(db)
    assert held and spill_path(db).exists()  # what did not fit waits beside the database
    again = launch(db=db)  # no limit now: the spill is written first
    connect(again).flush()
    assert set(acknowledged) <= _stored_ids(db)
    assert not spill_path(db).exists()
