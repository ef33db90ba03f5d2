"""Two workers against one: does `replay run --workers 2` do twice the work of one worker?

    .venv/bin/python bench/scaling.py [--rounds 3] [--duration 10] [--vus 50] [--rate 10000]

Two measurements, each alternating W = 1 and W = 2 for --rounds rounds, against nginx
(unpinned, as are the workers: on a 2-core machine the target has to share the cores):

    closed      `replay run CORPUS --vus 50 --workers W`: req/s. With two workers the
                target competes for the same two cores, so this ratio is a floor, not the
                generator's scaling.
    open        `replay run CORPUS --rate R·W --workers W`: each worker offered the same R.
                Two workers should answer 2R as accurately as one answers R (achieved ÷
                offered, send-lag p99) at the same CPU per request: that is linear scaling
                while the target is not the bottleneck (at R the target has CPU to spare).

CPU per request is user + system of the whole replay process tree (coordinator and workers,
startup included) over the requests answered. Every request goes to 127.0.0.1; each run
stops by itself. A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common

SERVER_PID = [0]  # nginx, whose CPU is not "other processes"


def run(url: str, corpus: Path, workers: int, load: list[str], secs: int) -> dict[str, float]:
    """req/s, achieved ÷ offered, send-lag p99 and CPU µs per request of one run."""
    with tempfile.TemporaryDirectory(prefix="bench-scaling-") as tmp:
        argv = common.replay_argv(
            corpus, url, *load, "--workers", str(workers), "--duration", f"{secs}s",
            out=Path(tmp) / "r.json",
        )  # fmt: skip
        before = common.children_cpu_s()
        others = common.Others(SERVER_PID[0])
        results = common.run_replay(argv, secs + 60)
        cpu = common.children_cpu_s() - before
        other_cores = others.cores()
    totals = results["totals"]
    return {
        "rps": float(totals["achieved_rps"]),
        "achieved": totals["requests"] / max(totals["offered"], 1),
        "lag_p99": float(results["send_lag_ms"]["p99"] or 0),
        "cpu_us": cpu / max(totals["requests"], 1) * 1e6,
        "others": other_cores,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=10, help="seconds per run")
    parser.add_argument("--vus", type=int, default=50)
    parser.add_argument("--rate", type=float, default=10_000, help="per worker, open model")
    common.quiet_options(parser, pinned=False)
    parser.add_argument("--pause", type=float, default=2.0)
    args = parser.parse_args()
    corpus, _ = common.cached_corpus(20_000)
    runs: dict[tuple[str, int], list[dict[str, float]]] = {}
    with common.nginx(None) as server:
        url = server.url
        SERVER_PID[0] = server.pid
        load = common.wait_quiet(args.max_load, args.patience)
        for r in range(args.rounds):
            for model in ("closed", "open"):
                for w in (1, 2) if r % 2 == 0 else (2, 1):
                    time.sleep(args.pause)
                    how = ["--vus", str(args.vus)] if model == "closed" else [
                        "--rate", f"{args.rate * w:g}"]  # fmt: skip
                    row = run(url, corpus, w, how, args.duration)
                    runs.setdefault((model, w), []).append(row)
                    common.say(
                        f"round {r + 1} {model} W={w}: {row['rps']:,.0f} req/s, achieved "
                        f"{row['achieved']:.2%}, lag p99 {row['lag_p99']} ms, "
                        f"{row['cpu_us']:.1f} µs CPU/req, others {row['others']:.2f} cores"
                    )

    def med(model: str, w: int, key: str) -> float:
        return statistics.median(x[key] for x in runs[(model, w)])

    print(f"date      {common.today()}")
    print(f"machine   {common.machine()}")
    others = [x["others"] for rows in runs.values() for x in rows]
    print(
        f"load avg  {load:.2f} at the start; other processes used "
        f"{min(others):.2f}-{max(others):.2f} cores during the runs"
    )
    print(
        f"setup     1.8 KB JSON bodies vs nginx (all unpinned); closed: --vus {args.vus}; "
        f"open: --rate {args.rate:g} per worker; {args.duration}s runs, {args.rounds} rounds"
    )
    print()
    print("| model | workers | req/s (median) | achieved | send-lag p99 (ms) | CPU µs/req |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for model in ("closed", "open"):
        for w in (1, 2):
            print(
                f"| {model} | {w} | {med(model, w, 'rps'):,.0f} | "
                f"{med(model, w, 'achieved'):.2%} | {med(model, w, 'lag_p99')} | "
                f"{med(model, w, 'cpu_us'):.1f} |"
            )
    print()
    closed = med("closed", 2, "rps") / med("closed", 1, "rps")
    opened = med("open", 2, "rps") / med("open", 1, "rps")
    print(f"closed, 2 ÷ 1 workers: {closed:.2f}x (the target shares the two cores)")
    print(f"open, 2 ÷ 1 workers:   {opened:.2f}x at {args.rate:g}/s per worker")


if __name__ == "__main__":
    main()
