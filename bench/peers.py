"""`replay run` beside wrk, hey and Locust, side by side: req/s per core, closed model.

    .venv/bin/python bench/peers.py [--rounds 3] [--duration 10] [--vus 50]
                                    [--tools wrk,hey,locust,replay] [--max-load 0.3]

nginx (Debian's, with bench/nginx.conf: one worker, a small JSON answer to any request) runs
pinned to core 0 on a free loopback port; each tool in turn is pinned to core 1 with taskset
and keeps 50 keep-alive connections busy for --duration seconds, POSTing the same 1.8 KB
JSON body (replay sends a corpus of such bodies, each with its trace id and timestamp
rewritten, the same length). Tools run one after another, the order rotating each round, for
--rounds rounds; the table gives each tool's median req/s (and the range), its CPU per
request (user + system of the tool's whole process tree, startup included) and replay's
ratio to it, then replay's latency percentiles in its median round.

    wrk     wrk 4.1, one thread:                 wrk -t1 -c50 -d10s -s post.lua URL
    hey     hey 0.1.4, GOMAXPROCS=1:             hey -z 10s -c 50 -m POST -D body URL
    locust  Locust 2.47, FastHttpUser, headless: locust -u 50 -r 50 -t 10s (one process)
    replay  replay run CORPUS --vus 50 --workers 1 --duration 10s

wrk, hey and nginx are installed from Debian's packages when missing (apt-get, as root);
Locust into its own virtualenv (--peers-venv, by default under the temp dir; never the
project's .venv). Every request goes to 127.0.0.1; each run stops by itself after
--duration; only processes this script started are stopped, by pid. A benchmark, not a
test: nothing in CI depends on this machine's speed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common

TOOLS = ("wrk", "hey", "locust", "replay")
LOCUSTFILE = """
import os
from locust import FastHttpUser, task

BODY = open(os.environ["PEERS_BODY"], "rb").read()
HEADERS = {"Content-Type": "application/json"}


class Poster(FastHttpUser):
    @task
    def post(self):
        self.client.post(PATH, data=BODY, headers=HEADERS)
""".replace("PATH", repr(common.PATH))
WRK_LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = io.open(os.getenv("PEERS_BODY"), "rb")
wrk.body = f:read("*a")
f:close()
"""


@dataclass
class Run:
    tool: str
    round: int
    rps: float
    requests: int
    cpu_s: float
    load: float
    extra: dict[str, Any] = field(default_factory=dict)
    others: float = 0.0  # cores used by other processes meanwhile

    @property
    def cpu_us(self) -> float:
        return self.cpu_s / self.requests * 1e6 if self.requests else float("nan")


def _locust(venv: Path) -> str:
    binary = venv / "bin" / "locust"
    if not binary.exists():
        common.say(f"Locust is missing: installing locust 2.47 into {venv} (pip, its own venv)")
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q"]
        subprocess.run([*pip, "locust>=2.47,<2.48"], check=True)
    return str(binary)


def _timed(argv: list[str], env: dict[str, str], timeout: float) -> tuple[str, float]:
    before = common.children_cpu_s()
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env)
    cpu = common.children_cpu_s() - before
    if done.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed ({done.returncode}): {done.stderr[-500:]}")
    return done.stdout, cpu


