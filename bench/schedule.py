"""Open-model accuracy of one worker: does `replay run --rate R` send what it offers, on time?

    .venv/bin/python bench/schedule.py [--rate 25000] [--duration 10] [--search]
                                       [--corpus body|ingestion] [--max-load 0.3]

nginx (bench/nginx.conf) runs pinned to core 0; `replay run CORPUS --rate R --workers 1`
pinned to core 1. For the fixed rate it prints achieved ÷ offered (requests answered over
requests that came due; the rest were dropped at --max-inflight or not answered) and the
send lag (sent − intended) p50, p99 and max. With --search it then looks for the highest
rate that is still accurate, `achieved >= 99% of offered and send-lag p99 <= 2 ms`: up
from --from in steps of --step while runs pass, then halving the interval between the last
pass and the first failure down to --resolution, at most --probes runs.

--corpus body (the default) replays 1.8 KB JSON bodies with one id and one timestamp each
(the peers benchmark's corpus); ingestion, the bundled ingestion corpus (2-5 KB bodies with
about ten timestamps and a dozen ids each). Every request goes to 127.0.0.1; each run is
bounded by --duration. A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common

P99_LAG_MS = 2.0
ACHIEVED = 0.99


def corpus_path(name: str) -> Path:
    if name == "body":
        return common.cached_corpus(20_000)[0]
    from corpora import BUNDLED, bundled_path

    if name in BUNDLED:
        return Path(bundled_path(name))
    return Path(name)


def probe(url: str, corpus: Path, rate: float, args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-schedule-") as tmp:
        argv = common.replay_argv(
            corpus, url, "--rate", f"{rate:g}", "--workers", "1",
            "--duration", f"{args.duration}s", "--max-inflight", str(args.max_inflight),
            out=Path(tmp) / "r.json",
        )  # fmt: skip
        load = common.load1()
        others = common.Others(args.server_pid)
        results = common.run_replay(common.pinned(args.tool_core, argv), args.duration + 60)
        other_cores = others.cores()
    totals, lag = results["totals"], results["send_lag_ms"]
    offered = totals["offered"] or 1
    row = {
        "rate": rate,
        "offered": totals["offered"],
        "achieved": totals["requests"] / offered,
        "dropped": totals["dropped"],
        "errors": totals["errors"],
        "lag_p50": lag["p50"],
        "lag_p99": lag["p99"],
        "lag_max": lag["max"],
        "latency_p99": results["latency_ms"]["p99"],
        "load": load,
        "others": other_cores,
    }
    row["ok"] = row["achieved"] >= ACHIEVED and (row["lag_p99"] or 0) <= P99_LAG_MS
    common.say(
        f"rate {rate:>8,.0f}/s  achieved {row['achieved']:.2%}  lag p50 {row['lag_p50']} "
        f"p99 {row['lag_p99']} max {row['lag_max']} ms  {'ok' if row['ok'] else 'NOT ok'}"
        f"  (load {load:.2f}, others {other_cores:.2f} cores)"
    )
    return row


def search(url: str, corpus: Path, args: argparse.Namespace) -> tuple[float, list[Any]]:
    rows: list[Any] = []
    good, bad = 0.0, None
    rate = float(args.start)
    while bad is None and len(rows) < args.probes:
        time.sleep(args.pause)
        rows.append(probe(url, corpus, rate, args))
        if rows[-1]["ok"]:
            good, rate = rate, rate + args.step
        else:
            bad = rate
    while bad is not None and bad - good > args.resolution and len(rows) < args.probes:
        rate = round((good + bad) / 2, -2)
        time.sleep(args.pause)
        rows.append(probe(url, corpus, rate, args))
        if rows[-1]["ok"]:
            good = rate
        else:
            bad = rate
    return good, rows


def _line(row: dict[str, Any]) -> str:
    return (
        f"| {row['rate']:,.0f} | {row['offered']:,} | {row['achieved']:.2%} | {row['dropped']:,}"
        f" | {row['lag_p50']} | {row['lag_p99']} | {row['lag_max']} | {row['latency_p99']} |"
        f" {'yes' if row['ok'] else 'no'} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=25_000)
    parser.add_argument("--duration", type=int, default=10, help="seconds per run")
    parser.add_argument("--corpus", default="body", help="body, a bundled name, or a file")
    parser.add_argument("--max-inflight", type=int, default=1000)
    parser.add_argument("--search", action="store_true", help="find the highest accurate rate")
    parser.add_argument("--start", type=float, default=20_000, help="search from this rate")
    parser.add_argument("--step", type=float, default=5_000)
    parser.add_argument("--resolution", type=float, default=1_000)
    parser.add_argument("--probes", type=int, default=8)
    common.quiet_options(parser)
    parser.add_argument("--pause", type=float, default=2.0, help="s between runs")
    args = parser.parse_args()
    corpus = corpus_path(args.corpus)

    with common.nginx(args.target_core) as server:
        url = server.url
        args.server_pid = server.pid
        load = common.wait_quiet(args.max_load, args.patience)
        fixed = probe(url, corpus, args.rate, args)
        best, rows = search(url, corpus, args) if args.search else (None, [])
    print(f"date      {common.today()}")
    print(f"machine   {common.machine()}")
    others = [r["others"] for r in [fixed, *rows]]
    print(
        f"load avg  {load:.2f} at the start; other processes used "
        f"{min(others):.2f}-{max(others):.2f} cores during the runs"
    )
    print(
        f"setup     nginx on core {args.target_core}; replay run {corpus.name} --rate R "
        f"--workers 1 --duration {args.duration}s on core {args.tool_core}; max-inflight "
        f"{args.max_inflight}; accurate = achieved >= {ACHIEVED:.0%} of offered and "
        f"send-lag p99 <= {P99_LAG_MS:g} ms"
    )
    print()
    print("| rate (req/s) | offered | achieved | dropped | lag p50 | lag p99 | lag max |"
          " latency p99 | accurate |")  # fmt: skip
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    for row in [fixed, *rows]:
        print(_line(row))
    print("(lag and latency in ms)")
    if best is not None:
        print(f"\nhighest accurate rate found: {best:,.0f} req/s (one worker, one core)")


if __name__ == "__main__":
    main()
