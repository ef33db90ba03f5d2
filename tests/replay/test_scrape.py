"""--scrape: the target's own Prometheus metrics read during a run, into its results."""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from replay.scrape import TargetScraper, check_scrape_url


class _Exporter(BaseHTTPRequestHandler):
    """Serves memory that grows by 1 MB per scrape, and a counter of scrapes."""

    scrapes = 0

    def do_GET(self) -> None:
        cls = type(self)
        cls.scrapes += 1
        body = (
            "# TYPE process_resident_memory_bytes gauge\n"
            f"process_resident_memory_bytes {100_000_000 + cls.scrapes * 1_000_000}\n"
            "# TYPE app_rows_total counter\n"
            f'app_rows_total{{table="traces"}} {cls.scrapes * 10}\n'
            "# TYPE unrelated gauge\nunrelated 1\n"
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def exporter() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Exporter)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/metrics"
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def test_a_run_keeps_the_targets_memory_and_asked_metrics(
    replay: Any, synth_corpus: Any, tiny_server: Any, exporter: str, tmp_path: Path
) -> None:
    _Exporter.scrapes = 0
    out = tmp_path / "r.json"
    done = replay(str(synth_corpus()), "--target", tiny_server(), "--rate", "50",
                  "--duration", "3s", "--workers", "1", "--scrape", exporter,
                  "--scrape-interval", "1s", "--scrape-metric", "app_rows_total",
                  "--out", str(out))  # fmt: skip
    assert done.returncode == 0, done.stderr
    entries = json.loads(out.read_text())["scrape"]
    by_metric = {e["metric"]: e for e in entries}
    assert set(by_metric) == {"process_resident_memory_bytes", "app_rows_total"}
    assert by_metric["app_rows_total"]["labels"] == {"table": "traces"}
    memory = by_metric["process_resident_memory_bytes"]["samples"]
    # a scrape at the start, one a second, one at the end: 4 or 5 over 3 s
    assert 4 <= len(memory) <= 6
    times = [t for t, _ in memory]
    assert times == sorted(times) and times[0] < 0.5 and times[-1] >= 2.9
    # the values are the exporter's, in the order it served them
    values = [v for _, v in memory]
    assert all(b - a == 1_000_000 for a, b in itertools.pairwise(values))


def test_a_failing_scrape_is_noted_not_fatal() -> None:
    scraper = TargetScraper(["http://127.0.0.1:9/metrics"], [], 1.0)
    scraper.scrape_once(0.0)
    assert scraper.results() == []
    assert "failed 1 times" in scraper.notes()[0]


@pytest.mark.parametrize(
    ("url", "says"),
    [("ftp://x/metrics", "http"), ("http://user:pw@127.0.0.1/metrics", "password"), ("", "http")],
)
def test_scrape_urls_are_checked(url: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        check_scrape_url(url)


def test_a_bad_scrape_url_is_one_line(replay: Any) -> None:
    done = replay("--rate", "10", "--duration", "1s", "--scrape", "http://u:p@127.0.0.1:1/m")
    assert done.returncode == 2 and "--scrape" in done.stderr
    assert "p@" not in done.stderr  # the password is not echoed back
