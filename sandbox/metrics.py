"""Prometheus metrics, aggregated across the sandbox's processes.

Every process (each API pod and the worker) records into prometheus_client's multiprocess
files under ``PROMETHEUS_MULTIPROC_DIR``; ``GET /metrics`` on any pod merges them all. The
variable must be set before prometheus_client is first imported in a process, which is why
the sandbox's processes are fresh interpreters started with it in their environment, and
why only the pod and worker entry points import this module.

Names follow the guide's Grafana queries:

- ``http_requests_total{method,route,status}``  counter
- ``http_request_duration_seconds{method,route}``  histogram (from the request being read
  to its answer written, emulated service time included)
- ``ingestion_queue_length``  records received by the worker and not yet written
- ``ingestion_rows_written_total{table}``  rows upserted into traces and observations
- ``clickhouse_insert_rows_total``  the same total under the name the guide's dashboard
  uses for the production store (the sandbox's store is SQLite)
- ``ingestion_batches_total``, ``sandbox_shed_total`` (503s of emulated capacity),
  ``sandbox_faults_injected_total{kind}``, ``sandbox_rate_limited_total``
"""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST

BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)


class Metrics:
    """The sandbox's metric families, created once per process."""

    def __init__(self) -> None:
        self.requests = Counter(
            "http_requests_total", "HTTP requests answered", ["method", "route", "status"]
        )
        self.duration = Histogram(
            "http_request_duration_seconds",
            "Time from a request being read to its answer being written",
            ["method", "route"],
            buckets=BUCKETS,
        )
        self.queue_length = Gauge(
            "ingestion_queue_length",
            "Records received by the ingestion worker and not yet written",
            multiprocess_mode="livesum",
        )
        self.rows_written = Counter(
            "ingestion_rows_written_total", "Rows upserted by the ingestion worker", ["table"]
        )
        self.clickhouse_rows = Counter(
            "clickhouse_insert_rows_total",
            "Rows written by the ingestion worker (the guide's name; the store is SQLite)",
        )
        self.batches = Counter("ingestion_batches_total", "Batches written by the worker")
        self.shed = Counter("sandbox_shed_total", "Requests shed (503) by emulated capacity")
        self.faults = Counter("sandbox_faults_injected_total", "Faults injected, by kind", ["kind"])
        self.rate_limited = Counter("sandbox_rate_limited_total", "Requests answered 429")
        self._children: dict[tuple[str, str, int], tuple[object, object]] = {}

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method, route, status)
        children = self._children.get(key)
        if children is None:
            children = (
                self.requests.labels(method, route, str(status)),
                self.duration.labels(method, route),
            )
            self._children[key] = children
        counter, histogram = children
        counter.inc()  # type: ignore[attr-defined]
        histogram.observe(seconds)  # type: ignore[attr-defined]

    def on_batch(self, traces: int, observations: int, pending: int) -> None:
        """The worker's report after each batch."""
        self.rows_written.labels("traces").inc(traces)
        self.rows_written.labels("observations").inc(observations)
        self.clickhouse_rows.inc(traces + observations)
        self.batches.inc()
        self.queue_length.set(pending)


def render(multiproc_dir: str) -> tuple[bytes, str]:
    """The text exposition of every process's metrics, merged."""
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=multiproc_dir)
    return generate_latest(registry), CONTENT_TYPE_LATEST


def mark_process_dead(pid: int, multiproc_dir: str) -> None:
    """Drop a dead process's live gauges (its counters stay in the totals)."""
    multiprocess.mark_process_dead(pid, multiproc_dir)
