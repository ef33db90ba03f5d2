"""The target's own resources during a run: Prometheus text scraped at fixed intervals.

``replay run --scrape URL`` (repeatable) reads each URL every ``--scrape-interval`` (10 s)
from a thread of the coordinator, from the run's start to its end, and keeps the samples of
``process_resident_memory_bytes``, ``process_cpu_seconds_total`` and every
``--scrape-metric NAME``. They go into the results under ``scrape``, one entry per series::

    {"url": ..., "metric": ..., "labels": {...}, "samples": [[t_s, value], ...]}

with ``t_s`` in seconds since the run's common start, read on the same clock. A scrape that
fails is counted and said in the results' notes, never fatal: the target's metrics describe
the run, they are not the run. Memory is bounded: at most MAX_SERIES series a URL and
MAX_SAMPLES samples a series (a four-hour soak at 10 s is 1,440).
"""

from __future__ import annotations

import threading
import time
import urllib.request
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

DEFAULT_METRICS = ("process_resident_memory_bytes", "process_cpu_seconds_total")
MAX_SERIES = 200
MAX_SAMPLES = 100_000
MAX_BODY = 16 << 20  # bytes of one scrape's text read at most
NS = 1_000_000_000


def check_scrape_url(url: str) -> str:
    """An http(s) URL without credentials, or ValueError saying what is wrong."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{url!r}: give an http:// or https:// URL of a /metrics endpoint")
    if parts.username or parts.password:
        raise ValueError("a --scrape URL cannot carry a user or password")
    return urlunsplit(parts)


class TargetScraper:
    """Scrapes `urls` every `interval_s` from start_ns (CLOCK_MONOTONIC) until stopped."""

    def __init__(
        self, urls: Sequence[str], metrics: Sequence[str], interval_s: float = 10.0
    ) -> None:
        self.urls = list(urls)
        self.wanted = set(DEFAULT_METRICS) | set(metrics)
        self.interval_s = interval_s
        self._series: dict[tuple[str, str, tuple[tuple[str, str], ...]], list[list[float]]] = {}
        self._per_url: dict[str, int] = {}
        self.failures: dict[str, str] = {}  # url -> the last failure
        self.failed: dict[str, int] = {}
        self.cut = 0  # series or samples left out at the bounds
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def start(self, start_ns: int) -> None:
        self._thread = threading.Thread(target=self._loop, args=(start_ns,), daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop, after one last scrape so the run's end is in the series."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=15)

    def _loop(self, start_ns: int) -> None:
        delay = (start_ns - time.monotonic_ns()) / NS
        if delay > 0 and self._stop.wait(delay):
            return
        k = 0
        while True:
            self.scrape_once((time.monotonic_ns() - start_ns) / NS)
            k += 1
            due = start_ns + int(k * self.interval_s * NS)
            if self._stop.wait(max(0.0, (due - time.monotonic_ns()) / NS)):
                self.scrape_once((time.monotonic_ns() - start_ns) / NS)
                return

    def scrape_once(self, t_s: float) -> None:
        for url in self.urls:
            try:
                text = _fetch(url)
            except (OSError, ValueError) as exc:
                self.failed[url] = self.failed.get(url, 0) + 1
                self.failures[url] = str(getattr(exc, "reason", None) or exc)
                continue
            self._keep(url, text, round(t_s, 3))

    def _keep(self, url: str, text: str, t_s: float) -> None:
        from prometheus_client.parser import text_string_to_metric_families

        try:
            families = list(text_string_to_metric_families(text))
        except (ValueError, TypeError, IndexError) as exc:
            self.failed[url] = self.failed.get(url, 0) + 1
            self.failures[url] = f"not Prometheus text: {exc}"
            return
        with self._lock:
            for family in families:
                for sample in family.samples:
                    if sample.name not in self.wanted:
                        continue
                    key = (url, sample.name, tuple(sorted(sample.labels.items())))
                    samples = self._series.get(key)
                    if samples is None:
                        if self._per_url.get(url, 0) >= MAX_SERIES:
                            self.cut += 1
                            continue
                        self._per_url[url] = self._per_url.get(url, 0) + 1
                        samples = self._series[key] = []
                    if len(samples) >= MAX_SAMPLES:
                        self.cut += 1
                        continue
                    samples.append([t_s, float(sample.value)])

    def results(self) -> list[dict[str, Any]]:
        """The ``scrape`` entries of the results."""
        with self._lock:
            return [
                {"url": url, "metric": metric, "labels": dict(labels), "samples": samples}
                for (url, metric, labels), samples in sorted(self._series.items())
            ]

    def notes(self) -> list[str]:
        out = [
            f"scraping {url} failed {n} times (last: {self.failures[url]})"
            for url, n in sorted(self.failed.items())
        ]
        if self.cut:
            out.append(f"{self.cut} scraped series or samples left out beyond the bounds")
        return out


def _fetch(url: str) -> str:
    request = urllib.request.Request(url, headers={"Accept": "text/plain"})
    with urllib.request.urlopen(request, timeout=5) as response:
        body: bytes = response.read(MAX_BODY + 1)
    if len(body) > MAX_BODY:
        raise ValueError(f"more than {MAX_BODY} bytes")
    return body.decode("utf-8", "replace")
