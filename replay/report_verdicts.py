"""The guide's performance targets, judged on one phase of a run: met, minimum only, missed.

    ingestion p99 latency   < 100 ms target, < 500 ms minimum   (endpoints ingest, batch)
    query p99 latency       < 500 ms target, < 2 s minimum      (list, get, search, metrics,
                                                                 graphql: the guide's query test)
    ingestion throughput    10,000/s target, 1,000/s minimum    (successful ingestion requests)
    error rate              < 1% (the guide's http_req_failed: rate<0.01)
    concurrent users        1,000 target, 100 minimum           (when the run records VUs)

They are judged on the phase that carries the most load: the spike of a spike-shaped run,
else the phase with the highest offered rate (the whole run when it has one phase). A
target the run did not exercise (no query requests, say) is "not measured".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

INGEST_ENDPOINTS = ("ingest", "batch")
QUERY_ENDPOINTS = ("list", "get", "search", "metrics", "graphql")

MET, MINIMUM, MISSED, UNMEASURED = "met", "minimum only", "missed", "not measured"


@dataclass(frozen=True)
class Verdict:
    name: str
    value: float | None
    unit: str
    target: float
    minimum: float | None
    higher_is_better: bool
    phase: str
    note: str = ""

    @property
    def status(self) -> str:
        if self.value is None:
            return UNMEASURED
        if self._holds(self.target):
            return MET
        if self.minimum is not None and self._holds(self.minimum):
            return MINIMUM
        return MISSED

    def _holds(self, bound: float) -> bool:
        assert self.value is not None
        return self.value >= bound if self.higher_is_better else self.value < bound

    def bounds_text(self) -> str:
        op = "≥" if self.higher_is_better else "<"
        text = f"{op} {self.target:,g} {self.unit}"
        return text + ("" if self.minimum is None else f" (minimum {op} {self.minimum:,g})")

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "value": self.value,
            "unit": self.unit,
            "target": self.target,
            "minimum": self.minimum,
            "status": self.status,
            "phase": self.phase,
            "note": self.note,
        }


@dataclass(frozen=True)
class PhaseFigures:
    """What the verdicts need of the judged phase."""

    name: str
    seconds: float
    ingest_p99_ms: float | None
    query_p99_ms: float | None
    ingest_ok: int
    ingest_offered: int
    requests: int
    errors: int
    max_active_vus: int | None


def judge(f: PhaseFigures, generator_limited: bool) -> list[Verdict]:
    """The guide's targets on phase ``f``."""
    caveat = (
        "the load generator was the limit in this run: the figure may be the generator's"
        if generator_limited
        else ""
    )
    out = [
        Verdict("ingestion p99 latency", f.ingest_p99_ms, "ms", 100, 500, False, f.name, caveat),
        Verdict("query p99 latency", f.query_p99_ms, "ms", 500, 2000, False, f.name, caveat),
    ]
    rate = f.ingest_ok / f.seconds if f.seconds > 0 and f.ingest_offered else None
    offered = f.ingest_offered / f.seconds if f.seconds > 0 else 0.0
    note = caveat
    if rate is not None and offered < 10_000:
        note = (
            f"the run offered {offered:,.0f} ingestion requests/s in this phase: the figure "
            "shows what was asked of the target, not its capacity"
        )
    out.append(
        Verdict(
            "ingestion throughput",
            None if rate is None else round(rate, 3),
            "req/s",
            10_000,
            1_000,
            True,
            f.name,
            note,
        )
    )
    error_rate = f.errors / f.requests if f.requests else None
    out.append(
        Verdict(
            "error rate",
            None if error_rate is None else round(100 * error_rate, 6),
            "%",
            1,
            None,
            False,
            f.name,
        )
    )
    if f.max_active_vus is not None:
        out.append(
            Verdict(
                "concurrent users",
                f.max_active_vus,
                "VUs",
                1_000,
                100,
                True,
                f.name,
                "the most VUs active in this phase; read it with the latency verdicts",
            )
        )
    return out


def judged_phase(
    names: Sequence[str],
    offered_rps: Sequence[float | None],
    lengths: Sequence[float],
    spike_shaped: bool,
) -> int:
    """Index of the phase the targets are judged on: the spike, else the longest of the
    phases whose offered rate is within 1% of the highest."""
    if spike_shaped and "spike" in names:
        return list(names).index("spike")
    rates = [r if r is not None else -1.0 for r in offered_rps]
    best = max(rates, default=-1.0)
    close = [i for i, r in enumerate(rates) if r >= 0.99 * best]
    return max(close, key=lambda i: (lengths[i], -i)) if close else 0
