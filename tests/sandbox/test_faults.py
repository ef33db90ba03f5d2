"""Each fault kind on the real server: 5xx answers, connection resets, slow answers, stalls;
and a seeded mixed spec giving the same decisions on every run."""

from __future__ import annotations

import http.client
import json
import socket
import time
from typing import Any

import pytest


def _post(sb: Any, api: Any, timeout: float = 10.0) -> tuple[int | str, float]:
    """One trace post on a fresh connection: (status or the exception's name, seconds)."""
    conn = http.client.HTTPConnection(sb.host, sb.port, timeout=timeout)
    started = time.monotonic()
    try:
        conn.request(
            "POST",
            "/api/public/traces",
            json.dumps(api.trace()),
            {"Authorization": f"Bearer {api.KEY_A}", "Content-Type": "application/json"},
        )
        response = conn.getresponse()
        response.read()
        return response.status, time.monotonic() - started
    except (OSError, http.client.HTTPException) as exc:
        return type(exc).__name__, time.monotonic() - started
    finally:
        conn.close()


def test_error_faults_answer_5xx_and_store_nothing(launch: Any, connect: Any) -> None:
    sb = launch(faults="error=1:503")
    api = connect(sb)
    trace = api.trace()
    reply = api.post("/api/public/traces", trace)
    assert reply.status == 503 and reply.json["error"] == "injected"
    assert api.get("/health", key=None).status == 200  # never on operational routes
    api.flush()
    metrics = api.get("/metrics", key=None).body.decode()
    assert 'sandbox_faults_injected_total{kind="error"}' in metrics
    assert 'route="/api/public/traces",status="503"' in metrics


def test_reset_faults_reset_the_connection(launch: Any, connect: Any) -> None:
    sb = launch(faults="reset=1")
    outcomes = {_post(sb, connect(sb))[0] for _ in range(5)}
    assert outcomes <= {"ConnectionResetError", "RemoteDisconnected", "BrokenPipeError"}
    assert "ConnectionResetError" in outcomes
    assert connect(sb).get("/ready", key=None).status == 200


def test_slow_faults_delay_by_the_median(launch: Any, connect: Any) -> None:
    sb = launch(faults="slow=1:150ms:0.2", seed=3)
    api = connect(sb)
    results = [_post(sb, api) for _ in range(8)]
    assert all(status == 200 for status, _ in results)
    delays = sorted(seconds for _, seconds in results)
    assert 0.08 < delays[len(delays) // 2] < 0.4  # lognormal, median 150 ms, sigma 0.2
    fast = connect(launch()).get("/health", key=None)
    assert fast.status == 200


def test_stall_faults_never_answer_but_the_server_goes_on(launch: Any, connect: Any) -> None:
    sb = launch(faults="stall=1")
    api = connect(sb)
    status, seconds = _post(sb, api, timeout=1.0)
    assert status in ("TimeoutError", "timeout") and seconds >= 0.9
    # the stalled connection is held open: the client sees no EOF either
    with socket.create_connection((sb.host, sb.port), timeout=0.5) as raw:
        raw.sendall(
            b"GET /api/public/traces HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer x\r\n\r\n"
        )
        with pytest.raises(TimeoutError):
            raw.recv(1)
    assert api.get("/health", key=None).status == 200
    # and a stalled sandbox still stops promptly
    started = time.monotonic()
    sb.stop(timeout=30)
    assert sb.returncode == 0 and time.monotonic() - started < 10


def test_seeded_mixed_faults_repeat_exactly(launch: Any, connect: Any) -> None:
    spec = "error=0.2,reset=0.1,slow=0.1:10ms"
    runs = []
    for _ in range(2):
        sb = launch(faults=spec, seed=42)
        api = connect(sb)
        runs.append([_post(sb, api)[0] for _ in range(40)])
        sb.stop()
    assert runs[0] == runs[1]
    outcomes = runs[0]
    assert outcomes.count(500) >= 2 and outcomes.count(200) >= 20
    assert any(isinstance(o, str) for o in outcomes)  # some resets
