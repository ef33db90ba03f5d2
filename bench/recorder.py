"""Micro-benchmark of the worker's hot path: ns per ``IntervalRecorder.record`` and the cost
of one ``flush`` at 25,000 records (issue 5's budget: 25,000 req/s on one core).

    .venv/bin/python bench/recorder.py [--records 25000] [--repeat 7]

Prints the best of ``--repeat`` runs (the least disturbed by the machine), and for scale the
cost of an empty method call with the same arguments, measured the same way. Also times the
coordinator's ``RunAggregate.add`` of that delta, and ``record_many`` against hdrh's
per-value ``record_value``.
"""

from __future__ import annotations

import argparse
import gc
import time

import numpy as np
from hdrh.histogram import HdrHistogram

from replay.aggregate import RunAggregate
from replay.histogram import HIGHEST_US, LatencyHistogram
from replay.recorder import IntervalRecorder

ENDPOINTS = ("ingest", "list", "get", "search")
OUTCOMES = ("200", "200", "200", "503", "timeout")


class _Empty:
    __slots__ = ()

    def record(
        self, endpoint: str, outcome: str, intended_ns: int, sent_ns: int, done_ns: int
    ) -> None:
        pass


def _inputs(n: int, seed: int = 7) -> list[tuple[str, str, int, int, int]]:
    rng = np.random.default_rng(seed)
    base = time.perf_counter_ns()
    intended = base + np.arange(n, dtype=np.int64) * 40_000  # 25,000/s
    sent = intended + rng.integers(0, 200_000, n)
    done = sent + rng.lognormal(np.log(15e6), 0.6, n).astype(np.int64)
    return [
        (ENDPOINTS[i % 4], OUTCOMES[i % 5], int(a), int(b), int(c))
        for i, (a, b, c) in enumerate(zip(intended, sent, done, strict=True))
    ]


def _time_records(target: object, calls: list[tuple[str, str, int, int, int]]) -> float:
    record = target.record  # type: ignore[attr-defined]
    gc.disable()
    try:
        started = time.perf_counter_ns()
        for endpoint, outcome, a, b, c in calls:
            record(endpoint, outcome, a, b, c)
        return (time.perf_counter_ns() - started) / len(calls)
    finally:
        gc.enable()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=25_000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    calls = _inputs(args.records)

    empty = min(_time_records(_Empty(), calls) for _ in range(args.repeat))
    record_ns, flush_ms, add_ms, size = [], [], [], 0
    for _ in range(args.repeat):
        recorder = IntervalRecorder(worker=0)
        recorder.offered(len(calls))
        record_ns.append(_time_records(recorder, calls))
        started = time.perf_counter_ns()
        delta = recorder.flush(interval=0, inflight=10)
        flush_ms.append((time.perf_counter_ns() - started) / 1e6)
        size = len(delta)
        aggregate = RunAggregate()
        started = time.perf_counter_ns()
        aggregate.add(delta)
        add_ms.append((time.perf_counter_ns() - started) / 1e6)

    values = np.random.default_rng(1).lognormal(np.log(15_000), 0.6, args.records).astype(np.int64)
    hist = LatencyHistogram()
    started = time.perf_counter_ns()
    hist.record_many(values)
    numpy_ms = (time.perf_counter_ns() - started) / 1e6
    hdr = HdrHistogram(1, HIGHEST_US, 3)
    started = time.perf_counter_ns()
    for v in values.tolist():
        hdr.record_value(v)
    hdrh_ms = (time.perf_counter_ns() - started) / 1e6

    n = args.records
    print(f"records per interval         {n:,}")
    print(f"record()                     {min(record_ns):6.0f} ns/call (best of {args.repeat})")
    print(
        f"  empty method call, same    {empty:6.0f} ns/call  -> record's own work "
        f"{min(record_ns) - empty:.0f} ns"
    )
    print(
        f"flush() of {n:,} records    {min(flush_ms):6.2f} ms  ({min(flush_ms) * 1e6 / n:.0f} ns"
        f" per record, on the worker's event loop)"
    )
    print(f"delta size                   {size:,} bytes")
    print(f"RunAggregate.add(delta)      {min(add_ms):6.2f} ms")
    print(
        f"record_many({n:,}) numpy     {numpy_ms:6.2f} ms; hdrh record_value loop {hdrh_ms:.1f} ms"
    )


if __name__ == "__main__":
    main()
