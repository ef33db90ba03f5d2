"""Traffic figures a corpus's inspection adds: observations per trace and inter-arrival gaps.

Fed one record at a time (`add`), in constant memory apart from one float per record for
the gaps' p99. Observations are counted in trace bodies (`observations` of POST
/api/public/traces) and in batches (observation events of POST /api/public/ingestion);
inter-arrival gaps are between consecutive records' offsets; CV is the standard deviation of
the gaps over their mean (1 for Poisson arrivals, above 1 for bursts).
"""

from __future__ import annotations

import math
from typing import Any

from capture.corpus import Record
from capture.json_body import parsed_or_none
from capture.sizehist import SizeHistogram

OBSERVATION_EVENTS = ("span-create", "generation-create", "event-create")


def ingestion_counts(record: Record, doc: Any) -> tuple[int, int] | None:
    """(traces, observations) an ingestion record creates, `doc` its body parsed, or None
    for any other record."""
    if record.endpoint not in ("ingest", "batch") or not isinstance(doc, dict):
        return None
    if record.endpoint == "ingest":
        obs = doc.get("observations")
        return 1, len(obs) if isinstance(obs, list) else 0
    batch = doc.get("batch")
    if not isinstance(batch, list):
        return None
    types = [str(e.get("type", "")) for e in batch if isinstance(e, dict)]
    return types.count("trace-create"), sum(t.startswith(OBSERVATION_EVENTS) for t in types)


class TrafficFigures:
    """Accumulates the figures record by record."""

    def __init__(self) -> None:
        self.traces = 0
        self.observations = 0
        self.opaque = 0
        self._gaps = SizeHistogram()  # gaps in µs, for the p99 (bounded memory)
        self._n = 0  # gaps seen, their mean and sum of squared deviations (Welford)
        self._mean = 0.0
        self._m2 = 0.0
        self._last_ns: int | None = None

    def add(self, record: Record) -> None:
        if self._last_ns is not None:
            gap = (record.offset_ns - self._last_ns) / 1e9
            self._gaps.add(max(record.offset_ns - self._last_ns, 0) // 1000)
            self._n += 1
            delta = gap - self._mean
            self._mean += delta / self._n
            self._m2 += delta * (gap - self._mean)
        self._last_ns = record.offset_ns
        doc = None
        if record.body:  # opaque: not JSON, or JSON json.loads cannot read (too deep)
            if record.body.lstrip()[:1] in (b"{", b"["):
                doc = parsed_or_none(bytes(record.body))
            if doc is None:
                self.opaque += 1
        counts = ingestion_counts(record, doc)
        if counts is not None:
            self.traces += counts[0]
            self.observations += counts[1]

    def to_json(self) -> dict[str, Any]:
        mean = self._mean if self._n else 0.0
        std = math.sqrt(self._m2 / self._n) if self._n else 0.0
        cv = std / mean if self._n and mean > 0 else 0.0
        return {
            "observations_per_trace": self.observations / self.traces if self.traces else 0.0,
            "opaque_records": self.opaque,
            "interarrival_s": {
                "mean": mean,
                "cv": cv if math.isfinite(cv) else 0.0,
                "p99": self._gaps.percentile(99) / 1e6 if self._n else 0.0,
            },
        }


def render_figures(figures: dict[str, Any]) -> list[str]:
    gaps = figures["interarrival_s"]
    return [
        f"traces       {figures['observations_per_trace']:.2f} observations per trace; "
        f"{figures['opaque_records']:,} opaque (non-JSON) bodies",
        f"arrivals     gap mean {gaps['mean'] * 1000:,.3f} ms, CV {gaps['cv']:.2f}, "
        f"p99 {gaps['p99'] * 1000:,.3f} ms",
    ]
