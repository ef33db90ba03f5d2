"""The SQLite store: schema, batched upserts (worker side) and the API's read queries.

One database file in WAL mode: a single writer (the ingestion worker) and any number of
readers (the API processes) that never block each other. Traces and observations are keyed
by ``(project_id, id)``, so two projects may use the same ids without meeting, and every
query is filtered by project first.

Upserts merge: a field the new record gives overwrites, a field it leaves out (``None``)
keeps the stored value. Posting the same trace twice therefore leaves the same row, and a
``span-update`` fills in ``end_time`` without erasing what ``span-create`` wrote. A trace's
``duration_ms`` (latest observation end minus earliest start) is recomputed for every trace
a batch touched. An observation whose trace has not arrived yet creates a placeholder trace,
as the production platform does.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from sandbox.payload import OBSERVATION, TRACE, format_timestamp_ms

SCHEMA_VERSION = 1
DAY_MS = 86_400_000
HOUR_MS = 3_600_000
PERIOD_MS = {"hour": HOUR_MS, "day": DAY_MS}
METRICS_WINDOW_MS = 30 * DAY_MS

_SCHEMA = """
CREATE TABLE IF NOT EXISTS traces (
    project_id TEXT NOT NULL,
    id TEXT NOT NULL,
    name TEXT,
    ts_ms INTEGER NOT NULL,
    input TEXT,
    output TEXT,
    metadata TEXT,
    user_id TEXT,
    session_id TEXT,
    release TEXT,
    version TEXT,
    tags TEXT,
    extra TEXT,
    duration_ms REAL,
    created_ms INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL,
    UNIQUE (project_id, id)
);
CREATE INDEX IF NOT EXISTS traces_by_time ON traces (project_id, ts_ms DESC);
CREATE INDEX IF NOT EXISTS traces_by_name ON traces (project_id, name, ts_ms DESC);
CREATE TABLE IF NOT EXISTS observations (
    project_id TEXT NOT NULL,
    id TEXT NOT NULL,
    trace_id TEXT,
    type TEXT NOT NULL,
    name TEXT,
    start_ms INTEGER,
    end_ms INTEGER,
    completion_start_ms INTEGER,
    parent_observation_id TEXT,
    model TEXT,
    model_parameters TEXT,
    input TEXT,
    output TEXT,
    usage TEXT,
    metadata TEXT,
    level TEXT,
    status_message TEXT,
    version TEXT,
    extra TEXT,
    created_ms INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL,
    UNIQUE (project_id, id)
);
CREATE INDEX IF NOT EXISTS observations_by_trace ON observations (project_id, trace_id, start_ms);
"""

_UPSERT_TRACE = """
INSERT INTO traces (project_id, id, name, ts_ms, input, output, metadata, user_id, session_id,
                    release, version, tags, extra, created_ms, updated_ms)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)
ON CONFLICT (project_id, id) DO UPDATE SET
    name = COALESCE(excluded.name, name),
    ts_ms = COALESCE(?16, ts_ms),
    input = COALESCE(excluded.input, input),
    output = COALESCE(excluded.output, output),
    metadata = COALESCE(excluded.metadata, metadata),
    user_id = COALESCE(excluded.user_id, user_id),
    session_id = COALESCE(excluded.session_id, session_id),
    release = COALESCE(excluded.release, release),
    version = COALESCE(excluded.version, version),
    tags = COALESCE(excluded.tags, tags),
    extra = COALESCE(excluded.extra, extra),
    updated_ms = excluded.updated_ms
"""

_OBS_JSON = ("model_parameters", "input", "output", "usage", "metadata", "extra")
_OBS_PLAIN = (
    "trace_id",
    "type",
    "name",
    "start_ms",
    "end_ms",
    "completion_start_ms",
    "parent_observation_id",
    "model",
    "level",
    "status_message",
    "version",
)
_OBS_COLUMNS = _OBS_PLAIN + _OBS_JSON
_UPSERT_OBSERVATION = f"""
INSERT INTO observations (project_id, id, {", ".join(_OBS_COLUMNS)}, created_ms, updated_ms)
VALUES ({", ".join("?" * (len(_OBS_COLUMNS) + 4))})
ON CONFLICT (project_id, id) DO UPDATE SET
    {", ".join(f"{c} = COALESCE(excluded.{c}, {c})" for c in _OBS_COLUMNS)},
    updated_ms = excluded.updated_ms