def run_tool(tool: str, args: argparse.Namespace, url: str, work: Path) -> Run:
    env = {**os.environ, "PEERS_BODY": str(work / "body.json")}
    core, secs, vus = args.tool_core, args.duration, args.vus
    target = url + common.PATH
    timeout = secs + 60
    load = common.load1()
    if tool == "wrk":
        wrk = common.ensure_tool("wrk", "wrk")
        argv = [wrk, "-t1", f"-c{vus}", f"-d{secs}s", "-s", str(work / "post.lua"), target]
        out, cpu = _timed(common.pinned(core, argv), env, timeout)
        rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
        total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
        return Run(tool, 0, rps, total, cpu, load)
    if tool == "hey":
        hey = common.ensure_tool("hey", "hey")
        argv = [hey, "-z", f"{secs}s", "-c", str(vus), "-m", "POST", "-T", "application/json"]
        argv += ["-D", str(work / "body.json"), target]
        out, cpu = _timed(common.pinned(core, argv), {**env, "GOMAXPROCS": "1"}, timeout)
        rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
        total = sum(int(n) for n in re.findall(r"\[\d+\]\s+(\d+) responses", out))
        return Run(tool, 0, rps, total, cpu, load)
    if tool == "locust":
        locust = _locust(Path(args.peers_venv))
        csv = work / "locust"
        argv = [locust, "-f", str(work / "locustfile.py"), "--headless", "-u", str(vus)]
        argv += ["-r", str(vus), "-t", f"{secs}s", "-H", url, "--only-summary"]
        argv += ["--csv", str(csv), "--loglevel", "WARNING"]
        _, cpu = _timed(common.pinned(core, argv), env, timeout)
        rows = (csv.parent / "locust_stats.csv").read_text().splitlines()
        header = rows[0].split(",")
        aggregated = next(r.split(",") for r in rows if ",Aggregated," in r)
        rps = float(aggregated[header.index("Requests/s")])
        total = int(aggregated[header.index("Request Count")])
        return Run(tool, 0, rps, total, cpu, load)
    out_path = work / "replay.json"
    argv = common.replay_argv(
        args.corpus, url, "--vus", str(vus), "--workers", "1", "--duration", f"{secs}s",
        out=out_path,
    )  # fmt: skip
    before = common.children_cpu_s()
    results = common.run_replay(common.pinned(core, argv), timeout)
    cpu = common.children_cpu_s() - before
    totals = results["totals"]
    return Run(
        tool, 0, float(totals["achieved_rps"]), int(totals["requests"]), cpu, load,
        {"latency_ms": results["latency_ms"], "errors": totals["errors"]},
    )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=10, help="seconds per run")
    parser.add_argument("--vus", type=int, default=50, help="connections, every tool")
    parser.add_argument("--tools", default=",".join(TOOLS))
    parser.add_argument("--body-bytes", type=int, default=1800)
    parser.add_argument("--records", type=int, default=20_000, help="replay's corpus")
    common.quiet_options(parser)
    parser.add_argument("--pause", type=float, default=2.0, help="s between runs")
    parser.add_argument(
        "--peers-venv", default=str(Path(tempfile.gettempdir()) / "agenttrace-bench-peers-venv")
    )
    parser.add_argument("--json", type=Path, help="write every run here")
    args = parser.parse_args()
    tools = [t for t in args.tools.split(",") if t]
    unknown = set(tools) - set(TOOLS)
    if unknown:
        parser.error(f"unknown tools: {', '.join(sorted(unknown))}")
    args.corpus, body = common.cached_corpus(args.records, args.body_bytes)

    runs: list[Run] = []
    with (
        tempfile.TemporaryDirectory(prefix="bench-peers-") as tmp,
        common.nginx(args.target_core) as server,
    ):
        url = server.url
        work = Path(tmp)
        (work / "body.json").write_bytes(body)
        (work / "post.lua").write_text(WRK_LUA)
        (work / "locustfile.py").write_text(LOCUSTFILE)
        if "locust" in tools:
            _locust(Path(args.peers_venv))
        load = common.wait_quiet(args.max_load, args.patience)
        common.say(f"{len(tools)} tools, {args.rounds} rounds of {args.duration}s, load {load:.2f}")
        for r in range(args.rounds):
            order = tools[r % len(tools) :] + tools[: r % len(tools)]
            for tool in order:
                time.sleep(args.pause)
                others = common.Others(server.pid)
                run = run_tool(tool, args, url, work)
                run.round = r
                run.others = others.cores()
                runs.append(run)
                common.say(
                    f"round {r + 1} {tool:<7} {run.rps:>10,.0f} req/s  "
                    f"{run.cpu_us:5.1f} µs CPU/req  load {run.load:.2f}  "
                    f"others {run.others:.2f} cores"
                )
    report(runs, tools, args, body)
    if args.json:
        args.json.write_text(json.dumps([vars(r) for r in runs], indent=1))


def report(runs: list[Run], tools: list[str], args: argparse.Namespace, body: bytes) -> None:
    median: dict[str, float] = {}
    print(f"date      {common.today()}")
    print(f"machine   {common.machine()}")
    loads = [r.load for r in runs]
    others = [r.others for r in runs]
    print(
        f"load avg  {loads[0]:.2f} at the start ({min(loads):.2f}-{max(loads):.2f} before each "
        f"run, the benchmark's own two busy processes included); other processes used "
        f"{min(others):.2f}-{max(others):.2f} cores during the runs"
    )
    print(
        f"setup     nginx pinned to core {args.target_core}; each tool pinned to core "
        f"{args.tool_core}; {args.vus} keep-alive connections; POST of a {len(body)}-byte "
        f"JSON body; {args.rounds} rounds of {args.duration}s, order rotating"
    )
    print()
    print("| tool | req/s (median) | range | CPU µs/req | replay ÷ tool |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for tool in tools:
        mine = [r for r in runs if r.tool == tool]
        median[tool] = statistics.median(r.rps for r in mine)
    for tool in tools:
        mine = [r for r in runs if r.tool == tool]
        lo, hi = min(r.rps for r in mine), max(r.rps for r in mine)
        cpu = statistics.median(r.cpu_us for r in mine)
        ratio = median["replay"] / median[tool] if "replay" in median else float("nan")
        print(f"| {tool} | {median[tool]:,.0f} | {lo:,.0f}-{hi:,.0f} | {cpu:.1f} | {ratio:.2f}x |")
    replays = sorted((r for r in runs if r.tool == "replay"), key=lambda r: r.rps)
    if replays:
        mid = replays[len(replays) // 2]
        lat = mid.extra["latency_ms"]
        print()
        print(
            "replay latency (ms, from intended time, median round): "
            + " ".join(f"{k}={lat[k]}" for k in ("p50", "p90", "p99", "p999", "max"))
            + f"; errors {mid.extra['errors']}"
        )


if __name__ == "__main__":
    main()
