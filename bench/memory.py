"""Worker memory over a long replay: RSS sampled while one worker plays a 1M-record corpus.

    .venv/bin/python bench/memory.py [--records 1000000] [--rate 20000] [--interval 0.5]
                                     [--corpus PATH] [--rounds 1]

A corpus of --records 1.8 KB JSON bodies (bench/common.py; kept in the temp dir between
runs) is far beyond the worker's 48 MB template cache, so the worker streams it: it decodes
chunks and builds templates ahead of the schedule as it goes. `replay run CORPUS --rate R
--workers 1 --duration N/R` plays every record once, pinned to core 1 against nginx on core
0; the worker's RSS (psutil) is sampled every --interval seconds from its start. Printed:
RSS while loading and over the run (by tenths, peak, first and last tenth), and whether
the schedule held (achieved ÷ offered, drops, send lag), which is what says that decoding
and building never became the bottleneck. Every request goes to 127.0.0.1; the run stops
by itself. A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common


def _wall(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--rate", type=float, default=20_000)
    parser.add_argument("--interval", type=float, default=0.5, help="s between samples")
    parser.add_argument("--corpus", type=Path, help="replay this corpus instead")
    common.quiet_options(parser)
    parser.add_argument("--rounds", type=int, default=1, help="runs, one after the other")
    args = parser.parse_args()
    if args.corpus:
        from capture.corpus import CorpusReader

        corpus = args.corpus
        with CorpusReader(corpus) as reader:
            records = reader.header.records
    else:
        common.say(f"making (or reusing) a corpus of {args.records:,} records")
        corpus, _ = common.cached_corpus(args.records)
        records = args.records
    seconds = max(1, round(records / args.rate))

    for round_ in range(1, args.rounds + 1):
        if args.rounds > 1:
            print(f"round {round_} of {args.rounds}")
        _round(args, corpus, records, seconds)
        print()


def _round(args: argparse.Namespace, corpus: Path, records: int, seconds: int) -> None:
    samples: list[tuple[float, float]] = []  # (wall time, RSS MiB)
    cpu_s = 0.0  # the worker's user + system CPU, at the last sample
    with (
        tempfile.TemporaryDirectory(prefix="bench-memory-") as tmp,
        common.nginx(args.target_core) as server,
    ):
        url = server.url
        load = common.wait_quiet(args.max_load, args.patience)
        out = Path(tmp) / "r.json"
        argv = common.replay_argv(
            corpus, url, "--rate", f"{args.rate:g}", "--workers", "1",
            "--duration", f"{seconds}s", out=out,
        )  # fmt: skip
        env = {**os.environ, "PYTHONPATH": f"{common.ROOT}{os.pathsep}"}
        proc = subprocess.Popen(
            common.pinned(args.tool_core, argv), env=env, cwd=common.ROOT,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        worker: psutil.Process | None = None
        deadline = time.monotonic() + seconds + 180
        while proc.poll() is None and time.monotonic() < deadline:
            if worker is None:
                kids = psutil.Process(proc.pid).children(recursive=True)
                found = [k for k in kids if "replay.worker" in " ".join(k.cmdline())]
                worker = found[0] if found else None
            if worker is not None:
                with contextlib.suppress(psutil.Error):
                    samples.append((time.time(), worker.memory_info().rss / 2**20))
                    times = worker.cpu_times()
                    cpu_s = times.user + times.system
            time.sleep(args.interval)
        if proc.poll() is None:
            proc.kill()
        _, stderr = proc.communicate(timeout=30)
        if proc.returncode not in (0, 99):
            sys.exit(f"bench: replay run failed ({proc.returncode}): {stderr.strip()}")
        results = json.loads(out.read_text())

    started, ended = _wall(results["meta"]["started"]), _wall(results["meta"]["ended"])
    loading = [mb for t, mb in samples if t < started]
    running = [(t, mb) for t, mb in samples if started <= t <= ended]
    totals, lag = results["totals"], results["send_lag_ms"]
    print(f"date      {common.today()}")
    print(f"machine   {common.machine()}")
    print(f"load avg  {load:.2f} at the start")
    print(
        f"setup     replay run {corpus.name} ({records:,} records) --rate {args.rate:g} "
        f"--workers 1 --duration {seconds}s on core {args.tool_core}, nginx on core "
        f"{args.target_core}; RSS sampled every {args.interval:g}s"
    )
    print()
    if loading:
        print(f"RSS while loading     {min(loading):.0f}-{max(loading):.0f} MiB")
    if running:
        n = len(running)
        tenths = [running[min(n - 1, i * n // 10)][1] for i in range(10)] + [running[-1][1]]
        first = [mb for _, mb in running[: max(1, n // 10)]]
        last = [mb for _, mb in running[-max(1, n // 10) :]]
        by_tenths = " ".join(f"{mb:.0f}" for mb in tenths)
        print(f"RSS over the run      {by_tenths} MiB (by tenths)")
        print(
            f"                      peak {max(mb for _, mb in running):.0f} MiB; first tenth "
            f"{sum(first) / len(first):.0f}, last tenth {sum(last) / len(last):.0f} MiB"
        )
    print(
        f"schedule              {totals['requests']:,} of {totals['offered']:,} offered answered "
        f"({totals['requests'] / max(totals['offered'], 1):.2%}), {totals['dropped']:,} dropped; "
        f"send lag p50 {lag['p50']} p99 {lag['p99']} max {lag['max']} ms"
    )
    drops = [(e["t"], e["dropped"], e["inflight"]) for e in results["timeline"] if e["dropped"]]
    if drops:  # when, and with how many requests in flight (--max-inflight is 1000)
        shown = ", ".join(f"{t}s: {d:,} (inflight {i:,})" for t, d, i in drops[:8])
        print(f"dropped in second     {shown}{' ...' if len(drops) > 8 else ''}")
    for note in results["meta"].get("notes", []):
        print(f"note                  {note}")
    print(
        f"worker CPU            {cpu_s:.1f} s for the whole process (load and run), "
        f"{cpu_s / max(totals['requests'], 1) * 1e6:.1f} µs per request"
    )


if __name__ == "__main__":
    main()
