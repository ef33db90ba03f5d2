"""Corpus speed: synth rate, decode rate, bytes per record and RSS while decoding.

    .venv/bin/python bench/corpus.py [--records 1000000] [--workload ingestion] [--keep DIR]

Prints one table. The decode pass runs in a child process pinned to one core, so that its
peak RSS is its own and the figure is per core. Goals (issue 2): decode >= 500,000
records/s on one core, synth >= 20,000 traces/s, RSS flat however long the corpus.
A benchmark, not a test: nothing in CI depends on this machine's speed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from capture.corpus import CorpusReader
from capture.synth import SynthSpec, write_synth_corpus

DECODE_CHILD = """
import json, os, sys, time, threading, resource
from capture.corpus import CorpusReader
os.sched_setaffinity(0, {int(sys.argv[2])})
samples = []
def rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
start = time.perf_counter()
n = body = 0
with CorpusReader(sys.argv[1]) as reader:
    for i, (_chunk, records) in enumerate(reader.iter_chunks()):
        n += len(records)
        for r in records:
            body += len(r.body)
        if i % 16 == 0:
            samples.append((n, rss_mb()))
elapsed = time.perf_counter() - start
print(json.dumps({"records": n, "seconds": elapsed, "body_bytes": body, "rss_samples": samples,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--workload", default="ingestion", choices=["ingestion", "query", "mixed"])
    parser.add_argument("--keep", type=Path, help="directory to keep the corpus in")
    parser.add_argument("--core", type=int, default=1, help="core to pin the decoder to")
    args = parser.parse_args()

    workdir = args.keep or Path(tempfile.mkdtemp(prefix="bench-corpus-"))
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / f"{args.workload}-{args.records}.atc"
    rate = 1000.0
    spec = SynthSpec(args.workload, rate, int(args.records / rate * 1e9), seed=42)

    started = time.perf_counter()
    write_synth_corpus(spec, path)
    synth_s = time.perf_counter() - started
    with CorpusReader(path) as reader:
        records = reader.header.records
        file_bytes = reader.file_size

    child = subprocess.run(
        [sys.executable, "-c", DECODE_CHILD, str(path), str(args.core)],
        capture_output=True,
        text=True,
        check=True,
    )
    decode = json.loads(child.stdout)
    samples = decode["rss_samples"]
    early = [mb for n, mb in samples if n <= records * 0.1] or [samples[0][1]]
    late = [mb for n, mb in samples if n >= records * 0.9] or [samples[-1][1]]

    rows = [
        (
            "machine",
            f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        ),
        ("date", datetime.now(UTC).strftime("%Y-%m-%d")),
        ("corpus", f"{args.workload}, {records:,} records, {file_bytes / 2**20:,.1f} MiB"),
        ("synth + write", f"{records / synth_s:,.0f} records/s ({synth_s:.1f} s)"),
        (
            "decode, 1 core",
            f"{decode['records'] / decode['seconds']:,.0f} records/s, "
            f"{decode['body_bytes'] / decode['seconds'] / 1e6:,.0f} MB/s of bodies",
        ),
        (
            "bytes per record",
            f"{file_bytes / records:,.0f} on disk vs {decode['body_bytes'] / records:,.0f} "
            f"of body ({decode['body_bytes'] / file_bytes:.1f}x)",
        ),
        (
            "decoder RSS",
            f"{sum(early) / len(early):.0f} MiB in the first 10%, "
            f"{sum(late) / len(late):.0f} MiB in the last 10%, "
            f"peak {decode['peak_rss_mb']:.0f} MiB",
        ),
    ]
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    if not args.keep:
        path.unlink()
        workdir.rmdir()


if __name__ == "__main__":
    main()
