"""`capture record`'s cost: latency it adds, and the rate one proxy forwards while recording,
against nginx on loopback (and, with --engines mitmproxy, mitmproxy's reverse mode with an
addon doing the same recording, for the engine choice in docs/capture.md).

    .venv/bin/python bench/record.py [--rounds 3] [--rate 1000] [--latency-duration 5]
                                     [--duration 10] [--conns 50] [--body-bytes 3000]
                                     [--engines gevent,mitmproxy]

nginx (bench/nginx.conf: one worker, a small JSON answer) runs pinned to core 0 with the
load generators; the proxy runs pinned to core 1 (its writer process, a child, inherits the
pin: both share that core), recording to a temporary corpus. Per round:

    latency     bench/paced_latency.py POSTs a synthetic ingestion trace of about
                --body-bytes bytes at a fixed --rate over one kept-alive connection, straight
                to nginx and then through the proxy: added p50 and p99 are the differences
                of the two runs' percentiles, at a rate where queueing does not dominate.
                Twice: the client on core 0 with nginx (the direct path then never leaves
                its core, while the proxied one crosses between the cores twice each way),
                and "beside", the client on the proxy's core (each path crosses once each
                way: the difference is the proxy's, with a hop on its own core). On a
                virtual machine a crossing costs a wake-up of the other core
    throughput  wrk (one thread, keep-alive, the same body) with --conns connections through
                the proxy for --duration: the highest rate it forwards while recording, the
                CPU seconds (user + system, from /proc) of the proxy process over the run
                and of its writer process over the run and until it has caught up (the
                writer runs behind the proxy, a queue apart: what it has left when wrk
                stops is work for this run too), and so req/s per core two ways: per core of
                the proxy process alone, and per core of proxy and writer together when
                every request is recorded (the proxy's CPU per request plus the writer's
                per recorded request: a writer left behind, dropping from the recording,
                does not flatter it); then SIGTERM, and the proxy's own count of recorded
                and dropped requests

Every figure comes with the load average (1, 5 and 15 minutes) before its run, and each
round with the core probe (the ms bench/common.py's fixed loop takes on the proxy's core):
the machine may be shared and its speed varies by the hour, and every figure is only as
good as that. The table gives each figure's
median over the rounds and its range. A benchmark, not a test: nothing in CI depends on
it. All traffic goes to 127.0.0.1; every process started here is stopped by its pid.
mitmproxy is installed on demand into its own virtualenv (--mitm-venv, under the temp
dir), never the project's.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common

ENGINES = ("gevent", "mitmproxy")
WRK_LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer sk-bench-not-a-secret"
local f = io.open(os.getenv("RECORD_BODY"), "rb")
wrk.body = f:read("*a")
f:close()
"""
# mitmproxy's reverse mode with an addon doing what capture/recording.py does per request
# (headers scrubbed, spans found, the record written), on mitmproxy's event loop.
MITM_ADDON = """
import os, time
from capture.corpus import CorpusMeta, CorpusWriter, Record
from capture.intake import endpoint_of
from capture.recording import recorded_headers
from capture.spans import find_spans


class Recorder:
    def __init__(self):
        self.start = time.monotonic_ns()
        meta = CorpusMeta("recorded", "mitmproxy", "2026-01-01T00:00:00Z")
        self.writer = CorpusWriter(os.environ["RECORD_OUT"], meta, level=1)
        self.recorded = 0

    def response(self, flow):
        req = flow.request
        headers = recorded_headers([(k, v) for k, v in req.headers.items(multi=True)])
        found = find_spans(req.raw_content or b"", req.path)
        endpoint = endpoint_of(req.method, req.path) or "other"
        self.writer.write(Record(time.monotonic_ns() - self.start, endpoint,
                                 req.method, req.path, headers, req.raw_content or b"",
                                 found.body_ids, found.path_ids, found.trace,
                                 flow.response.status_code, None))
        self.recorded += 1

    def done(self):
        self.writer.close()
        print(f"mitmproxy recorder: {self.recorded} recorded", flush=True)


addons = [Recorder()]
"""


