"""A spooled corpus beside a cached one, in one run: closed-model req/s and the open model.

    .venv/bin/python bench/spooled.py [--records 500000] [--rounds 2] [--duration 10]
                                      [--vus 50] [--rate 25000] [--spool-dir DIR]

The long corpus is a synthetic ingestion corpus of --records records (`capture synth
--workload ingestion`, kept in the temp dir between runs): far beyond a worker's 48 MB
template cache, so the worker spools it. The bundled ingestion corpus fits the cache. Each
round, one worker pinned to --tool-core against nginx on --target-core:

    closed   replay run CORPUS --vus V --workers 1 --duration Ds, cached then spooled in
             odd rounds, spooled then cached in even ones (a slow spell hits both alike)
    together the same two closed runs at once, both workers on the tool core, started at
             one instant (--start-at, once the spooled one has built its spool): they share
             the core's time, so each one's req/s goes as the inverse of its own CPU cost
             per request, measured over the same seconds of the same machine, however its
             speed moves (the runs one after the other can fall in different spells). They
             also contend: together they send far less than either alone, and how many
             replies each finds ready per turn of its loop depends on when the other runs,
             so this is a view under contention, not a clean ratio of costs
    open     replay run LONG --rate R --workers 1 --duration Ds: achieved, send-lag p99
             (starting within seconds, building the rest behind its sends); the same with
             --build-first (every template built before the first request: the spool is
             only read back while sending); then the bundled corpus (cached), which says
             what the machine holds at that rate

The worker's CPU time and RSS are sampled every SAMPLE_S (psutil): CPU per request over the
run (from the results' start to their end: building the spool first is left out), the time
from the worker's start to the run's (loading, with what it builds before sending), RSS
while sending, and the time the hypervisor took from the worker's core while it sent (steal,
/proc/stat): an open run falls behind its schedule for as long, whatever the tool. In a
closed run the worker is CPU-bound, so cached ÷ spooled CPU per request
is what the req/s ratio would be on a quiet machine; it is less disturbed by other work on
a shared one than req/s.

With --profile, round 1's two closed runs at once ("together") are sampled by py-spy (the
`bench` extra): the share of the spooled worker's samples while it sends (loading left out)
in reading the spool back, rendering, sending and building; then, for the functions that
differ most, each one's own samples turned into µs per request in each run (samples ÷
SPY_HZ ÷ requests), which says where a spooled request's extra cost goes.

Printed per round with the 1-minute load average at its start and the core probe (the ms
bench/common.py's fixed loop takes on the worker's core: this machine's speed varies by the
hour), then the ratio spooled ÷ cached of the closed-model req/s (goal >= 0.90), the open
model against its goal (achieved >= 99%, send-lag p99 <= 2 ms) and the spooled worker's RSS
(goal < 150 MiB), and the runs' notes. The machine may be shared: the ratio of two runs side
by side says more than either figure. Every request goes to 127.0.0.1; every run stops by
itself.
A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures
import contextlib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common

CLOSED_GOAL = 0.90
ACHIEVED_GOAL = 0.99
LAG_GOAL_MS = 2.0
RSS_GOAL_MIB = 150
SAMPLE_S = 0.1  # the worker's CPU and RSS are sampled this often
Sample = tuple[float, float, float, float]  # (wall time, worker CPU s, RSS MiB, stolen s)


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
    (
        "reading the spool back (pread, LZ4, the frames' objects)",
        (
            "_frames",
            "_rounds",
            "_pread",
            "unpack_templates",
            "unpack_frame",
            "_unpack",
            "unpacked",
            "_cycle",
        ),
    ),
    ("rendering templates", ("fill", "render", "iso")),
    ("writing to sockets", ("send",)),
    (
        "building templates (behind the sends)",
        (
            "build_template",
            "_splice",
            "packed",
            "pack_frame",
            "add",
            "_flush",
            "prefix_of",
            "_checked",
            "parse_iso_ms",
        ),
    ),
)
TOP = 10  # functions listed, those whose µs per request differ most between the two runs
SPY_HZ = 250  # py-spy samples a second


def _name(frame: str) -> str:
    """A py-spy frame's function name, without its file and class."""
    return re.sub(r" \(.*$", "", frame).rpartition(".")[2]


