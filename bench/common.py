"""What bench/peers.py, bench/schedule.py and bench/memory.py share: nginx on loopback, the
corpus of fixed-size JSON bodies, tools installed on demand, pinning, the machine's load.

Everything here targets 127.0.0.1 only and stops what it started by its pid.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from replay.core_wait import steal_ticks

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
NS = 1_000_000_000
PATH = "/api/public/traces"

_apt_updated = False


def say(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    python = platform.python_version()
    return f"{cpu}, {os.cpu_count()} cores, Linux {platform.release()}, Python {python}"


def today() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")


def load1() -> float:
    return os.getloadavg()[0]


PROBE = "import time; t = time.perf_counter(); sum(range(5_000_000)); print(time.perf_counter()-t)"


def core_speed(core: int | None, tries: int = 3) -> float:
    """Milliseconds a fixed pure-Python loop takes on `core` (best of `tries`, each in a
    process of its own pinned there): this machine's speed varies by the hour, and a figure
    read beside the probe taken with it can be compared with one taken at another hour."""
    best = float("inf")
    for _ in range(tries):
        done = subprocess.run(
            pinned(core, [sys.executable, "-c", PROBE]), capture_output=True, text=True, check=True
        )
        best = min(best, float(done.stdout) * 1000)
    return best


def wait_quiet(max_load: float, patience_s: float) -> float:
    """Wait (up to `patience_s`) for the 1-minute load average to fall to `max_load`."""
    deadline = time.monotonic() + patience_s
    load = load1()
    if load > max_load and patience_s > 0:
        say(f"load average {load:.2f} > {max_load}: waiting up to {patience_s:.0f}s")
    while load > max_load and time.monotonic() < deadline:
        time.sleep(5)
        load = load1()
    if load > max_load:
        say(f"load average {load:.2f} > {max_load}: figures will be disturbed")
    return load


def quiet_options(parser: argparse.ArgumentParser, *, pinned: bool = True) -> None:
    """The options every benchmark shares: the cores the tool and the target are pinned to
    (when `pinned`), and how quiet the machine must be before a run (`wait_quiet`)."""
    if pinned:
        parser.add_argument("--tool-core", type=int, default=1)
        parser.add_argument("--target-core", type=int, default=0)
    parser.add_argument("--max-load", type=float, default=0.3)
    parser.add_argument("--patience", type=float, default=0, help="s to wait for quiet")


def ensure_tool(binary: str, package: str) -> str:
    """The path of `binary`, installing Debian's `package` first if it is missing."""
    global _apt_updated
    found = shutil.which(binary)
    if found:
        return found
    if os.geteuid() != 0:
        sys.exit(f"bench: {binary} is missing: apt-get install {package} (as root), then rerun")
    say(f"{binary} is missing: installing Debian's {package} (apt-get install -y {package})")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    if not _apt_updated:
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
        _apt_updated = True
    subprocess.run(["apt-get", "install", "-y", "-qq", package], check=True, env=env)
    found = shutil.which(binary)
    if not found:
        sys.exit(f"bench: {package} installed but {binary} is still not on PATH")
    return found


def pinned(core: int | None, argv: Sequence[str]) -> list[str]:
    """`argv` pinned to one core with taskset (inherited by its children), or as it is."""
    if core is None:
        return list(argv)
    return [ensure_tool("taskset", "util-linux"), "-c", str(core), *argv]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


_TICK = os.sysconf("SC_CLK_TCK")


def busy_cpu_s() -> float:
    """CPU seconds spent by everything on the machine (all cores, /proc/stat), so far."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields[:8])
    return (user + nice + system + irq + softirq + steal) / _TICK


def stolen_s(core: int | None) -> float:
    """Seconds the hypervisor has taken from `core` (all cores for None) so far: its steal
    time in /proc/stat, when the virtual CPU was ready to run and the host ran something
    else. A load tool stalls for as long, and what it paces runs late by as much."""
    ticks = steal_ticks(Path("/proc/stat").read_text(), "cpu" if core is None else f"cpu{core}")
    return (ticks or 0) / _TICK


def pid_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) of one process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


class Others:
    """CPU used by everything but the benchmark over a stretch of time, in cores: the
    machine's busy time minus the tool's (waited-for children) and the target's."""

    def __init__(self, target_pid: int) -> None:
        self.target_pid = target_pid
        self._start = (busy_cpu_s(), children_cpu_s(), pid_cpu_s(target_pid), time.monotonic())

    def cores(self) -> float:
        busy, kids, target, wall = self._start
        used = (
            busy_cpu_s() - busy - (children_cpu_s() - kids) - (pid_cpu_s(self.target_pid) - target)
        )
        return max(used, 0.0) / max(time.monotonic() - wall, 1e-9)