@dataclass
class Round:
    engine: str
    round: int
    load: tuple[float, float, float]  # before the latency runs
    rate: float = 0.0  # of the latency runs
    direct_p50_us: float = 0.0
    direct_p99_us: float = 0.0
    proxied_p50_us: float = 0.0
    proxied_p99_us: float = 0.0
    latency_errors: int = 0
    throughput_load: tuple[float, float, float] = (0.0, 0.0, 0.0)
    rps: float = 0.0
    requests: int = 0
    proxy_cpu_s: float = 0.0
    writer_cpu_s: float = 0.0  # over the run and until the writer had caught up
    writer_catchup_s: float = 0.0  # how long after the run the writer was still busy
    forwarded: int = 0  # by the proxy, latency runs included
    recorded: int = 0
    dropped: int = 0
    errors: int = 0
    core_ms: float = 0.0  # common.core_speed of the proxy's core at the round's start
    beside_direct_p50_us: float = 0.0  # the latency runs again, the client on the proxy's core
    beside_direct_p99_us: float = 0.0
    beside_proxied_p50_us: float = 0.0
    beside_proxied_p99_us: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def added_p50_us(self) -> float:
        return self.proxied_p50_us - self.direct_p50_us

    @property
    def added_p99_us(self) -> float:
        return self.proxied_p99_us - self.direct_p99_us

    @property
    def beside_added_p50_us(self) -> float:
        return self.beside_proxied_p50_us - self.beside_direct_p50_us

    @property
    def beside_added_p99_us(self) -> float:
        return self.beside_proxied_p99_us - self.beside_direct_p99_us

    @property
    def rps_per_proxy_core(self) -> float:
        """Requests per CPU second of the proxy process alone."""
        return self.requests / self.proxy_cpu_s if self.proxy_cpu_s else 0.0

    @property
    def recorded_in_run(self) -> int:
        """What the writer recorded of the throughput run: all it recorded, less the latency
        runs' requests (every one recorded at their low rate, and written before the run)."""
        if not self.forwarded:  # (an engine whose proxy does not count them: all of them)
            return self.requests
        return max(self.recorded - (self.forwarded - self.requests), 1)

    @property
    def rps_per_core(self) -> float:
        """Requests per CPU second of the proxy and its writer together, recording every
        one: 1 / (the proxy's CPU per forwarded request + the writer's per recorded one).
        (Requests over the two processes' CPU seconds would flatter a run whose writer
        could not keep up: its CPU would cover only the requests it recorded.)"""
        if not self.requests:
            return 0.0
        used = self.proxy_cpu_s / self.requests + self.writer_cpu_s / self.recorded_in_run
        return 1 / used if used else 0.0


def ingestion_body(size: int) -> bytes:
    """The synthetic ingestion trace closest to `size` bytes (observations, ids, timestamps:
    what the recorder's span finder works on)."""
    from capture.synth import SynthSpec, synthesize

    records = synthesize(SynthSpec("ingestion", 100, 20 * common.NS, 7))
    return min((r.body for r in records), key=lambda body: abs(len(body) - size))


_UNIT_US = {"us": 1.0, "ms": 1000.0, "s": 1_000_000.0}


def wrk(url: str, conns: int, secs: int, work: Path) -> dict[str, float]:
    binary = common.ensure_tool("wrk", "wrk")
    argv = [binary, "-t1", f"-c{conns}", f"-d{secs}s", "--latency", "-s", str(work / "post.lua")]
    env = {**os.environ, "RECORD_BODY": str(work / "body.json")}
    done = subprocess.run(
        common.pinned(0, [*argv, url + common.PATH]),
        capture_output=True,
        text=True,
        env=env,
        timeout=secs + 60,
    )
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed: {done.stderr[-400:]}")
    out = done.stdout
    result = {
        "rps": float(_find(r"Requests/sec:\s+([\d.]+)", out)),
        "requests": float(_find(r"(\d+) requests in", out)),
        "errors": float(sum(int(n) for n in re.findall(r"Non-2xx or 3xx responses: (\d+)", out))),
    }
    for pct in ("50", "99"):
        value, unit = re.search(rf"\s{pct}%\s+([\d.]+)(us|ms|s)", out).groups()  # type: ignore[union-attr]
        result[f"p{pct}_us"] = float(value) * _UNIT_US[unit]
    return result


