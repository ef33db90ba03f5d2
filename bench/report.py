"""How long `replay report` takes on a four-hour soak, and how large its outputs are.

    python bench/report.py [--hours 4] [--rate 100] [--keep DIR]

Synthesises the results file of a soak (the guide's k6/soak-test.js shape: 5 minutes up,
the hold, 5 minutes down; ingestion at --rate with a 503 every ten seconds and latency
drifting up by 2 ms an hour), written by replay's own results writer, then times the
report as the CLI makes it (read, series, phases, drift, verdicts; figures; HTML, Markdown
and JSON) and prints the sizes. No network.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from replay.histogram import (  # noqa: E402
    LatencyHistogram,
    Sparse,
    decode_sparse,
    encode_sparse,
    sparse_from_values,
)
from replay.results import SCHEMA, latency_block, write_results  # noqa: E402


def soak_document(hours: float = 4.0, rate: int = 100, seed: int = 1) -> dict[str, Any]:
    """A ``replay-results/1`` document of a soak: one distinct set of histograms a minute
    (reused for its seconds, which keeps synthesis fast), counts that add up."""
    rng = np.random.default_rng(seed)
    hold = round(hours * 3600)
    seconds = 300 + hold + 300
    minutes = -(-seconds // 60)
    pool = []
    for m in range(minutes):
        base_us = 12_000 + m * 2_000 // 60  # +2 ms an hour
        lat = np.maximum(rng.lognormal(np.log(base_us), 0.35, rate), 500).astype(np.int64)
        lag = rng.integers(50, 900, rate)
        pool.append(
            (
                encode_sparse(sparse_from_values(lat)),
                encode_sparse(sparse_from_values(lat - lag)),
                encode_sparse(sparse_from_values(lag)),
            )
        )
    err = tuple(encode_sparse(sparse_from_values([v])) for v in (250_000, 249_500, 500))
    timeline = []
    totals = {"requests": 0, "ok": 0, "errors": 0, "dropped": 0, "offered": 0}
    for t in range(seconds):
        ramp = min(1.0, (t + 1) / 300, (seconds - t) / 300)
        n = max(1, round(rate * ramp))
        lat, unc, lag = pool[t // 60]
        series = [
            {"endpoint": "ingest", "outcome": "200", "requests": rate,
             "latency": lat, "latency_uncorrected": unc, "send_lag": lag}
        ]  # fmt: skip
        ok = rate
        errors = 0
        if t % 10 == 0:
            series.append({"endpoint": "ingest", "outcome": "503", "requests": 1,
                           "latency": err[0], "latency_uncorrected": err[1],
                           "send_lag": err[2]})  # fmt: skip
            errors = 1
        requests = ok + errors
        timeline.append(
            {"t": t, "requests": requests, "ok": ok, "errors": errors, "dropped": 0,
             "offered": requests, "offered_rps": float(requests),
             "achieved_rps": float(requests), "p50_ms": None, "p99_ms": None,
             "inflight": n // 50, "dropped_by_endpoint": {}, "series": series}
        )  # fmt: skip
        for key, v in (("requests", requests), ("ok", ok), ("errors", errors),
                       ("offered", requests)):  # fmt: skip
            totals[key] += v
    blocks = []
    for m in range(3):  # the whole run's latency blocks, from the same histograms
        whole = LatencyHistogram()
        for t, entry in enumerate(timeline):
            if t % 60 == 0 or t == 0:
                minute = decode_sparse(pool[t // 60][m])
            counts = minute.counts * (min(60, seconds - t) if t % 60 == 0 else 0)
            if counts.any():
                whole.add_sparse(Sparse(minute.buckets, counts, 0))
            if len(entry["series"]) > 1:
                whole.add_sparse(decode_sparse(err[m]))
        blocks.append(latency_block(whole))
    hold_s = f"{hold}s"
    return {
        "schema": SCHEMA,
        "meta": {"corpus": "ingestion", "target": "http://127.0.0.1:8080", "model": "rate",
                 "rate": None, "workers": 2, "started": "2026-11-29T00:00:00Z",
                 "ended": "2026-11-29T04:10:00Z", "version": "bench", "host_cores": 2,
                 "command_line": f"replay run --stage 5m:{rate} --stage {hold_s}:{rate} "
                 f"--stage 5m:1 --out soak.json", "notes": ["synthesised by bench/report.py"]},
        "totals": {**totals, "duration_s": float(seconds),
                   "offered_rps": totals["offered"] / seconds,
                   "achieved_rps": totals["requests"] / seconds,
                   "error_rate": totals["errors"] / totals["requests"]},
        "latency_ms": blocks[0], "latency_uncorrected_ms": blocks[1], "send_lag_ms": blocks[2],
        "endpoints": {}, "outcomes": {}, "errors": {"503": totals["errors"]},
        "load_generator": {"limited": False, "reasons": []},
        "thresholds": [],
        "timeline": timeline,
        "histograms": {"encoding": "HdrHistogram V2 compressed, base64", "unit": "us",
                       "lowest": 1, "highest": 3600000000, "significant_figures": 3,
                       "series": []},
    }  # fmt: skip


def report_files(results: Path, out: Path) -> dict[str, float]:
    """Build the report as `replay report --html --md --json` does; seconds and bytes."""
    from replay.cli_report import dumps_report
    from replay.report import build_report
    from replay.report_plots import figures
    from replay.report_render import render_html, render_markdown

    started, cpu = time.perf_counter(), time.process_time()
    built = build_report([str(results)])
    analysed = time.perf_counter()
    html = render_html(built.document, figures(built))
    drawn = time.perf_counter()
    (out / "soak.html").write_text(html)
    (out / "soak.md").write_text(render_markdown(built.document))
    (out / "soak.report.json").write_text(dumps_report(built.document))
    done = time.perf_counter()
    return {
        "cpu_s": time.process_time() - cpu,
        "analysis_s": analysed - started,
        "figures_s": drawn - analysed,
        "total_s": done - started,
        "html_bytes": (out / "soak.html").stat().st_size,
        "json_bytes": (out / "soak.report.json").stat().st_size,
        "results_bytes": results.stat().st_size,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hours", type=float, default=4.0)
    parser.add_argument("--rate", type=int, default=100)
    parser.add_argument("--keep", type=Path, help="Write the files here and keep them.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = args.keep or Path(tmp)
        out.mkdir(parents=True, exist_ok=True)
        results = out / "soak.json"
        write_results(results, soak_document(args.hours, args.rate))
        figures = report_files(results, out)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"replay report on a {args.hours:g} h soak at {args.rate}/s "
          f"({figures['results_bytes'] / 1e6:.1f} MB of results)")  # fmt: skip
    print(f"  read, series, phases, drift, verdicts  {figures['analysis_s']:6.2f} s")
    print(f"  figures and HTML                       {figures['figures_s']:6.2f} s")
    print(
        f"  everything, files written              {figures['total_s']:6.2f} s "
        f"({figures['cpu_s']:.2f} s of CPU; load average {os.getloadavg()[0]:.1f})"
    )
    html_mb, json_mb = figures["html_bytes"] / 1e6, figures["json_bytes"] / 1e6
    print(f"  HTML {html_mb:.2f} MB, JSON {json_mb:.2f} MB, peak RSS {rss:.0f} MB")


if __name__ == "__main__":
    main()
