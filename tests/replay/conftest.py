"""Shared fixtures of the replay engine tests: small corpora, a small server process, and
`replay run` as a subprocess. Every process started here is terminated in teardown."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

import worker_shards

HERE = Path(__file__).parent
ROOT = HERE.parent.parent
NS = 1_000_000_000


@pytest.fixture(autouse=True)
def _close_shards() -> Iterator[None]:
    """Shards a test loaded through tests/replay/worker_shards.py, closed after it."""
    yield
    worker_shards.close_all()


@pytest.fixture
def synth_corpus(tmp_path: Path) -> Callable[..., Path]:
    """make(workload="ingestion", rate=50, seconds=2, seed=1) -> a small synthetic corpus."""
    from capture.synth import SynthSpec, write_synth_corpus

    def make(
        workload: str = "ingestion", rate: float = 50, seconds: float = 2, seed: int = 1
    ) -> Path:
        path = tmp_path / f"{workload}-{rate}-{seconds}-{seed}.atc"
        if not path.exists():
            write_synth_corpus(SynthSpec(workload, rate, int(seconds * NS), seed), path)
        return path

    return make


@pytest.fixture
def tiny_server() -> Iterator[Callable[..., str]]:
    """start(*args) -> the base URL of a tests/replay/tiny_server.py process."""
    procs: list[subprocess.Popen[str]] = []

    def start(*args: str) -> str:
        proc = subprocess.Popen(
            [sys.executable, str(HERE / "tiny_server.py"), *args],
            stdout=subprocess.PIPE,
            text=True,
        )
        procs.append(proc)
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("PORT "), f"tiny server did not start: {line!r}"
        return f"http://127.0.0.1:{int(line.split()[1])}"

    yield start
    for proc in procs:
        proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def server_stats(url: str) -> dict[str, object]:
    import json
    import urllib.request

    with urllib.request.urlopen(f"{url}/__stats", timeout=5) as response:
        data: dict[str, object] = json.loads(response.read())
        return data


@pytest.fixture
def stats() -> Callable[[str], dict[str, Any]]:
    """stats(url) -> the tiny server's counters."""
    return server_stats


def replay_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "replay.cli_run", *args]


def replay_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("API_KEY", None)
    env.pop("PROJECT_ID", None)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


@pytest.fixture
def replay() -> Iterator[Callable[..., subprocess.CompletedProcess[str]]]:
    """replay(*args, timeout=60) -> the finished `replay run` process (stdout, stderr)."""

    def run(*args: str, timeout: float = 60, env: dict[str, str] | None = None) -> Any:
        return subprocess.run(
            replay_command(*args),
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**replay_env(), **(env or {})},
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
        )

    yield run