def _find(pattern: str, text: str) -> str:
    match = re.search(pattern, text)
    if match is None:
        raise RuntimeError(f"wrk output without {pattern!r}: {text[-400:]}")
    return match.group(1)


class Proxy:
    """A recording proxy process of one engine, pinned to core 1."""

    def __init__(
        self, engine: str, upstream: str, work: Path, mitm_venv: Path, options: tuple[str, ...] = ()
    ) -> None:
        self.engine = engine
        self.out = work / f"recorded-{engine}-{time.monotonic_ns()}.atc"
        port = common.free_port()
        self.url = f"http://127.0.0.1:{port}"
        env = {**os.environ, "PYTHONPATH": str(common.ROOT), "RECORD_OUT": str(self.out)}
        if engine == "gevent":
            argv = [str(Path(sys.executable).parent / "capture"), "record"]
            argv += ["--listen", f"127.0.0.1:{port}", "--upstream", upstream, "-o", str(self.out)]
            argv += options
        else:
            (work / "mitm_addon.py").write_text(MITM_ADDON)
            argv = [str(mitm_venv / "bin" / "mitmdump"), "--mode", f"reverse:{upstream}"]
            argv += ["--listen-host", "127.0.0.1", "--listen-port", str(port), "-q"]
            argv += ["-s", str(work / "mitm_addon.py")]
        self.proc = subprocess.Popen(
            common.pinned(1, argv),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        deadline = time.monotonic() + 60
        while not _accepts(port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{engine} proxy did not start: {self.stop()}")
            time.sleep(0.05)

    def cpu_s(self) -> float:
        return common.pid_cpu_s(self.proc.pid)

    def children_cpu_s(self) -> float:
        """CPU seconds of the proxy's child processes (capture record's writer) so far."""
        total = 0.0
        for pid in _children(self.proc.pid):
            with contextlib.suppress(OSError, ValueError, IndexError):
                total += common.pid_cpu_s(pid)
        return total

    def writer_idle(self, window_s: float = 0.25, limit_s: float = 300.0) -> float:
        """Wait until the writer has written its queue (its CPU grows by under 5% of a
        window); the seconds that took. The writer runs behind the proxy by design, so its
        CPU for a run's requests is only all counted once it is idle again."""
        start = time.monotonic()
        used = self.children_cpu_s()
        while time.monotonic() - start < limit_s:
            time.sleep(window_s)
            now = self.children_cpu_s()
            if now - used < 0.05 * window_s:
                break
            used = now
        return time.monotonic() - start

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            out, _ = self.proc.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, _ = self.proc.communicate()
        return out


def _children(pid: int) -> list[int]:
    """The child processes of `pid` (Linux: /proc/PID/task/*/children)."""
    kids: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        with contextlib.suppress(OSError):
            kids += [int(k) for k in task.read_text().split()]
    return kids


def _accepts(port: int) -> bool:
    import socket

    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def mitmdump(venv: Path) -> Path:
    binary = venv / "bin" / "mitmdump"
    if not binary.exists():
        common.say(f"installing mitmproxy into {venv} (its own virtualenv)")
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        pip = [str(venv / "bin" / "pip"), "install", "-q", "mitmproxy", "msgpack", "zstandard"]
        subprocess.run(pip, check=True)
    return binary


def paced(url: str, args: argparse.Namespace, work: Path, core: int = 0) -> dict[str, float]:
    """bench/paced_latency.py against `url`, pinned to `core` (0: with nginx)."""
    argv = [sys.executable, str(common.HERE / "paced_latency.py"), url + common.PATH]
    argv += [str(work / "body.json"), "--rate", str(args.rate)]
    argv += ["--duration", str(args.latency_duration)]
    pinned, timeout = common.pinned(core, argv), args.latency_duration + 60
    done = subprocess.run(pinned, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"paced_latency failed: {done.stderr[-400:]}")
    result: dict[str, float] = json.loads(done.stdout)
    return result


def one_round(engine: str, r: int, args: argparse.Namespace, upstream: str, work: Path) -> Round:
    run = Round(engine, r, os.getloadavg(), args.rate, core_ms=common.core_speed(1))
    direct = paced(upstream, args, work)
    run.direct_p50_us, run.direct_p99_us = direct["service_p50_us"], direct["service_p99_us"]
    beside = paced(upstream, args, work, core=1)
    run.beside_direct_p50_us = beside["service_p50_us"]
    run.beside_direct_p99_us = beside["service_p99_us"]
    options = () if args.busy_poll_us is None else ("--busy-poll-us", str(args.busy_poll_us))
    proxy = Proxy(engine, upstream, work, Path(args.mitm_venv), options)
    try:
        proxied = paced(proxy.url, args, work)
        run.proxied_p50_us, run.proxied_p99_us = (
            proxied["service_p50_us"],
            proxied["service_p99_us"],
        )
        through = paced(proxy.url, args, work, core=1)
        run.beside_proxied_p50_us = through["service_p50_us"]
        run.beside_proxied_p99_us = through["service_p99_us"]
        run.latency_errors = sum(int(x["errors"]) for x in (direct, beside, proxied, through))
        run.throughput_load = os.getloadavg()
        proxy.writer_idle()  # the latency runs' records written: not this run's CPU
        before, before_kids = proxy.cpu_s(), proxy.children_cpu_s()
        loaded = wrk(proxy.url, args.conns, args.duration, work)
        run.proxy_cpu_s = proxy.cpu_s() - before
        run.writer_catchup_s = proxy.writer_idle()
        run.writer_cpu_s = proxy.children_cpu_s() - before_kids
        run.rps, run.requests = loaded["rps"], int(loaded["requests"])
        run.errors = int(loaded["errors"])
    finally:
        out = proxy.stop()
    counts = re.search(r"([\d,]+) of ([\d,]+) requests recorded", out)
    mitm = re.search(r"mitmproxy recorder: (\d+) recorded", out)
    if counts:
        run.recorded, run.forwarded = (int(g.replace(",", "")) for g in counts.groups())
    elif mitm:
        run.recorded = int(mitm.group(1))
    dropped = re.search(r"([\d,]+) dropped", out)
    run.dropped = int(dropped.group(1).replace(",", "")) if dropped else 0
    proxy.out.unlink(missing_ok=True)
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=10, help="s of the throughput run")
    parser.add_argument("--latency-duration", type=int, default=5, help="s of each latency run")
    parser.add_argument("--rate", type=float, default=1000.0, help="req/s of the latency runs")
    parser.add_argument("--conns", type=int, default=50, help="connections of the throughput run")
    parser.add_argument("--engines", default="gevent")
    parser.add_argument("--body-bytes", type=int, default=3000)
    parser.add_argument(
        "--busy-poll-us", type=int, help="capture record --busy-poll-us (default: its own)"
    )
    parser.add_argument("--max-load", type=float, default=0.3)
    parser.add_argument("--patience", type=float, default=0, help="s to wait for quiet")
    parser.add_argument(
        "--mitm-venv", default=str(Path(tempfile.gettempdir()) / "agenttrace-bench-mitm-venv")
    )
    parser.add_argument("--json", type=Path, help="write every round here")
    args = parser.parse_args()
    engines = [e for e in args.engines.split(",") if e]
    if set(engines) - set(ENGINES):
        parser.error(f"unknown engines: {', '.join(sorted(set(engines) - set(ENGINES)))}")
    if "mitmproxy" in engines:
        mitmdump(Path(args.mitm_venv))
    body = ingestion_body(args.body_bytes)
    rounds: list[Round] = []
    with tempfile.TemporaryDirectory(prefix="bench-record-") as tmp, common.nginx(0) as server:
        work = Path(tmp)
        (work / "body.json").write_bytes(body)
        (work / "post.lua").write_text(WRK_LUA)
        load = common.wait_quiet(args.max_load, args.patience)
        common.say(f"{common.machine()}; body {len(body):,} bytes; load {load:.2f}")
        for r in range(args.rounds):
            for engine in engines:
                run = one_round(engine, r, args, server.url, work)
                rounds.append(run)
                common.say(
                    f"round {r + 1} {engine:<9} at {args.rate:,.0f} req/s: added p50 "
                    f"{run.added_p50_us:6.0f} µs p99 {run.added_p99_us:6.0f} µs, the client "
                    f"beside the proxy {run.beside_added_p50_us:4.0f} and "
                    f"{run.beside_added_p99_us:4.0f} µs (load "
                    f"{_load(run.load)}); max {run.rps:8,.0f} req/s, CPU s proxy "
                    f"{run.proxy_cpu_s:.2f} writer {run.writer_cpu_s:.2f} (caught up "
                    f"{run.writer_catchup_s:.1f} s after): "
                    f"{run.rps_per_proxy_core:,.0f} req/s per proxy core, "
                    f"{run.rps_per_core:,.0f} per core of both; recorded {run.recorded:,}, "
                    f"dropped {run.dropped:,}, errors {run.errors + run.latency_errors} (load "
                    f"{_load(run.throughput_load)}; core probe {run.core_ms:.0f} ms)"
                )
    print(render(rounds, len(body)))
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in rounds], indent=2))


