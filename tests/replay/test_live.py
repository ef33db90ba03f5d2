"""Live Prometheus metrics during a run: what a scrape shows is what the results will say."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from replay.live import BUCKETS_S, METRIC_NAMES, LiveMetrics, parse_listen, scraped
from replay.recorder import IntervalRecorder, read_delta

ROOT = Path(__file__).resolve().parent.parent.parent
MS = 1_000_000


def _text(metrics: LiveMetrics) -> str:
    from prometheus_client import CollectorRegistry, generate_latest

    registry = CollectorRegistry(auto_describe=False)
    registry.register(metrics)
    return generate_latest(registry).decode()


def test_histogram_buckets_count_what_was_recorded() -> None:
    # latencies spread over 0.2 ms .. 3 s; each le bucket must hold exactly the values at or
    # below its bound (none of them lies within 0.1 % of a bound), counted here directly
    rng = np.random.default_rng(7)
    values_us = np.unique(rng.integers(200, 3_000_000, size=2000))
    bounds_us = [b * 1e6 for b in BUCKETS_S]
    values_us = np.array([v for v in values_us if all(abs(v - b) > b * 0.002 for b in bounds_us)])
    rec = IntervalRecorder(0)
    for v in values_us:
        rec.record("ingest", "200", 0, 0, int(v) * 1000)
    rec.offered(len(values_us) + 1)
    rec.drop("ingest", 0)
    live = LiveMetrics("1/3")
    live.add(read_delta(rec.flush(0, inflight=4)))
    samples = list(scraped(_text(live)))
    buckets = {
        s[1]["le"]: s[2]
        for s in samples
        if s[0] == "replay_request_duration_seconds_bucket" and s[1]["endpoint"] == "ingest"
    }
    for bound in BUCKETS_S:
        expected = int(np.count_nonzero(values_us <= bound * 1e6))
        assert buckets[repr(bound)] == expected, bound
    assert buckets["+Inf"] == len(values_us)
    total = sum(s[2] for s in samples if s[0] == "replay_requests_total")
    assert total == len(values_us)
    assert all(s[1]["segment"] == "1/3" for s in samples if "segment" in s[1])
    sums = [s[2] for s in samples if s[0] == "replay_request_duration_seconds_sum"]
    assert sums[0] == pytest.approx(values_us.sum() / 1e6, rel=0.001)
    names = {s[0] for s in samples}
    for name in METRIC_NAMES:
        assert any(n.startswith(name) for n in names), name


def test_listen_syntax() -> None:
    assert parse_listen("9464") == ("0.0.0.0", 9464)
    assert parse_listen("127.0.0.1:0") == ("127.0.0.1", 0)
    assert parse_listen("[::1]:9464") == ("::1", 9464)
    for bad in ("port", "127.0.0.1:", "1:99999"):
        with pytest.raises(ValueError):
            parse_listen(bad)


def _requests(text: str) -> float:
    return sum(v for name, _labels, v in scraped(text) if name == "replay_requests_total")


def test_a_scrape_during_a_run_agrees_with_its_results(
    synth_corpus: Any, tiny_server: Any, tmp_path: Path
) -> None:
    url = tiny_server()
    out = tmp_path / "r.json"
    env = {k: v for k, v in os.environ.items() if k not in ("API_KEY", "PROJECT_ID")}
    env["PYTHONPATH"] = str(ROOT)
    proc = subprocess.Popen(
        [sys.executable, "-m", "replay.cli_run", str(synth_corpus()), "--target", url,
         "--rate", "200", "--duration", "3s", "--workers", "1", "--out", str(out),
         "--metrics-port", "127.0.0.1:0"],
        env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stderr is not None
        metrics_url = ""
        for line in proc.stderr:
            if "live metrics at " in line:
                metrics_url = line.split("live metrics at ")[1].strip()
                break
        assert metrics_url.startswith("http://127.0.0.1:")
        last, seen_running = "", False
        deadline = time.monotonic() + 60
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(metrics_url, timeout=2) as response:
                    last = response.read().decode()
            except OSError:
                break  # the run ended and its server with it
            seen_running = seen_running or _requests(last) > 0
            time.sleep(0.1)
        proc.stderr.read()
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()
    assert seen_running, "no request was counted while the run was going"
    final = json.loads(out.read_text())["totals"]["requests"]
    live = _requests(last)
    # deltas reach the coordinator once a second, and the last scrape came at most ~0.1 s
    # before the server closed: the live count trails the results by about a second's
    # worth (200); two seconds' worth leaves room for a busy machine
    assert final - 400 <= live <= final