def own_samples(raw: Path) -> collections.Counter[str]:
    """Each function's own samples in the worker process while it sends (its event loop),
    from py-spy's raw output."""
    self_time: collections.Counter[str] = collections.Counter()
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        if not any(f.startswith("process") and "replay.worker" in f for f in frames):
            continue
        names = [_name(f) for f in frames]
        if "run" not in names:
            continue  # loading (the spool being built before the start), imports, the pipe
        self_time[names[-1]] += int(count)
    return self_time


def shares_of(self_time: collections.Counter[str]) -> list[tuple[str, float]]:
    """The share of the samples in each of SHARES."""
    total = max(sum(self_time.values()), 1)
    return [(label, sum(self_time[n] for n in names) / total) for label, names in SHARES]


def per_request(
    cached: tuple[collections.Counter[str], int], spooled: tuple[collections.Counter[str], int]
) -> list[tuple[str, float, float]]:
    """The TOP functions whose own time per request differs most between the cached and the
    spooled run (each: own samples and requests): (name, µs cached, µs spooled)."""
    (a, a_requests), (b, b_requests) = cached, spooled
    scale_a, scale_b = 1e6 / SPY_HZ / max(a_requests, 1), 1e6 / SPY_HZ / max(b_requests, 1)
    us = [(name, a[name] * scale_a, b[name] * scale_b) for name in set(a) | set(b)]
    return sorted(us, key=lambda row: abs(row[2] - row[1]), reverse=True)[:TOP]