def _load(load: tuple[float, float, float]) -> str:
    return " ".join(f"{x:.2f}" for x in load)


def render(rounds: list[Round], body: int) -> str:
    lines = [
        f"capture record against nginx on loopback, {body:,}-byte ingestion bodies, "
        f"{common.today()}",
        common.machine(),
        "",
        f"{'engine':<10} {'added p50':>22} {'added p99':>22} {'max req/s':>20} "
        f"{'per proxy core':>20} {'per core (both)':>20} {'recorded':>9} {'load (1 min)':>18} "
        f"{'core probe':>20}",
    ]

    def cell(values: list[float], unit: str = "", digits: int = 0) -> str:
        med = statistics.median(values)
        return f"{med:,.{digits}f}{unit} ({min(values):,.{digits}f}-{max(values):,.{digits}f})"

    for engine in dict.fromkeys(r.engine for r in rounds):
        mine = [r for r in rounds if r.engine == engine]
        forwarded = sum(r.forwarded for r in mine)
        recorded = sum(r.recorded for r in mine) / forwarded if forwarded else float("nan")
        loads = [r.load[0] for r in mine] + [r.throughput_load[0] for r in mine]
        lines.append(
            f"{engine:<10} {cell([r.added_p50_us / 1000 for r in mine], ' ms', 3):>22} "
            f"{cell([r.added_p99_us / 1000 for r in mine], ' ms', 2):>22} "
            f"{cell([r.rps for r in mine]):>20} {cell([r.rps_per_proxy_core for r in mine]):>20} "
            f"{cell([r.rps_per_core for r in mine]):>20} "
            f"{100 * recorded:>8.1f}% {cell(loads, '', 2):>18} "
            f"{cell([r.core_ms for r in mine], ' ms'):>20}"
        )
        lines.append(
            f"{'  beside':<10} {cell([r.beside_added_p50_us / 1000 for r in mine], ' ms', 3):>22} "
            f"{cell([r.beside_added_p99_us / 1000 for r in mine], ' ms', 2):>22}"
        )
    rate = statistics.median(r.rate for r in rounds)
    lines.append(
        f"(added latency at a fixed {rate:,.0f} req/s over one connection, the client on core 0 "
        "with nginx; beside: the same with the client on the proxy's core 1, so that the direct "
        "and the proxied paths each cross between the cores once each way; max req/s with wrk; "
        "per proxy core = requests / CPU seconds of the proxy process; per core (both) = "
        "1 / (proxy CPU per request + writer CPU per recorded request): recording every one; "
        "core probe = ms of bench/common.py's fixed loop on the proxy's core at each round's "
        "start, best of 3: lower is a faster machine)"
    )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
