"""--visibility-probe: ingest-to-visible lag against a server with a known visibility delay."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from replay.merge import merge_results
from replay.probe import next_poll_ns

MS = 1_000_000
DELAY_S = 0.3


class _Delayed(BaseHTTPRequestHandler):
    """Acknowledges a trace at once and lets it be read DELAY_S later (404 before)."""

    protocol_version = "HTTP/1.1"
    delay_s = DELAY_S
    acked: dict[str, float] = {}  # noqa: RUF012 (one server per test, reset by the fixture)
    lock = threading.Lock()

    def _answer(self, status: int, body: bytes = b"{}") -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        match = re.search(rb'"id"\s*:\s*"([^"]+)"', body)
        if match:
            with self.lock:
                self.acked.setdefault(match.group(1).decode(), time.monotonic())
        self._answer(200)

    def do_GET(self) -> None:
        trace = self.path.rsplit("/", 1)[-1]
        with self.lock:
            acked = self.acked.get(trace)
        visible = acked is not None and time.monotonic() - acked >= self.delay_s
        self._answer(200 if visible else 404)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def delayed() -> Iterator[str]:
    _Delayed.acked = {}
    _Delayed.delay_s = DELAY_S
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Delayed)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@settings(deadline=None)
@given(st.integers(0, 600_000).map(lambda ms: ms * MS))
def test_the_poll_schedule_overstates_the_lag_by_at_most_ten_percent_and_50_ms(v: int) -> None:
    # walk the schedule from the acknowledgment; the first poll at or after v is no later
    # than v + max(50 ms, v / 10) (the figure's bound), and polls never go backwards
    t = 0
    while t < v:
        nxt = next_poll_ns(t)
        assert nxt > t
        t = nxt
    assert t - v <= max(50 * MS, v // 10) + 1


def test_visibility_lag_is_measured_from_the_acknowledgment(
    replay: Any, synth_corpus: Any, delayed: str, tmp_path: Path
) -> None:
    out = tmp_path / "r.json"
    done = replay(str(synth_corpus(rate=50, seconds=2)), "--target", delayed, "--rate", "40",
                  "--duration", "2s", "--workers", "1", "--visibility-probe", "0.25",
                  "--visibility-timeout", "20s", "--out", str(out))  # fmt: skip
    assert done.returncode == 0, done.stderr
    results = json.loads(out.read_text())
    vis = results["visibility_lag_ms"]
    # 80 acknowledged ingestions, every fourth probed
    assert vis["count"] == 20 and vis["timeouts"] == 0 and vis["skipped"] == 0
    delay_ms = DELAY_S * 1000
    assert delay_ms <= vis["p50"] <= 1.1 * delay_ms + 100
    # by acknowledgment second, adding up to the run's count
    per_second = [
        e["visibility_lag_ms"]["count"] for e in results["timeline"] if "visibility_lag_ms" in e
    ]
    assert sum(per_second) == 20
    # probes are not requests: the load's totals hold only the 80 ingestions
    assert results["totals"]["requests"] == 80
    assert "visibility_lag" in done.stdout
    # merging two copies of the run doubles the probes, exactly
    merged = merge_results([results, results], ["a", "b"])
    assert merged["visibility_lag_ms"]["count"] == 40
    assert merged["visibility_lag_ms"]["p50"] == vis["p50"]


def test_a_visibility_threshold_fails_the_run(
    replay: Any, synth_corpus: Any, delayed: str, tmp_path: Path
) -> None:
    done = replay(str(synth_corpus()), "--target", delayed, "--rate", "20", "--duration", "1s",
                  "--workers", "1", "--visibility-probe", "1", "--visibility-timeout", "10s",
                  "--threshold", "visibility_lag: p(99)<100")  # fmt: skip
    assert done.returncode == 99, done.stderr


def test_a_trace_never_visible_times_out(
    replay: Any, synth_corpus: Any, delayed: str, tmp_path: Path
) -> None:
    _Delayed.delay_s = 3600.0  # never, within the run
    out = tmp_path / "r.json"
    done = replay(str(synth_corpus()), "--target", delayed, "--rate", "10",
                  "--duration", "1s", "--workers", "1", "--visibility-probe", "1",
                  "--visibility-timeout", "1s", "--out", str(out))  # fmt: skip
    assert done.returncode == 0, done.stderr
    vis = json.loads(out.read_text())["visibility_lag_ms"]
    assert vis["count"] == 0 and vis["timeouts"] == 10
