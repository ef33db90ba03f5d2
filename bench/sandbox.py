"""Benchmark of the embedded sandbox, driven by wrk run beside it.

Measures, per API-process count:
  1. ingestion throughput at saturation (the guide's k6 trace payload, 5 observations, a
     fresh trace id per request), total and per API process;
  2. p50/p99 latency at half of that throughput (wrk paced by a per-connection delay);
  3. how long the worker then needs to write what is still queued (it must keep up).
With --usl, also the emulated capacity against the USL formula at several pod counts.
With --parser, only the request parser against llhttp, in process (no wrk).

    .venv/bin/python bench/sandbox.py                      # 1 API process, 10 s runs
    .venv/bin/python bench/sandbox.py --pods 1 2 --usl

wrk is installed with apt-get when missing (root only; otherwise it says how).
"""

from __future__ import annotations

import argparse
import datetime
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sandbox.capacity import Emulation, usl_throughput  # noqa: E402
from sandbox.process import SandboxProcess, start_sandbox  # noqa: E402

LUA = ROOT / "bench" / "sandbox_ingest.lua"
_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    print("wrk not found: installing it with `apt-get install -y wrk` ...", flush=True)
    if os.geteuid() != 0:
        sys.exit("wrk is missing and this is not root: install it with `apt-get install -y wrk`")
    subprocess.run(["apt-get", "update", "-qq"], check=False)
    subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True)
    found = shutil.which("wrk")
    if not found:
        sys.exit("apt-get did not provide wrk; install it and run again")
    return found


def run_wrk(
    wrk: str, sb: SandboxProcess, connections: int, seconds: int, delay_ms: float = 0.0
) -> dict[str, float]:
    env = dict(os.environ, API_KEY=sb.api_key, DELAY_MS=f"{delay_ms:.3f}")
    out = subprocess.run(
        [
            wrk,
            "-t1",
            f"-c{connections}",
            f"-d{seconds}s",
            "--latency",
            "-s",
            str(LUA),
            sb.url,
        ],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    total = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m)", out)
    if total is None:
        sys.exit(f"cannot read wrk's output:\n{out}")
    elapsed = float(total.group(2)) * {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}[total.group(3)]
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    result = {"non2xx": float(non2xx.group(1)) if non2xx else 0.0}
    result["rps"] = (int(total.group(1)) - result["non2xx"]) / elapsed  # 2xx answers only
    for pct in ("50", "99"):
        match = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        result[f"p{pct}"] = (
            float(match.group(1)) * _UNITS[match.group(2)] if match else float("nan")
        )
    return result


def bench_ingestion(wrk: str, pods: int, seconds: int, connections: int) -> dict[str, float]:
    with start_sandbox(pods=pods) as sb:
        run_wrk(wrk, sb, connections, 2)  # warm-up
        sb.flush(timeout=120)
        full = run_wrk(wrk, sb, connections, seconds)
        started = time.monotonic()
        sb.flush(timeout=300)
        drain = time.monotonic() - started
        half_rate = full["rps"] / 2
        paced_connections = 16
        delay_ms = paced_connections / half_rate * 1000
        half = run_wrk(wrk, sb, paced_connections, seconds, delay_ms=delay_ms)
        started = time.monotonic()
        sb.flush(timeout=300)
        half_drain = time.monotonic() - started
    return {
        "pods": pods,
        "rps": full["rps"],
        "per_pod": full["rps"] / pods,
        "errors": full["non2xx"] + half["non2xx"],
        "drain_s": drain,
        "half_rps": half["rps"],
        "half_p50": half["p50"],
        "half_p99": half["p99"],
        "half_drain_s": half_drain,
        "sat_p99": full["p99"],
    }


def bench_usl(wrk: str, pod_counts: list[int], seconds: int) -> list[tuple[int, float, float]]:
    """Saturate the emulation at each N (the CLI's default model, L=150/s)."""
    model = Emulation(pods=1)
    rows = []
    with start_sandbox(emulate=model) as sb:
        for n in pod_counts:
            sb.set_pods(n)
            expected = usl_throughput(n, model.pod_rate, model.sigma, model.kappa)
            # Requests wrk abandons at the end of a run keep their slots (as a real server
            # finishes abandoned work), so let the queue empty before the measured run.
            run_wrk(wrk, sb, 64, 1)
            time.sleep(64 / expected + 0.2)
            measured = run_wrk(wrk, sb, 64, seconds)["rps"]
            rows.append((n, expected, measured))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pods", type=int, nargs="+", default=[1], help="API process counts")
    parser.add_argument("--seconds", type=int, default=10, help="length of each measured run")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections")
    parser.add_argument("--usl", action="store_true", help="also measure the USL emulation")
    parser.add_argument(
        "--parser",
        action="store_true",
        help="only compare the request parser with llhttp, in process (bench/request_parsers.py)",
    )
    args = parser.parse_args()
    if args.parser:
        from bench.request_parsers import main as parsers

        parsers()
        return
    wrk = ensure_wrk()
    print(f"# sandbox benchmark, {datetime.date.today()}, {os.cpu_count()} cores")
    print(f"# command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    print(f"# wrk -t1 -c{args.connections} -d{args.seconds}s, guide payload (5 observations)\n")
    header = (
        f"{'pods':>4} {'ingest/s':>9} {'per pod':>8} {'p99 sat':>8} {'drain':>6} "
        f"{'half: req/s':>11} {'p50':>7} {'p99':>7} {'drain':>6} {'non-2xx':>7}"
    )
    print(header)
    print("-" * len(header))
    for pods in args.pods:
        r = bench_ingestion(wrk, pods, args.seconds, args.connections)
        print(
            f"{r['pods']:>4} {r['rps']:>9.0f} {r['per_pod']:>8.0f} {r['sat_p99']:>6.1f}ms "
            f"{r['drain_s']:>5.1f}s {r['half_rps']:>11.0f} {r['half_p50']:>5.1f}ms "
            f"{r['half_p99']:>5.1f}ms {r['half_drain_s']:>5.1f}s {r['errors']:>7.0f}",
            flush=True,
        )
    if args.usl:
        print("\n# emulated capacity: L=150/s, sigma=0.05, kappa=0.001 (defaults), wrk -c64")
        print(f"{'N':>3} {'X(N) formula':>13} {'measured':>9} {'error':>7}")
        for n, expected, measured in bench_usl(wrk, [1, 2, 4, 8], args.seconds):
            error = (measured - expected) / expected * 100
            print(f"{n:>3} {expected:>13.1f} {measured:>9.1f} {error:>+6.1f}%", flush=True)


if __name__ == "__main__":
    main()
