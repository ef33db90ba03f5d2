"""What one record costs `capture record`'s writer process, offline: microseconds per
request of its whole per-record work, and of span finding alone (keyscan's fast path and
the reference walk over every JSON token), on the ingestion bodies bench/record.py sends.

    .venv/bin/python bench/record_cost.py [--records 5000] [--body-bytes 3000] [--repeat 5]

The writer's work is `RecordWriter.drain` over requests handed to it as the proxy hands
them (headers as wrk sends them, an answer known), into a corpus in a temporary
directory: headers, the head check, decoding, span finding, the corpus writer. Each
figure is the best of --repeat runs (the least disturbed on a shared machine), with the
load average before the first. No network, no processes: this measures the writer's CPU
per record without the proxy, which bench/record.py measures together with it.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.record import ingestion_body
from capture.record_writer import RecordWriter
from capture.recording import RecordOptions
from capture.spans import find_spans, path_spans, walked_body_spans

PATH = "/api/public/traces"


def best_us(work: Callable[[], None], count: int, repeat: int) -> float:
    """The best of `repeat` timings of `work`, in microseconds per one of its `count` items."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - start)
    return best / count * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=5000)
    parser.add_argument("--body-bytes", type=int, default=3000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    body = ingestion_body(args.body_bytes)
    headers = (
        ("Host", "127.0.0.1:8080"),
        ("Content-Type", "application/json"),
        ("Authorization", "Bearer sk-bench-not-a-secret"),
        ("Content-Length", str(len(body))),
    )
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    with tempfile.TemporaryDirectory(prefix="bench-record-cost-") as tmp:
        options = RecordOptions(output=Path(tmp) / "cost.atc", upstream="http://127.0.0.1:9")
        writer = RecordWriter(options, 0, "2026-01-01T00:00:00Z")
        clock = [0]

        def write() -> None:
            for _ in range(args.records):
                clock[0] += 1000
                writer.add(clock[0], "ingest", "POST", PATH, headers, body)
                writer.answer(writer._next - 1, 200, 500_000)
            writer.drain(clock[0], everything=True, limit=1 << 62)

        per_record = best_us(write, args.records, args.repeat)
        if writer.error is not None:
            raise SystemExit(writer.error)
        writer.finish({}, clock[0])

    def spans(finder: Callable[[], object]) -> Callable[[], None]:
        def run() -> None:
            for _ in range(args.records):
                finder()

        return run

    fast = best_us(spans(lambda: find_spans(body, PATH)), args.records, args.repeat)
    walked = best_us(
        spans(lambda: (walked_body_spans(body), path_spans(PATH))), args.records, args.repeat
    )
    print(
        f"{len(body):,}-byte ingestion body, load {load}: writer {per_record:.1f} µs per record; "
        f"span finding {fast:.1f} µs (fast path), {walked:.1f} µs (walking every token)"
    )


if __name__ == "__main__":
    main()
