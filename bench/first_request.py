"""Time to first request of a long corpus: from `replay run` starting to the target's first
request, and what each worker said about its shard.

    .venv/bin/python bench/first_request.py CORPUS [--workers 2] [--rate 2000 | --timeline]
                                            [--duration 5] [--root CHECKOUT]

The target is a small HTTP server in this process on 127.0.0.1 that answers 204 and notes
when the first request arrived (it cannot answer a long corpus's timeline at full speed: with
`--timeline` most requests are dropped at the connection limit, which is not the point
here). `--root` runs another checkout's replay (to compare with a
version before a change). Printed: the 1-minute load average at the start, seconds to the
first request, requests answered, and the run's notes. A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import http.server
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common

ROOT = Path(__file__).resolve().parent.parent


class Target(http.server.ThreadingHTTPServer):
    first: float | None = None
    answered = 0


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _answer(self) -> None:
        server: Any = self.server
        if server.first is None:
            server.first = time.monotonic()
        server.answered += 1
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        self.send_response(204)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_POST = _answer

    def log_message(self, *_args: Any) -> None:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("corpus", type=Path)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rate", type=float, default=2000.0)
    parser.add_argument("--timeline", action="store_true", help="the corpus's own timeline")
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--root", type=Path, default=ROOT)
    args = parser.parse_args()
    target = Target(("127.0.0.1", 0), Handler)
    threading.Thread(target=target.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{target.server_address[1]}"
    out = Path(tempfile.mkdtemp(prefix="bench-first-")) / "results.json"
    argv = [sys.executable, "-m", "replay.cli_run", str(args.corpus), "--target", url,
            "--workers", str(args.workers), "--duration", f"{args.duration}s",
            "--out", str(out)]  # fmt: skip
    if not args.timeline:
        argv += ["--rate", str(args.rate)]
    env = {**os.environ, "PYTHONPATH": str(args.root.resolve())}
    load = common.load1()
    began = time.monotonic()
    done = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=args.root,
                          timeout=1800)  # fmt: skip
    ended = time.monotonic()
    target.shutdown()
    notes: list[str] = []
    if out.exists():
        results = json.loads(out.read_text())
        notes = list(results.get("meta", {}).get("notes", []))
    first = "never" if target.first is None else f"{target.first - began:.1f} s"
    print(f"{common.machine()} {common.today()} load1 {load:.2f} root {args.root}")
    model = "timeline" if args.timeline else f"--rate {args.rate:g}"
    print(f"replay run --workers {args.workers} {model} --duration "
          f"{args.duration:g}s: first request after {first}; whole run {ended - began:.1f} s; "
          f"{target.answered:,} requests answered; exit {done.returncode}")  # fmt: skip
    for note in notes:
        print(f"  note: {note}")
    if done.returncode not in (0, 99):
        print(done.stderr.strip()[-2000:])


if __name__ == "__main__":
    main()