"""
_PLACEHOLDER_TRACE = """
INSERT INTO traces (project_id, id, ts_ms, created_ms, updated_ms)
VALUES (?, ?, ?, ?, ?) ON CONFLICT (project_id, id) DO NOTHING
"""
_DURATION = """
UPDATE traces SET duration_ms = (
    SELECT MAX(COALESCE(o.end_ms, o.start_ms)) - MIN(o.start_ms) FROM observations o
    WHERE o.project_id = traces.project_id AND o.trace_id = traces.id
) WHERE project_id = ? AND id = ?
"""

Queued = tuple[str, str, dict[str, Any]]
"""(project_id, TRACE or OBSERVATION, record) as the worker hands it to :func:`write`."""


def connect(
    path: str | Path,
    *,
    readonly: bool = False,
    busy_timeout: float = 30.0,
    max_bytes: int | None = None,
) -> sqlite3.Connection:
    """Open the database; the writer creates the schema, readers are query-only.

    ``busy_timeout`` is how long a statement waits for another connection's lock before it
    fails; ``max_bytes`` caps the database file (SQLite's ``max_page_count``): past it a
    write fails as on a full disk.
    """
    conn = sqlite3.connect(
        str(path), timeout=busy_timeout, isolation_level=None, check_same_thread=False
    )
    conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
    if readonly:
        conn.execute("PRAGMA query_only = 1")
        return conn
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.executescript(_SCHEMA)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    if max_bytes is not None:
        page_size = int(conn.execute("PRAGMA page_size").fetchone()[0])
        conn.execute(f"PRAGMA max_page_count = {max(1, max_bytes // page_size)}")
    return conn


def write(conn: sqlite3.Connection, items: Sequence[Queued]) -> tuple[int, int]:
    """Upsert a batch in one transaction; returns (traces, observations) written.

    Traces and observations go to different tables, so each kind is written with one
    ``executemany`` in its own arrival order (the order that matters for merging updates);
    placeholders and durations come after both.
    """
    trace_rows: list[tuple[Any, ...]] = []
    observation_rows: list[tuple[Any, ...]] = []
    touched: dict[tuple[str, str], int] = {}
    for project, kind, record in items:
        if kind == TRACE:
            trace_rows.append(_trace_row(project, record))
        elif kind == OBSERVATION:
            observation_rows.append(_observation_row(project, record))
            if record["trace_id"] is not None:
                key = (project, record["trace_id"])
                stamp = record["start_ms"] or record["received_ms"]
                touched[key] = min(touched.get(key, stamp), stamp)
    conn.execute("BEGIN IMMEDIATE")
    try:
        if trace_rows:
            conn.executemany(_UPSERT_TRACE, trace_rows)
        if observation_rows:
            conn.executemany(_UPSERT_OBSERVATION, observation_rows)
        if touched:
            conn.executemany(
                _PLACEHOLDER_TRACE,
                [(p, t, ms, ms, ms) for (p, t), ms in touched.items()],
            )
            conn.executemany(_DURATION, list(touched))
        conn.execute("COMMIT")
    except BaseException:
        _rollback(conn)
        raise
    return len(trace_rows), len(observation_rows)


def _rollback(conn: sqlite3.Connection) -> None:
    """Undo the open transaction, if SQLite has not already; a failure to roll back is
    logged, so that the error which made the write fail is the one raised."""
    if not conn.in_transaction:
        return  # SQLite rolled back by itself (as after SQLITE_FULL)
    try:
        conn.execute("ROLLBACK")
    except sqlite3.Error as exc:
        logging.getLogger("sandbox.store").warning(
            "ROLLBACK failed too (%s: %s)", type(exc).__name__, exc
        )


def _trace_row(project: str, record: dict[str, Any]) -> tuple[Any, ...]:
    get = record.get
    received = record["received_ms"]
    ts_ms = record["ts_ms"]
    return (
        project,
        record["id"],
        get("name"),
        ts_ms if ts_ms is not None else received,
        _dump(get("input")),
        _dump(get("output")),
        _dump(get("metadata")),
        get("user_id"),
        get("session_id"),
        get("release"),
        get("version"),
        _dump(get("tags")),
        _dump(get("extra")),
        received,
        received,
        ts_ms,
    )


def _observation_row(project: str, record: dict[str, Any]) -> tuple[Any, ...]:
    get = record.get
    received = record["received_ms"]
    return (
        project,
        record["id"],
        *[get(key) for key in _OBS_PLAIN],
        *[_dump(get(key)) for key in _OBS_JSON],
        received,
        received,
    )


_encode = json.JSONEncoder(separators=(",", ":")).encode


def _dump(value: Any) -> str | None:
    return None if value is None else _encode(value)


def _load(text: Any) -> Any:
    """A stored JSON column decoded; a value that is not valid JSON is shown as stored."""
    if text is None:
        return None
    try:
        return json.loads(text, parse_constant=_no_constant)
    except (ValueError, TypeError, RecursionError):
        return text if isinstance(text, str) else None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


# ----------------------------------------------------------------------------- reads

_TRACE_SELECT = (
    "SELECT id, name, ts_ms, input, output, metadata, user_id, session_id, release, version, "
    "tags, extra, duration_ms, created_ms, updated_ms FROM traces"
)
_OBS_SELECT = (
    "SELECT id, trace_id, type, name, start_ms, end_ms, completion_start_ms, "
    "parent_observation_id, model, model_parameters, input, output, usage, metadata, level, "
    "status_message, version, extra FROM observations"
)


def trace_view(project: str, row: sqlite3.Row | tuple[Any, ...]) -> dict[str, Any]:
    """A trace row as the public API shows it (camelCase, ISO timestamps, JSON decoded)."""
    (id_, name, ts_ms, input_, output, metadata, user_id, session_id, release, version) = row[:10]
    tags, extra, duration_ms, created_ms, updated_ms = row[10:15]
    if not isinstance(duration_ms, int | float) or duration_ms != duration_ms:
        duration_ms = None
    view: dict[str, Any] = {
        "id": id_,
        "projectId": project,
        "name": name,
        "timestamp": format_timestamp_ms(ts_ms),
        "input": _load(input_),
        "output": _load(output),
        "metadata": _load(metadata),
        "userId": user_id,
        "sessionId": session_id,
        "release": release,
        "version": version,
        "tags": _load(tags) or [],
        "durationMs": duration_ms,
        "createdAt": format_timestamp_ms(created_ms),
        "updatedAt": format_timestamp_ms(updated_ms),
    }
    extras = _load(extra)
    if isinstance(extras, dict):
        for key, value in extras.items():
            view.setdefault(key, value)
    return view


def observation_view(project: str, row: sqlite3.Row | tuple[Any, ...]) -> dict[str, Any]:
    """An observation row as the public API shows it."""
    (id_, trace_id, type_, name, start_ms, end_ms, completion_ms, parent, model) = row[:9]
    model_parameters, input_, output, usage, metadata, level, status, version, extra = row[9:18]
    view: dict[str, Any] = {
        "id": id_,
        "projectId": project,
        "traceId": trace_id,
        "type": type_,
        "name": name,
        "startTime": format_timestamp_ms(start_ms),
        "endTime": format_timestamp_ms(end_ms),
        "completionStartTime": format_timestamp_ms(completion_ms),
        "parentObservationId": parent,
        "model": model,
        "modelParameters": _load(model_parameters),
        "input": _load(input_),
        "output": _load(output),
        "usage": _load(usage),
        "metadata": _load(metadata),
        "level": level,
        "statusMessage": status,
        "version": version,
    }
    extras = _load(extra)
    if isinstance(extras, dict):
        for key, value in extras.items():
            view.setdefault(key, value)
    return view


def get_trace(conn: sqlite3.Connection, project: str, trace_id: str) -> dict[str, Any] | None:
    """One trace with its observations (ordered by start time), or None."""
    row = conn.execute(
        f"{_TRACE_SELECT} WHERE project_id = ? AND id = ?", (project, trace_id)
    ).fetchone()
    if row is None:
        return None
    view = trace_view(project, row)
    rows = conn.execute(
        f"{_OBS_SELECT} WHERE project_id = ? AND trace_id = ? ORDER BY start_ms, id",
        (project, trace_id),
    ).fetchall()
    view["observations"] = [observation_view(project, r) for r in rows]
    return view


def list_traces(
    conn: sqlite3.Connection,
    project: str,
    *,
    limit: int,
    page: int,
    search: str | None = None,
    name: str | None = None,
    from_ms: int | None = None,
    to_ms: int | None = None,
    full_observations: bool = False,
) -> tuple[list[dict[str, Any]], int]:
    """A page of traces, newest first, and the total matching the filters.

    ``search`` matches name, input or output (case-insensitive substring); ``from_ms`` is
    inclusive and ``to_ms`` exclusive. Each trace lists its observation ids, or the full
    observations when ``full_observations``.
    """
    where = ["project_id = ?"]
    args: list[Any] = [project]
    if name is not None:
        where.append("name = ?")
        args.append(name)
    if from_ms is not None:
        where.append("ts_ms >= ?")
        args.append(from_ms)
    if to_ms is not None:
        where.append("ts_ms < ?")
        args.append(to_ms)
    if search:
        pattern = "%" + search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        where.append(
            "(name LIKE ? ESCAPE '\\' OR input LIKE ? ESCAPE '\\' OR output LIKE ? ESCAPE '\\')"
        )
        args.extend((pattern, pattern, pattern))
    clause = " AND ".join(where)
    total = conn.execute(f"SELECT COUNT(*) FROM traces WHERE {clause}", args).fetchone()[0]
    rows = conn.execute(
        f"{_TRACE_SELECT} WHERE {clause} ORDER BY ts_ms DESC, id DESC LIMIT ? OFFSET ?",
        [*args, limit, (page - 1) * limit],
    ).fetchall()
    traces = [trace_view(project, row) for row in rows]
    by_id = {t["id"]: t for t in traces}
    for trace in traces:
        trace["observations"] = []
    if by_id:
        marks = ",".join("?" * len(by_id))
        obs_rows = conn.execute(
            f"{_OBS_SELECT} WHERE project_id = ? AND trace_id IN ({marks}) ORDER BY start_ms, id",
            [project, *by_id],
        ).fetchall()
        for row in obs_rows:
            owner = by_id[row[1]]
            owner["observations"].append(
                observation_view(project, row) if full_observations else row[0]
            )
    return traces, total


def trace_metrics(
    conn: sqlite3.Connection, project: str, period: str, now_ms: int
) -> list[dict[str, Any]]:
    """Trace count and mean duration per hour or day, from 30 days before ``now_ms`` on."""
    width = PERIOD_MS[period]
    rows = conn.execute(
        "SELECT ts_ms / ? AS bucket, COUNT(*), AVG(duration_ms) FROM traces "
        "WHERE project_id = ? AND ts_ms >= ? GROUP BY bucket ORDER BY bucket",
        (width, project, now_ms - METRICS_WINDOW_MS),
    ).fetchall()
    return [
        {
            "bucket": format_timestamp_ms(bucket * width),
            "count": count,
            "avgDurationMs": None if avg is None else round(avg, 3),
        }
        for bucket, count, avg in rows
    ]


def count_traces(conn: sqlite3.Connection, project: str | None = None) -> int:
    """How many traces the store holds, for one project or all."""
    if project is None:
        return int(conn.execute("SELECT COUNT(*) FROM traces").fetchone()[0])
    row = conn.execute("SELECT COUNT(*) FROM traces WHERE project_id = ?", (project,)).fetchone()
    return int(row[0])


def trace_ids(conn: sqlite3.Connection, project: str) -> Iterable[str]:
    """Every trace id of a project (used by tests and by restart checks)."""
    return [r[0] for r in conn.execute("SELECT id FROM traces WHERE project_id = ?", (project,))]
