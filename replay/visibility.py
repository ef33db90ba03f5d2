"""Ingest-to-visible lag in a run's results: histograms by acknowledgment second.

The workers' probes (replay.probe) end as (second, lag µs or -1). The coordinator keeps one
HdrHistogram per acknowledgment second and the timeouts beside it, so the figure merges
exactly across workers, segments and runs, like every other latency. In the results:

    "visibility_lag_ms": {count, timeouts, skipped, min, mean, p50 ... p999, max, clamped,
                          "histogram": HdrHistogram V2}        over the run
    timeline[i]["visibility_lag_ms"]: {count, timeouts, histogram}   probes acked in second i

Thresholds name it ``visibility_lag`` (``visibility_lag: p(99)<30000``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from replay.histogram import LatencyHistogram

MAX_SECONDS = 10_000_000  # an acknowledgment second beyond this is not a run's


class VisibilityAggregate:
    """Per acknowledgment second: the lag histogram and the timeouts."""

    def __init__(self) -> None:
        self.seconds: dict[int, LatencyHistogram] = {}
        self.timeouts: dict[int, int] = {}
        self.skipped = 0

    def add(self, ended: Iterable[Sequence[int]]) -> None:
        """Probes as workers send them: (second, lag µs), lag -1 for a timeout."""
        for second, lag_us in ended:
            s = int(second)
            if not 0 <= s <= MAX_SECONDS:
                raise ValueError(f"visibility probe second {s} out of range")
            if lag_us < 0:
                self.timeouts[s] = self.timeouts.get(s, 0) + 1
            else:
                self.seconds.setdefault(s, LatencyHistogram()).record(int(lag_us))

    def merge(self, other: VisibilityAggregate) -> None:
        for s, hist in other.seconds.items():
            self.seconds.setdefault(s, LatencyHistogram()).merge(hist)
        for s, n in other.timeouts.items():
            self.timeouts[s] = self.timeouts.get(s, 0) + n
        self.skipped += other.skipped

    def span(self, start: int = 0, end: int | None = None) -> tuple[LatencyHistogram, int]:
        """(lag histogram, timeouts) of the probes acknowledged in seconds [start, end)."""
        hist = LatencyHistogram()
        timeouts = 0
        for s, h in self.seconds.items():
            if s >= start and (end is None or s < end):
                hist.merge(h)
        for s, n in self.timeouts.items():
            if s >= start and (end is None or s < end):
                timeouts += n
        return hist, timeouts

    def windows(self, width: int, seconds: int) -> Iterator[tuple[int, int, LatencyHistogram]]:
        """(start, end, histogram) of every full `width`-second window of a run this long."""
        for start in range(0, max(seconds - width, 0) + 1):
            hist, _ = self.span(start, start + width)
            yield start, start + width, hist

    @property
    def empty(self) -> bool:
        return not self.seconds and not self.timeouts and not self.skipped

    # --- results ----------------------------------------------------------------------------

    def block(self) -> dict[str, Any]:
        from replay.results import latency_block

        hist, timeouts = self.span()
        out = latency_block(hist)
        out["timeouts"] = timeouts
        out["skipped"] = self.skipped
        out["histogram"] = hist.encode()
        return out

    def add_to_results(self, results: dict[str, Any]) -> None:
        """Write the run block and each timeline second's part into a results document."""
        results["visibility_lag_ms"] = self.block()
        by_t = {int(entry["t"]): entry for entry in results.get("timeline", [])}
        for s in sorted(set(self.seconds) | set(self.timeouts)):
            entry = by_t.get(s)
            if entry is None:
                continue  # acknowledged after the last second the run kept: in the block only
            hist = self.seconds.get(s, LatencyHistogram())
            entry["visibility_lag_ms"] = {
                "count": hist.count,
                "timeouts": self.timeouts.get(s, 0),
                "histogram": hist.encode(),
            }

    @classmethod
    def from_results(cls, results: Mapping[str, Any], name: str) -> VisibilityAggregate | None:
        """The probes a results document holds, or None when it holds none."""
        from replay.results import ResultsError

        block = results.get("visibility_lag_ms")
        if block is None:
            return None
        agg = cls()
        try:
            skipped = block.get("skipped", 0)
            if not isinstance(skipped, int) or skipped < 0:
                raise ValueError("skipped: expected a count")
            agg.skipped = skipped
            for i, entry in enumerate(results.get("timeline", [])):
                part = entry.get("visibility_lag_ms")
                if part is None:
                    continue
                s = int(entry["t"])
                timeouts = part.get("timeouts", 0)
                if not isinstance(timeouts, int) or timeouts < 0:
                    raise ValueError(f"timeline[{i}].visibility_lag_ms.timeouts: expected a count")
                if timeouts:
                    agg.timeouts[s] = agg.timeouts.get(s, 0) + timeouts
                hist = LatencyHistogram.decode(part["histogram"])
                if hist.count:
                    agg.seconds.setdefault(s, LatencyHistogram()).merge(hist)
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise ResultsError(f"{name}: visibility_lag_ms: {exc}") from None
        return agg


def merged(
    results: Sequence[Mapping[str, Any]], names: Sequence[str]
) -> VisibilityAggregate | None:
    """The probes of several results documents together, or None when none holds any."""
    parts = [VisibilityAggregate.from_results(r, n) for r, n in zip(results, names, strict=True)]
    present = [p for p in parts if p is not None]
    if not present:
        return None
    total = VisibilityAggregate()
    for p in present:
        total.merge(p)
    return total
