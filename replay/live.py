"""Live metrics: the run's counters and histograms as Prometheus text while it runs.

``replay run --metrics-port PORT`` serves ``/metrics`` from the coordinator. Every delta a
worker sends (replay.recorder) is added here as it is to the run's aggregate, so a scrape
shows what the results will: cumulative counts up to the last folded tenth of a second.
The latency histograms are the recorder's HdrHistogram buckets regrouped into Prometheus'
fixed ``le`` buckets by each HdrHistogram bucket's median value (HdrHistogram keeps every
value within 0.1 %, so a latency lands in the ``le`` bucket it belongs to unless it lies
within 0.1 % of a boundary); ``_sum`` adds the same median values.

Metrics (every one labelled with ``segment``, "0/1" for an unsegmented run):

    replay_requests_total{scenario,endpoint,status}    counter: answered or failed requests
    replay_request_duration_seconds{scenario,endpoint}  histogram: from the intended send time
    replay_send_lag_seconds{scenario,endpoint}          histogram: actual minus intended send
    replay_offered_requests_total{scenario}             counter: came due (sent or dropped)
    replay_dropped_requests_total{scenario,endpoint}    counter: could not be sent
    replay_inflight_requests{scenario}                  gauge: sent, not yet answered
    replay_active_vus{scenario}                         gauge: closed models' VUs
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from replay.histogram import MEDIAN_EQUIVALENT
from replay.recorder import Delta

BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
"""The ``le`` bounds of both histograms, in seconds (the guide's targets: 100 ms, 500 ms, 2 s)."""

_BOUNDS_US = np.array([round(b * 1e6) for b in BUCKETS_S], dtype=np.int64)
# which le bucket (index into BUCKETS_S, or len for +Inf) each HdrHistogram bucket falls in
_LE_OF_HDR = np.searchsorted(_BOUNDS_US, MEDIAN_EQUIVALENT, side="left")

METRIC_NAMES = (
    "replay_requests_total",
    "replay_request_duration_seconds",
    "replay_send_lag_seconds",
    "replay_offered_requests_total",
    "replay_dropped_requests_total",
    "replay_inflight_requests",
    "replay_active_vus",
)


@dataclass
class _Histogram:
    counts: np.ndarray = field(default_factory=lambda: np.zeros(len(BUCKETS_S) + 1, np.int64))
    sum_us: int = 0

    def add(self, buckets: np.ndarray, counts: np.ndarray) -> None:
        if not len(buckets):
            return
        idx = np.asarray(buckets, dtype=np.int64)
        n = np.asarray(counts, dtype=np.int64)
        np.add.at(self.counts, _LE_OF_HDR[idx], n)
        self.sum_us += int((MEDIAN_EQUIVALENT[idx] * n).sum())


class LiveMetrics:
    """Cumulative metrics of the run so far, fed with decoded deltas, read by scrapes."""

    def __init__(self, segment: str = "0/1", vus: int = 0) -> None:
        self.segment = segment
        self.vus = vus
        self._lock = threading.Lock()
        self._requests: dict[tuple[str, str, str], int] = {}
        self._latency: dict[tuple[str, str], _Histogram] = {}
        self._lag: dict[tuple[str, str], _Histogram] = {}
        self._offered: dict[str, int] = {}
        self._dropped: dict[tuple[str, str], int] = {}
        self._inflight: dict[int, int] = {}  # per worker, its latest

    def add(self, delta: Delta, scenario: str = "") -> None:
        """One worker's delta (one fold of one interval)."""
        with self._lock:
            self._offered[scenario] = self._offered.get(scenario, 0) + delta.offered
            for endpoint, n in delta.dropped.items():
                key = (scenario, endpoint)
                self._dropped[key] = self._dropped.get(key, 0) + n
            self._inflight[delta.worker] = delta.inflight
            for s in delta.series:
                key = (scenario, s.endpoint)
                rkey = (scenario, s.endpoint, s.outcome)
                self._requests[rkey] = self._requests.get(rkey, 0) + s.requests
                latency, _uncorrected, lag = s.histograms
                self._latency.setdefault(key, _Histogram()).add(latency.buckets, latency.counts)
                self._lag.setdefault(key, _Histogram()).add(lag.buckets, lag.counts)

    def retire(self, worker: int) -> None:
        """A worker finished: nothing of its is in flight any more."""
        with self._lock:
            self._inflight.pop(worker, None)

    def collect(self) -> Iterator[Any]:
        """prometheus_client's Collector interface."""
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        seg = self.segment
        with self._lock:
            requests = dict(self._requests)
            latency = {k: (h.counts.copy(), h.sum_us) for k, h in self._latency.items()}
            lag = {k: (h.counts.copy(), h.sum_us) for k, h in self._lag.items()}
            offered, dropped = dict(self._offered), dict(self._dropped)
            inflight = sum(self._inflight.values())
        total = CounterMetricFamily(
            "replay_requests",
            "Requests answered or failed, by scenario, endpoint and status or error kind.",
            labels=["scenario", "endpoint", "status", "segment"],
        )
        for (scenario, endpoint, status), n in sorted(requests.items()):
            total.add_metric([scenario, endpoint, status, seg], n)
        yield total
        yield _histogram(
            "replay_request_duration_seconds",
            "Latency from each request's intended send time (coordinated omission corrected).",
            latency,
            seg,
        )
        yield _histogram(
            "replay_send_lag_seconds",
            "How long after its intended time each request was sent.",
            lag,
            seg,
        )
        offered_family = CounterMetricFamily(
            "replay_offered_requests", "Requests that came due.", labels=["scenario", "segment"]
        )
        for scenario, n in sorted(offered.items()) or [("", 0)]:
            offered_family.add_metric([scenario, seg], n)
        yield offered_family
        dropped_family = CounterMetricFamily(
            "replay_dropped_requests",
            "Requests the load generator could not send.",
            labels=["scenario", "endpoint", "segment"],
        )
        for (scenario, endpoint), n in sorted(dropped.items()):
            dropped_family.add_metric([scenario, endpoint, seg], n)
        yield dropped_family
        inflight_family = GaugeMetricFamily(
            "replay_inflight_requests",
            "Requests sent and not yet answered.",
            labels=["scenario", "segment"],
        )
        inflight_family.add_metric(["", seg], inflight)
        yield inflight_family
        vus_family = GaugeMetricFamily(
            "replay_active_vus",
            "Virtual users of closed-model load.",
            labels=["scenario", "segment"],
        )
        vus_family.add_metric(["", seg], self.vus)
        yield vus_family


def _histogram(
    name: str, doc: str, series: dict[tuple[str, str], tuple[np.ndarray, int]], segment: str
) -> Any:
    from prometheus_client.core import HistogramMetricFamily

    family = HistogramMetricFamily(name, doc, labels=["scenario", "endpoint", "segment"])
    for (scenario, endpoint), (counts, sum_us) in sorted(series.items()):
        cumulative = np.cumsum(counts)
        buckets = [(_le(b), float(c)) for b, c in zip(BUCKETS_S, cumulative[:-1], strict=True)]
        buckets.append(("+Inf", float(cumulative[-1])))
        family.add_metric([scenario, endpoint, segment], buckets, sum_us / 1e6)
    return family


def _le(bound: float) -> str:
    return repr(bound)


class MetricsServer:
    """``/metrics`` over HTTP from a thread of the coordinator, for the run's duration."""

    def __init__(self, metrics: LiveMetrics, host: str, port: int) -> None:
        from prometheus_client import CollectorRegistry, start_http_server

        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(metrics)
        self._server, self._thread = start_http_server(port, addr=host, registry=self.registry)
        self.host, self.port = host, int(self._server.server_port)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/metrics"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def parse_listen(text: str) -> tuple[str, int]:
    """``--metrics-port``: PORT (all interfaces, as a pod needs) or HOST:PORT; ValueError."""
    host, sep, port = text.strip().rpartition(":")
    if not sep:
        host, port = "0.0.0.0", text.strip()
    host = host.strip("[]") or "0.0.0.0"
    if not port.isdecimal() or not 0 <= int(port) <= 65535:
        raise ValueError(f"{text!r}: give a port (9464) or HOST:PORT (127.0.0.1:9464)")
    return host, int(port)


def scraped(text: str) -> Iterable[tuple[str, dict[str, str], float]]:
    """(name, labels, value) of each sample in Prometheus text: for tests and checks."""
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            yield sample.name, dict(sample.labels), float(sample.value)
