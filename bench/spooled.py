"""A spooled corpus beside a cached one, in one run: closed-model req/s and the open model.

    .venv/bin/python bench/spooled.py [--records 500000] [--rounds 2] [--duration 10]
                                      [--vus 50] [--rate 25000] [--spool-dir DIR]

The long corpus is a synthetic ingestion corpus of --records records (`capture synth
--workload ingestion`, kept in the temp dir between runs): far beyond a worker's 48 MB
template cache, so the worker spools it. The bundled ingestion corpus fits the cache. Each
round, one worker pinned to --tool-core against nginx on --target-core:

    closed   replay run CORPUS --vus V --workers 1 --duration Ds, cached then spooled
    open     replay run LONG --rate R --workers 1 --duration Ds: achieved, send-lag p99

With --profile, the first spooled closed run is sampled by py-spy (the `bench` extra): the
share of the worker's samples while it sends (loading left out) in reading the spool back,
rendering, and sending, which says where a spooled request's extra cost goes.

Printed per round with the 1-minute load average at its start, then the ratio spooled ÷
cached of the closed-model req/s (goal >= 0.90) and the open model against its goal
(achieved >= 99%, send-lag p99 <= 2 ms). The machine may be shared: the ratio of two runs
side by side says more than either figure. Every request goes to 127.0.0.1; every run stops
by itself. A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import collections
import re
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common

CLOSED_GOAL = 0.90
ACHIEVED_GOAL = 0.99
LAG_GOAL_MS = 2.0


def long_corpus(records: int) -> Path:
    """A synthetic ingestion corpus of about `records` records, kept in the temp dir."""
    from capture.synth import SynthSpec, write_synth_corpus

    rate = 20_000
    seconds = max(1, round(records / rate))
    path = Path(tempfile.gettempdir()) / f"agenttrace-bench-ingestion-{rate}x{seconds}s.atc"
    if not path.exists():
        common.say(f"synthesising {path.name} (ingestion, {rate}/s for {seconds}s)")
        partial = path.with_suffix(".partial.atc")
        spec = SynthSpec("ingestion", float(rate), seconds * common.NS, seed=1)
        write_synth_corpus(spec, partial)
        partial.replace(path)
    return path


# where a sending worker's samples go: (label, function names whose frames count)
SHARES = (
    ("reading the spool back (pread, LZ4, the flat layout)", ("_pass", "_pread", "items")),
    ("rendering templates", ("fill", "render", "iso")),
    ("writing to sockets", ("send",)),
    (
        "building templates (behind the sends)",
        ("build_template", "part_of", "pack", "splice", "add", "_flush", "prefix_of", "_checked"),
    ),
)
TOP = 8  # functions listed by their own share


def _name(frame: str) -> str:
    """A py-spy frame's function name, without its file and class."""
    return re.sub(r" \(.*$", "", frame).rpartition(".")[2]


def profile_shares(raw: Path) -> tuple[list[tuple[str, float]], list[tuple[str, float]], int]:
    """Self-time shares in the worker process while it sends (its event loop), from py-spy's
    raw output: by SHARES, then the TOP functions; and the samples counted."""
    self_time: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        if not any(f.startswith("process") and "replay.worker" in f for f in frames):
            continue
        names = [_name(f) for f in frames]
        if "run" not in names:
            continue  # loading (the spool being built before the start), imports, the pipe
        total += int(count)
        self_time[names[-1]] += int(count)
    shares = [(label, sum(self_time[n] for n in names) / max(total, 1)) for label, names in SHARES]
    top = [(name, n / max(total, 1)) for name, n in self_time.most_common(TOP)]
    return shares, top, total


