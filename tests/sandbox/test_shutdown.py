"""SIGTERM without loss: every trace acknowledged before or during the shutdown is in the
database afterwards (kill, restart on the same --db, count)."""

from __future__ import annotations

import http.client
import json
import signal
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from sandbox import store


def _ingest_until_refused(sb: Any, api: Any, acked: list[str], stop: threading.Event) -> None:
    """Post traces back to back; record the id of every 200. Stops when told to or when
    the server stops answering (bounded: at most 2000 requests)."""
    conn = http.client.HTTPConnection(sb.host, sb.port, timeout=10)
    headers = {"Authorization": f"Bearer {api.KEY_A}", "Content-Type": "application/json"}
    try:
        for _ in range(2000):
            if stop.is_set():
                return
            trace = api.trace(observations=2)
            try:
                conn.request("POST", "/api/public/traces", json.dumps(trace), headers)
                response = conn.getresponse()
                response.read()
            except (OSError, http.client.HTTPException):
                return  # the server is going away: this request was not acknowledged
            if response.status == 200:
                acked.append(trace["id"])
    finally:
        conn.close()


@pytest.mark.parametrize("pods", [1, 2])
def test_sigterm_mid_traffic_loses_no_acknowledged_trace(
    tmp_path: Path, launch: Any, connect: Any, pods: int
) -> None:
    db = tmp_path / "traces.db"
    # A queue delay keeps acknowledged traces in the queue when SIGTERM arrives.
    sb = launch(db=db, pods=pods, ingest_delay=0.5)
    api = connect(sb)
    acked: list[str] = []
    stop = threading.Event()
    threads = [
        threading.Thread(target=_ingest_until_refused, args=(sb, api, acked, stop))
        for _ in range(6)
    ]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 10
    while len(acked) < 150 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(acked) >= 150, "the load did not get going"
    unread = api.get(f"/api/public/traces/{acked[-1]}")
    assert unread.status == 404, "with --ingest-delay the newest trace is still queued"
    sb._proc.send_signal(signal.SIGTERM)  # traffic keeps flowing while the sandbox stops
    sb.stop(timeout=60)
    stop.set()
    for thread in threads:
        thread.join(timeout=30)
    assert sb.returncode == 0
    ids = set(acked)

    # count in the file itself
    conn = sqlite3.connect(db)
    stored = set(store.trace_ids(conn, api.PROJECT_A))
    conn.close()
    assert ids <= stored, f"{len(ids - stored)} acknowledged traces lost"

    # and through a restarted sandbox on the same database
    again = launch(db=db)
    listed = connect(again).get("/api/public/traces?limit=1").json
    assert listed["meta"]["totalItems"] == len(stored)
    sample = acked[len(acked) // 2]
    assert connect(again).get(f"/api/public/traces/{sample}").status == 200


def test_reads_are_eventually_consistent_with_ingest_delay(launch: Any, connect: Any) -> None:
    sb = launch(ingest_delay=0.6)
    api = connect(sb)
    trace = api.trace()
    api.ingest(trace)
    assert api.get(f"/api/public/traces/{trace['id']}").status == 404  # not yet written
    started = time.monotonic()
    api.flush()  # waits for the delay
    assert time.monotonic() - started > 0.3
    assert api.get(f"/api/public/traces/{trace['id']}").status == 200


def test_sigint_also_drains(tmp_path: Path, launch: Any, connect: Any) -> None:
    db = tmp_path / "t.db"
    sb = launch(db=db, ingest_delay=5.0)
    api = connect(sb)
    ids = [api.ingest(api.trace()).json["id"] for _ in range(20)]
    sb._proc.send_signal(signal.SIGINT)
    sb._proc.wait(timeout=60)
    assert sb.returncode == 0
    conn = sqlite3.connect(db)
    assert set(ids) <= set(store.trace_ids(conn, api.PROJECT_A))
    conn.close()


def test_orphaned_children_drain_and_exit(tmp_path: Path, launch: Any, connect: Any) -> None:
    """If the supervisor is SIGKILLed, its pods and worker notice, drain and exit."""
    psutil = pytest.importorskip("psutil")
    db = tmp_path / "t.db"
    sb = launch(db=db, ingest_delay=2.0)
    api = connect(sb)
    ids = [api.ingest(api.trace()).json["id"] for _ in range(10)]
    children = psutil.Process(sb.pid).children()
    assert len(children) == 2  # one pod, one worker
    sb.kill()
    _, alive = psutil.wait_procs(children, timeout=30)
    assert not alive
    conn = sqlite3.connect(db)
    assert set(ids) <= set(store.trace_ids(conn, api.PROJECT_A))
    conn.close()