@dataclass
class Server:
    url: str
    pid: int


@contextlib.contextmanager
def nginx(core: int | None = 0) -> Iterator[Server]:
    """nginx (one worker, pinned to `core`) with bench/nginx.conf on a free loopback port:
    yields its URL and pid; stopped by its pid at the end."""
    binary = shutil.which("nginx") or ensure_tool("nginx", "nginx-light")
    prefix = Path(tempfile.mkdtemp(prefix="bench-nginx-"))
    (prefix / "body").mkdir()
    port = free_port()
    conf = (HERE / "nginx.conf").read_text()
    conf = conf.replace("{{PREFIX}}", str(prefix)).replace("{{PORT}}", str(port))
    (prefix / "nginx.conf").write_text(conf)
    proc = subprocess.Popen(
        pinned(core, [binary, "-p", str(prefix), "-c", str(prefix / "nginx.conf")]),
        stdin=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"nginx did not start: {(prefix / 'error.log').read_text()}")
            time.sleep(0.05)
        yield Server(f"http://127.0.0.1:{port}", proc.pid)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(prefix, ignore_errors=True)


def json_body(size: int, trace_id: str, stamp: str) -> bytes:
    """A JSON trace of exactly `size` bytes: an id, a timestamp and padding text."""
    head = '{"id":"' + trace_id + '","timestamp":"' + stamp + '","name":"bench","input":{"text":"'
    tail = '"}}'
    pad = size - len(head) - len(tail)
    if pad < 0:
        raise ValueError(f"a body of {size} bytes is too small")
    words = ("lorem ipsum dolor sit amet consectetur adipiscing elit " * (pad // 50 + 2))[:pad]
    return (head + words + tail).encode()


def body_corpus(path: Path, records: int, size: int = 1800, rate: float = 1000.0) -> bytes:
    """Write a corpus of `records` ingest requests (POST /api/public/traces), each body a
    `size`-byte JSON trace with one trace id and one timestamp marked for rewriting, at
    `rate` records/s; returns the first body (what the other tools send)."""
    from capture.corpus import CorpusMeta, IdKind, Record, write_corpus

    created = datetime(2026, 1, 1, tzinfo=UTC)
    first = b""

    def generate() -> Iterator[Record]:
        nonlocal first
        for i in range(records):
            offset_ns = int(i * NS / rate)
            ms = offset_ns // 1_000_000
            stamp = datetime.fromtimestamp(created.timestamp() + ms / 1000, UTC)
            iso = stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"
            trace = f"{0x6AC1EBD431699832E8513F84C562FA82 + i:032x}"
            body = json_body(size, trace, iso)
            first = first or body
            spans = ((7, 32, int(IdKind.TRACE)), (54, 24, int(IdKind.TIMESTAMP)))
            yield Record(
                offset_ns,
                "ingest",
                "POST",
                PATH,
                (("Content-Type", "application/json"),),
                body,
                spans,
                (),
                trace,
            )

    meta = CorpusMeta("ingestion", f"bench: {size}-byte JSON bodies", created.isoformat())
    write_corpus(path, meta, generate(), duration_ns=int(records * NS / rate))
    return first


def cached_corpus(records: int, size: int = 1800) -> tuple[Path, bytes]:
    """body_corpus() kept in the temp dir between runs (it is a pure function of its args)."""
    path = Path(tempfile.gettempdir()) / f"agenttrace-bench-{records}x{size}.atc"
    body = path.with_suffix(".body")
    if not (path.exists() and body.exists()):
        first = body_corpus(path.with_suffix(".partial.atc"), records, size)
        path.with_suffix(".partial.atc").replace(path)
        body.write_bytes(first)
    return path, body.read_bytes()


def replay_argv(corpus: Path, url: str, *args: str, out: Path | None = None) -> list[str]:
    argv = [sys.executable, "-m", "replay.cli_run", str(corpus), "--target", url, "-q", *args]
    if out is not None:
        argv += ["--out", str(out)]
    return argv


def run_replay(argv: list[str], timeout: float) -> dict[str, Any]:
    """Run `replay run` (argv from replay_argv with --out); its results document."""
    out = Path(argv[argv.index("--out") + 1])
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT)
    if done.returncode not in (0, 99):
        raise RuntimeError(f"replay run failed ({done.returncode}): {done.stderr.strip()}")
    results: dict[str, Any] = json.loads(out.read_text())
    return results


def children_cpu_s() -> float:
    """CPU seconds (user + system) of every waited-for child so far (grandchildren too)."""
    usage = os.times()
    return usage.children_user + usage.children_system