def run(
    corpus: Path, url: str, args: argparse.Namespace, *model: str, profile: Path | None = None
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-spooled-") as tmp:
        extra = ["--spool-dir", str(args.spool_dir)] if args.spool_dir else []
        argv = common.replay_argv(
            corpus, url, *model, "--workers", "1", "--duration", f"{args.duration}s", *extra,
            out=Path(tmp) / "r.json",
        )  # fmt: skip
        if profile is not None:
            spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
            argv = [spy, "record", "--subprocesses", "--format", "raw", "-r", "100", "-o",
                    str(profile), "--", *argv]  # fmt: skip
        load = common.load1()
        results = common.run_replay(common.pinned(args.tool_core, argv), args.duration + 600)
    totals, lag = results["totals"], results["send_lag_ms"]
    return {
        "load": load,
        "rps": float(totals["achieved_rps"]),
        "achieved": totals["requests"] / max(totals["offered"], 1),
        "dropped": totals["dropped"],
        "errors": totals["errors"],
        "lag_p99": lag["p99"],
        "lag_max": lag["max"],
        "notes": results["meta"].get("notes", []),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=500_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--duration", type=int, default=10, help="s per run")
    parser.add_argument("--vus", type=int, default=50)
    parser.add_argument("--rate", type=float, default=25_000, help="open model, req/s")
    parser.add_argument("--spool-dir", type=Path, help="where the worker spools (a disk)")
    parser.add_argument("--profile", action="store_true", help="py-spy the first spooled run")
    common.quiet_options(parser)
    args = parser.parse_args()
    from capture.corpus import CorpusReader
    from corpora import bundled_path

    cached = Path(bundled_path("ingestion"))
    spooled = long_corpus(args.records)
    with CorpusReader(spooled) as reader:
        records = reader.header.records
    closed = ("--vus", str(args.vus))
    rows: list[tuple[dict[str, Any], dict[str, Any], dict[str, Any]]] = []
    shares: tuple[list[tuple[str, float]], list[tuple[str, float]], int] | None = None
    with (
        tempfile.TemporaryDirectory(prefix="bench-spooled-") as tmp,
        common.nginx(args.target_core) as server,
    ):
        load = common.wait_quiet(args.max_load, args.patience)
        for round_ in range(1, args.rounds + 1):
            a = run(cached, server.url, args, *closed)
            raw = Path(tmp) / "profile.txt" if args.profile and round_ == 1 else None
            b = run(spooled, server.url, args, *closed, profile=raw)
            if raw is not None:
                shares = profile_shares(raw)
            c = run(spooled, server.url, args, "--rate", f"{args.rate:g}")
            common.say(
                f"round {round_}: closed cached {a['rps']:,.0f} spooled {b['rps']:,.0f} req/s "
                f"({b['rps'] / max(a['rps'], 1):.2f}x); open {c['achieved']:.2%} "
                f"p99 {c['lag_p99']} ms"
            )
            rows.append((a, b, c))

    print(f"date      {common.today()}")
    print(f"machine   {common.machine()}")
    print(f"load avg  {load:.2f} at the start")
    print(
        f"setup     one worker on core {args.tool_core}, nginx on core {args.target_core}; "
        f"closed: --vus {args.vus} --duration {args.duration}s; open: --rate {args.rate:g} "
        f"--duration {args.duration}s; cached = bundled ingestion, spooled = {spooled.name} "
        f"({records:,} records)"
    )
    print()
    print(
        "| round | load | closed cached req/s | closed spooled req/s | spooled ÷ cached "
        "| open achieved | open dropped | send-lag p99 | lag max |"
    )
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for i, (a, b, c) in enumerate(rows, 1):
        print(
            f"| {i} | {a['load']:.2f} / {b['load']:.2f} / {c['load']:.2f} | {a['rps']:,.0f} "
            f"| {b['rps']:,.0f} | {b['rps'] / max(a['rps'], 1):.2f} | {c['achieved']:.2%} "
            f"| {c['dropped']:,} | {c['lag_p99']} ms | {c['lag_max']} ms |"
        )
    ratios = sorted(b["rps"] / max(a["rps"], 1) for a, b, _c in rows)
    median = ratios[len(ratios) // 2]
    opens = [c for _a, _b, c in rows]
    held = sum(c["achieved"] >= ACHIEVED_GOAL and (c["lag_p99"] or 0) <= LAG_GOAL_MS for c in opens)
    print()
    print(
        f"closed    spooled ÷ cached median {median:.2f} over {len(rows)} rounds "
        f"(goal >= {CLOSED_GOAL:.2f}: {'met' if median >= CLOSED_GOAL else 'not met'})"
    )
    print(
        f"open      goal (achieved >= {ACHIEVED_GOAL:.0%}, send-lag p99 <= {LAG_GOAL_MS:g} ms) "
        f"held in {held} of {len(opens)} rounds"
    )
    for note in sorted({n for c in opens for n in c["notes"]}):
        print(f"note      {note}")
    if shares is not None:
        by_kind, top, samples = shares
        print(f"profile   py-spy, round 1's spooled closed run ({samples:,} samples, sending):")
        for label, share in by_kind:
            print(f"          {share:6.1%} {label}")
        print("          own time of the busiest functions:")
        for name, share in top:
            print(f"          {share:6.1%} {name}")


if __name__ == "__main__":
    main()