def sampled_run(
    argv: list[str], timeout: float, core: int | None
) -> tuple[dict[str, Any], list[Sample]]:
    """Run `replay run` (argv with --out), sampling its worker's CPU and RSS, and the time
    stolen from `core`, every SAMPLE_S: its results and the samples (wall time, CPU seconds,
    RSS MiB, stolen seconds)."""
    out = Path(argv[argv.index("--out") + 1])
    env = {**os.environ, "PYTHONPATH": f"{common.ROOT}{os.pathsep}"}
    proc = subprocess.Popen(
        argv, env=env, cwd=common.ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    samples: list[Sample] = []
    worker: psutil.Process | None = None
    deadline = time.monotonic() + timeout
    while proc.poll() is None and time.monotonic() < deadline:
        if worker is None:
            with contextlib.suppress(psutil.Error):
                kids = psutil.Process(proc.pid).children(recursive=True)
                found = [k for k in kids if "replay.worker" in " ".join(k.cmdline())]
                worker = found[0] if found else None
        if worker is not None:
            with contextlib.suppress(psutil.Error):
                times, rss = worker.cpu_times(), worker.memory_info().rss / 2**20
                if rss > 0:  # (not an exited worker's)
                    stolen = common.stolen_s(core)
                    samples.append((time.time(), times.user + times.system, rss, stolen))
        time.sleep(SAMPLE_S)
    if proc.poll() is None:
        proc.kill()
    _, stderr = proc.communicate(timeout=30)
    if proc.returncode not in (0, 99):
        sys.exit(f"bench: replay run failed ({proc.returncode}): {stderr.strip()}")
    return json.loads(out.read_text()), samples


def _wall(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


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
            argv = [spy, "record", "--subprocesses", "--format", "raw", "-r", str(SPY_HZ), "-o",
                    str(profile), "--", *argv]  # fmt: skip
        load = common.load1()
        results, samples = sampled_run(
            common.pinned(args.tool_core, argv), args.duration + 900, args.tool_core
        )
    totals, lag, meta = results["totals"], results["send_lag_ms"], results["meta"]
    started, ended = _wall(meta["started"]), _wall(meta["ended"])
    before = [s for s in samples if s[0] <= started]
    after = [s for s in samples if s[0] >= ended] or samples[-1:]
    sending = [rss for t, _cpu, rss, _stolen in samples if started <= t <= ended]
    cpu_us = stolen_ms = None
    if before and after and profile is None:  # (py-spy's sampling costs the worker CPU)
        cpu_us = (after[0][1] - before[-1][1]) / max(totals["requests"], 1) * 1e6
    if before and after:
        stolen_ms = (after[0][3] - before[-1][3]) * 1000
    return {
        "load": load,
        "rps": float(totals["achieved_rps"]),
        "requests": int(totals["requests"]),
        "achieved": totals["requests"] / max(totals["offered"], 1),
        "dropped": totals["dropped"],
        "errors": totals["errors"],
        "lag_p99": lag["p99"],
        "lag_max": lag["max"],
        "notes": meta.get("notes", []),
        "cpu_us": cpu_us,
        "stolen_ms": stolen_ms,
        "rss": (sending[0], max(sending), sending[-1]) if sending else None,
        "load_s": started - samples[0][0] if samples else None,
        "started": started,
    }


def together(
    cached: Path,
    spooled: Path,
    url: str,
    args: argparse.Namespace,
    lead_s: float,
    profiles: tuple[Path, Path] | None = None,
) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """The two closed runs at once on the tool core, from one instant `lead_s` from now (so
    long that the spooled worker has built its spool by then), each sampled by py-spy into
    its file of `profiles` when given; None when they did not start within a second of each
    other."""
    start = time.time() + lead_s
    model = ("--vus", str(args.vus), "--start-at", f"{start:.3f}", "--max-start-skew", "600s")
    spies = profiles or (None, None)
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        a, b = (
            pool.submit(run, corpus, url, args, *model, profile=raw)
            for corpus, raw in zip((cached, spooled), spies, strict=True)
        )
        pair = a.result(), b.result()
    if abs(pair[0]["started"] - pair[1]["started"]) > 1.0:
        return None
    return pair


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=500_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--duration", type=int, default=10, help="s per run")
    parser.add_argument("--vus", type=int, default=50)
    parser.add_argument("--rate", type=float, default=25_000, help="open model, req/s")
    parser.add_argument("--spool-dir", type=Path, help="where the worker spools (a disk)")
    parser.add_argument(
        "--profile", action="store_true", help="py-spy round 1's closed runs together"
    )
    common.quiet_options(parser)
    args = parser.parse_args()
    from capture.corpus import CorpusReader
    from corpora import bundled_path

    cached = Path(bundled_path("ingestion"))
    spooled = long_corpus(args.records)
    with CorpusReader(spooled) as reader:
        records = reader.header.records
    closed = ("--vus", str(args.vus))
    rows: list[tuple[dict[str, Any], ...]] = []
    probes: list[float] = []  # the core probe of each round
    both: list[tuple[dict[str, Any], dict[str, Any]] | None] = []  # closed runs at once
    profiles: dict[Path, tuple[collections.Counter[str], int]] = {}  # own samples, requests
    with (
        tempfile.TemporaryDirectory(prefix="bench-spooled-") as tmp,
        common.nginx(args.target_core) as server,
    ):
        load = common.wait_quiet(args.max_load, args.patience)
        for round_ in range(1, args.rounds + 1):
            probe = common.core_speed(args.tool_core)
            spy = args.profile and round_ == 1
            order = (cached, spooled) if round_ % 2 else (spooled, cached)  # in turn first
            pair = {corpus: run(corpus, server.url, args, *closed) for corpus in order}
            a, b = pair[cached], pair[spooled]
            lead_s = 1.5 * (b["load_s"] or 60.0) + 10.0  # the spooled worker builds first
            raws = (Path(tmp) / "cached.txt", Path(tmp) / "spooled.txt") if spy else None
            both.append(together(cached, spooled, server.url, args, lead_s, raws))
            if raws is not None and both[-1] is not None:
                for corpus, raw, result in zip((cached, spooled), raws, both[-1], strict=True):
                    profiles[corpus] = own_samples(raw), result["requests"]
            c = run(spooled, server.url, args, "--rate", f"{args.rate:g}")
            e = run(spooled, server.url, args, "--rate", f"{args.rate:g}", "--build-first")
            d = run(cached, server.url, args, "--rate", f"{args.rate:g}")
            common.say(
                f"round {round_}: closed cached {a['rps']:,.0f} spooled {b['rps']:,.0f} req/s "
                f"({b['rps'] / max(a['rps'], 1):.2f}x), together {_together(both[-1])}; "
                f"open {c['achieved']:.2%} "
                f"p99 {c['lag_p99']} ms, --build-first {e['achieved']:.2%} p99 {e['lag_p99']} "
                f"ms, cached {d['achieved']:.2%} p99 {d['lag_p99']} ms (stolen {_stolen(c)} / "
                f"{_stolen(e)} / {_stolen(d)} ms); core probe {probe:.0f} ms"
            )
            rows.append((a, b, c, d, e))
            probes.append(probe)

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
        "| worker CPU µs/req cached / spooled | cached ÷ spooled CPU | spooled: built first "
        "| spooled RSS first / peak / last | core probe |"
    )
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for i, ((a, b, *_open), probe) in enumerate(zip(rows, probes, strict=True), 1):
        print(
            f"| {i} | {a['load']:.2f} / {b['load']:.2f} | {a['rps']:,.0f} | {b['rps']:,.0f} "
            f"| {b['rps'] / max(a['rps'], 1):.2f} | {_cpu(a)} / {_cpu(b)} | {_cpu_ratio(a, b)} "
            f"| {_seconds(b['load_s'])} | {_rss(b)} | {probe:.0f} ms |"
        )
    print()
    print(
        "| round | together: cached req/s | spooled req/s | spooled ÷ cached "
        "| worker CPU µs/req cached / spooled | share of the core cached / spooled |"
    )
    print("| ---: | ---: | ---: | ---: | ---: | ---: |")
    for i, at_once in enumerate(both, 1):
        if at_once is None:
            print(f"| {i} | did not start together | | | | |")
            continue
        x, y = at_once
        print(
            f"| {i} | {x['rps']:,.0f} | {y['rps']:,.0f} | {y['rps'] / max(x['rps'], 1):.2f} "
            f"| {_cpu(x)} / {_cpu(y)} | {_core_share(x)} / {_core_share(y)} |"
        )
    print()
    print(
        "| round | load | open spooled achieved | send-lag p99 | lag max | built first "
        "| RSS first / peak / last | --build-first achieved | send-lag p99 | built first "
        "| open cached achieved | send-lag p99 | stolen from the tool core, ms |"
    )
    print("|" + " ---: |" * 13)
    for i, (_a, _b, c, d, e) in enumerate(rows, 1):
        print(
            f"| {i} | {c['load']:.2f} / {e['load']:.2f} / {d['load']:.2f} | {c['achieved']:.2%} "
            f"| {c['lag_p99']} ms | {c['lag_max']} ms | {_seconds(c['load_s'])} | {_rss(c)} "
            f"| {e['achieved']:.2%} | {e['lag_p99']} ms | {_seconds(e['load_s'])} "
            f"| {d['achieved']:.2%} | {d['lag_p99']} ms "
            f"| {_stolen(c)} / {_stolen(e)} / {_stolen(d)} |"
        )
    ratios = sorted(b["rps"] / max(a["rps"], 1) for a, b, *_open in rows)
    median = statistics.median(ratios)  # (of two rounds: their mean, not the higher)
    cpu = sorted(r for a, b, *_open in rows if (r := _cpu_share(a, b)) is not None)
    held = sum(_held(c) for _a, _b, c, _d, _e in rows)
    first = sum(_held(e) for _a, _b, _c, _d, e in rows)
    peers = sum(_held(d) for _a, _b, _c, d, _e in rows)
    peaks = [r["rss"][1] for row in rows for r in (row[1], row[2], row[4]) if r["rss"] is not None]
    print()
    print(
        f"closed    spooled ÷ cached median {median:.2f} over {len(rows)} rounds "
        f"(goal >= {CLOSED_GOAL:.2f}: {'met' if median >= CLOSED_GOAL else 'not met'})"
        + (
            f"; worker CPU per request, cached ÷ spooled, median {statistics.median(cpu):.2f}"
            if cpu
            else ""
        )
    )
    shared = sorted(y["rps"] / max(x["rps"], 1) for x, y in filter(None, both))
    if shared:
        middle = statistics.median(shared)
        print(
            f"together  spooled ÷ cached median {middle:.2f} over {len(shared)} rounds, the two "
            f"sharing one core at the same time (goal >= {CLOSED_GOAL:.2f}: "
            f"{'met' if middle >= CLOSED_GOAL else 'not met'})"
        )
    print(
        f"open      goal (achieved >= {ACHIEVED_GOAL:.0%}, send-lag p99 <= {LAG_GOAL_MS:g} ms) "
        f"held in {held} of {len(rows)} rounds; with --build-first in {first} (the cached "
        f"corpus, side by side: {peers})"
    )
    stolen = sorted(r["stolen_ms"] for row in rows for r in row[2:] if r["stolen_ms"] is not None)
    if stolen:
        print(
            f"steal     the host took {stolen[0]:.0f}-{stolen[-1]:.0f} ms (median "
            f"{statistics.median(stolen):.0f}) of the tool core in each open run's "
            f"{args.duration:g} s of sending (/proc/stat steal): the worker stood still as long"
        )
    if peaks:
        print(
            f"memory    spooled worker RSS peak {max(peaks):.0f} MiB while sending "
            f"(goal < {RSS_GOAL_MIB} MiB: {'met' if max(peaks) < RSS_GOAL_MIB else 'not met'})"
        )
    for note in sorted({n for row in rows for r in (row[1], row[2], row[4]) for n in r["notes"]}):
        print(f"note      {note}")
    if profiles:
        samples = sum(profiles[spooled][0].values())
        print(
            f"profile   py-spy, round 1's closed runs together; the spooled one ({samples:,} "
            "samples, sending):"
        )
        for label, share in shares_of(profiles[spooled][0]):
            print(f"          {share:6.1%} {label}")
        print(
            "          own samples per request as µs, cached / spooled, where they differ most "
            "(sharing the core, each run also waits for it: about twice its CPU time):"
        )
        for name, us_cached, us_spooled in per_request(profiles[cached], profiles[spooled]):
            change = us_spooled - us_cached
            print(f"          {us_cached:6.2f} / {us_spooled:6.2f} µs ({change:+.2f}) {name}")


def _held(run: dict[str, Any]) -> bool:
    return bool(run["achieved"] >= ACHIEVED_GOAL and (run["lag_p99"] or 0) <= LAG_GOAL_MS)


def _stolen(run: dict[str, Any]) -> str:
    return "-" if run["stolen_ms"] is None else f"{run['stolen_ms']:.0f}"


def _cpu(run: dict[str, Any]) -> str:
    return "-" if run["cpu_us"] is None else f"{run['cpu_us']:.1f}"


def _together(pair: tuple[dict[str, Any], dict[str, Any]] | None) -> str:
    if pair is None:
        return "did not start together"
    a, b = pair
    return f"cached {a['rps']:,.0f} spooled {b['rps']:,.0f} ({b['rps'] / max(a['rps'], 1):.2f}x)"


def _core_share(run: dict[str, Any]) -> str:
    """The share of a core the worker used while sending (CPU per request times req/s)."""
    return "-" if run["cpu_us"] is None else f"{run['cpu_us'] * run['rps'] / 1e6:.0%}"


def _cpu_share(cached: dict[str, Any], spooled: dict[str, Any]) -> float | None:
    if cached["cpu_us"] is None or spooled["cpu_us"] is None:
        return None
    return float(cached["cpu_us"] / max(spooled["cpu_us"], 1e-9))


def _cpu_ratio(cached: dict[str, Any], spooled: dict[str, Any]) -> str:
    share = _cpu_share(cached, spooled)
    return "-" if share is None else f"{share:.2f}"


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} s"


def _rss(run: dict[str, Any]) -> str:
    if run["rss"] is None:
        return "-"
    first, peak, last = run["rss"]
    return f"{first:.0f} / {peak:.0f} / {last:.0f} MiB"


if __name__ == "__main__":
    main()
