"""K execution segments as K local processes: do they make one run, started together?

    .venv/bin/python bench/segments.py [--segments 3] [--rate 9000] [--duration 10]

Starts nginx on loopback and K `replay run --segment I/K --start-at T` processes (one worker
each) against it, with T a few seconds ahead so that all have loaded; then merges their
results with `replay merge`'s code and prints: the merged offered and achieved rates against
the asked rate, each segment's offered share, the start skew between segments (their
recorded start instants, and how late each began after T), and send-lag p99 per segment.
Every request goes to 127.0.0.1; each process stops by itself. A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--segments", type=int, default=3)
    parser.add_argument("--rate", type=float, default=9000.0)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--lead", type=float, default=8.0, help="seconds from launch to T")
    args = parser.parse_args()
    from replay.merge import merge_results

    corpus, _body = common.cached_corpus(20_000)
    k = args.segments
    common.say(f"{common.machine()}, load {common.load1():.2f} at the start")
    with common.nginx(core=None) as server, tempfile.TemporaryDirectory() as tmp:
        start_at = time.time() + args.lead
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        procs, outs = [], []
        for i in range(k):
            out = Path(tmp) / f"seg{i}.json"
            outs.append(out)
            argv = common.replay_argv(
                corpus, server.url, "--rate", f"{args.rate:g}", "--duration",
                f"{args.duration}s", "--workers", "1", "--segment", f"{i}/{k}",
                "--start-at", f"{start_at:.3f}", "--max-start-skew", "5s", out=out,
            )  # fmt: skip
            procs.append(
                subprocess.Popen(
                    argv, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
                )
            )
        for proc in procs:
            _, err = proc.communicate(timeout=args.duration + args.lead + 120)
            if proc.returncode not in (0, 99):
                raise SystemExit(f"a segment failed: {err.decode().strip()}")
        parts = [json.loads(out.read_text()) for out in outs]
    merged = merge_results(parts, [o.name for o in outs])
    totals = merged["totals"]
    asked = args.rate * args.duration
    print(f"\nK = {k} segments, --rate {args.rate:g} for {args.duration} s, one worker each")
    print(
        f"merged offered   {totals['offered']:,} ({totals['offered'] / asked:.4f} of {asked:,.0f})"
    )
    print(
        f"merged achieved  {totals['requests']:,} "
        f"({totals['requests'] / max(totals['offered'], 1):.4f} of offered), "
        f"dropped {totals['dropped']:,}"
    )
    starts = []
    for p in parts:
        meta = p["meta"]
        started = datetime.fromisoformat(meta["started"].replace("Z", "+00:00")).timestamp()
        starts.append(started)
        share = p["totals"]["offered"] / (asked / k)
        print(
            f"segment {meta['segment']}: offered {p['totals']['offered']:,} ({share:.4f} of "
            f"1/{k}), start {meta['start_late_ms']:.1f} ms after --start-at, "
            f"send-lag p99 {p['send_lag_ms']['p99']} ms"
        )
    skew_ms = (max(starts) - min(starts)) * 1000
    print(f"start skew (recorded start instants, ms resolution): {skew_ms:.1f} ms")
    print(f"load {common.load1():.2f} at the end")
    return 0


if __name__ == "__main__":
    sys.exit(main())
