"""What the coordinator tells each worker: one flat, msgpack-able record per worker.

Also the sharding rule, which both sides must agree on: a record belongs to worker
`shard_of(record.trace, index, workers)`. Requests of one trace (its ingest and the reads that
name it) hash to the same worker, so a worker can point reads at traces it ingested itself;
requests that name no trace are dealt round-robin by their position in the corpus.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from replay.segments import owner, record_key

MODELS = ("timeline", "rate", "closed")
ARRIVALS = ("uniform", "poisson")


def shard_of(
    trace: str | None, index: int, workers: int, segment: int = 0, segments: int = 1
) -> int:
    """The worker (within `segment`) a record belongs to, or -1 when it belongs to another
    segment: by the CRC-32 of its trace id, or its corpus position when it names no trace
    (replay.segments)."""
    if workers <= 1 and segments <= 1:
        return 0
    mine, worker = owner(record_key(trace, index), segments, workers)
    return worker if mine == segment else -1


def split(total: int, workers: int, worker: int) -> int:
    """Worker `worker`'s share of `total` (VUs, connections): as even as integers allow."""
    return total // workers + (1 if worker < total % workers else 0)


@dataclass(frozen=True)
class WorkerConfig:
    worker: int
    workers: int
    corpus: str
    target: str
    api_key: str | None
    project_id: str | None
    model: str  # one of MODELS
    duration_ns: int
    nonce: int  # random per run: keeps one run's minted ids apart from another's
    seed: int = 1
    scale: float = 1.0
    speed: float = 1.0
    rate: float = 0.0  # req/s (start rate when stages are given)
    arrival: str = "uniform"
    stages: list[tuple[int, float]] = field(default_factory=list)
    vus: int = 0  # this worker's VUs (closed model)
    think_ns: int = 0
    max_inflight: int = 1000  # this worker's connections (open models)
    timeout_ns: int = 10_000_000_000
    cache_bytes: int = 48 << 20  # keep templates in memory when the shard fits
    user_agent: str = "agenttrace-replay"
    spool_dir: str | None = None  # where a shard too large for the cache is spooled ($TMPDIR)
    build_first: bool = False  # spool all the run can reach before sending (no MAX_LEAD_NS)
    segment: int = 0  # this machine's execution segment (replay.segments) ...
    segments: int = 1  # ... of this many
    visibility_probe: float = 0.0  # fraction of acknowledged ingestions probed (replay.probe)
    visibility_timeout_ns: int = 300_000_000_000
    lane: dict[str, Any] = field(default_factory=dict)  # a scenario's own (replay.lanes)
    scenarios: list[dict[str, Any]] = field(default_factory=list)  # lanes' configs, wire form

    def to_wire(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_wire(cls, obj: dict[str, Any]) -> WorkerConfig:
        known = {f.name for f in fields(cls)}
        data = {k: v for k, v in obj.items() if k in known}
        data["stages"] = [(int(d), float(r)) for d, r in data.get("stages", [])]
        return cls(**data)
