"""Failures are data, not crashes: every error kind counted, Ctrl-C, a dead worker, bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from capture.corpus import CorpusReader

HERE = Path(__file__).parent
ROOT = HERE.parent.parent


def _outcomes(path: Path) -> dict[str, int]:
    results = json.loads(path.read_text())
    return {k: v["requests"] for k, v in results["outcomes"].items()}


@pytest.fixture
def running() -> Iterator[Any]:
    """start(*args) -> a `replay run` Popen in its own process group, ended in teardown."""
    procs: list[subprocess.Popen[str]] = []

    def start(*args: str) -> subprocess.Popen[str]:
        env = dict(os.environ)
        env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
        env.pop("API_KEY", None)
        proc = subprocess.Popen(
            [sys.executable, "-m", "replay.cli_run", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            cwd=ROOT,
            env=env,
            start_new_session=True,  # its own process group, as a shell gives a job
        )
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=10)


def _wait_for_progress(proc: subprocess.Popen[str], lines: int = 1) -> list[str]:
    assert proc.stderr is not None
    seen: list[str] = []
    while len([s for s in seen if "offered" in s]) < lines:
        line = proc.stderr.readline()
        assert line, f"replay ended early: {''.join(seen)}"
        seen.append(line)
    return seen


def test_sandbox_faults_are_counted_by_kind(replay: Any, synth_corpus: Any, tmp_path: Path) -> None:
    # 5xx, resets and stalls (timeouts) from the sandbox's --faults, on schedule throughout
    from sandbox.process import start_sandbox

    out = tmp_path / "f.json"
    with start_sandbox(faults="error=0.2,reset=0.2,stall=0.1", seed=3) as sb:
        done = replay(str(synth_corpus()), "--target", sb.url, "--api-key", sb.api_key,
                      "--rate", "100", "--duration", "2s", "--timeout", "300ms",
                      "--workers", "1", "--out", str(out))  # fmt: skip
    assert done.returncode == 0, done.stderr
    outcomes = _outcomes(out)
    assert outcomes.get("500", 0) > 10
    assert outcomes.get("reset", 0) > 10
    assert outcomes.get("timeout", 0) > 3
    assert outcomes.get("200", 0) > 50
    results = json.loads(out.read_text())
    assert results["totals"]["offered"] == 200  # the schedule never waited on the failures


@pytest.mark.parametrize(("fault", "kind"), [("garbage", "malformed"), ("close", "closed")])
def test_malformed_and_closed(
    replay: Any, synth_corpus: Any, tiny_server: Any, tmp_path: Path, fault: str, kind: str
) -> None:
    url = tiny_server("--fault", fault, "--fault-every", "3")
    out = tmp_path / "m.json"
    done = replay(str(synth_corpus()), "--target", url, "--rate", "60", "--duration", "1s",
                  "--workers", "1", "--out", str(out))  # fmt: skip
    assert done.returncode == 0, done.stderr
    outcomes = _outcomes(out)
    assert outcomes.get(kind, 0) >= 15 and outcomes.get("200", 0) >= 35


def test_refused_mid_run_is_counted(running: Any, synth_corpus: Any, tmp_path: Path) -> None:
    # the target goes away after the first second: later requests are "refused", the run
    # keeps its schedule to the end and exits 0
    server = subprocess.Popen(
        [sys.executable, str(HERE / "tiny_server.py")],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        url = f"http://127.0.0.1:{server.stdout.readline().split()[1]}"
        out = tmp_path / "r.json"
        proc = running(str(synth_corpus()), "--target", url, "--rate", "50", "--duration",
                       "3s", "--workers", "1", "--out", str(out))  # fmt: skip
        _wait_for_progress(proc)
    finally:
        server.terminate()
        server.wait(timeout=5)
        if server.stdout is not None:
            server.stdout.close()
    proc.communicate(timeout=30)
    assert proc.returncode == 0
    outcomes = _outcomes(out)
    assert outcomes.get("refused", 0) > 20 and outcomes.get("200", 0) > 20
    assert json.loads(out.read_text())["totals"]["offered"] == 150


def test_sigint_stops_within_seconds(
    running: Any, synth_corpus: Any, tiny_server: Any, tmp_path: Path
) -> None:
    # Ctrl-C reaches the whole process group: summary, partial results, exit status 130
    url = tiny_server()
    out = tmp_path / "i.json"
    proc = running(str(synth_corpus()), "--target", url, "--rate", "100", "--duration", "60s",
                   "--workers", "2", "--out", str(out))  # fmt: skip
    _wait_for_progress(proc)
    sent = time.monotonic()
    os.killpg(proc.pid, signal.SIGINT)
    stdout, _ = proc.communicate(timeout=15)
    assert time.monotonic() - sent < 8
    assert proc.returncode == 130
    assert "http_reqs" in stdout
    results = json.loads(out.read_text())
    assert 50 <= results["totals"]["requests"] < 100 * 10
    assert any("interrupted" in n for n in results["meta"]["notes"])


def test_a_killed_worker_is_reported(
    running: Any, synth_corpus: Any, tiny_server: Any, tmp_path: Path
) -> None:
    url = tiny_server()
    out = tmp_path / "k.json"
    proc = running(str(synth_corpus()), "--target", url, "--rate", "100", "--duration", "60s",
                   "--workers", "2", "--out", str(out))  # fmt: skip
    _wait_for_progress(proc)
    workers = [
        p
        for p in psutil.Process(proc.pid).children()
        if any("replay.worker" in part for part in p.cmdline())
    ]
    assert len(workers) == 2
    workers[1].send_signal(signal.SIGKILL)
    _, stderr = proc.communicate(timeout=15)
    assert proc.returncode == 1
    assert "died" in stderr and "SIGKILL" in stderr and "partial results" in stderr
    assert json.loads(out.read_text())["totals"]["requests"] > 0


def _damage(corpus: Path, tmp_path: Path) -> Path:
    """A copy of `corpus` with a byte flipped inside its first chunk's payload."""
    with CorpusReader(corpus) as reader:
        chunk = reader.header.chunks[0]
    data = bytearray(corpus.read_bytes())
    data[chunk.file_offset + 32 + 10] ^= 0xFF
    damaged = tmp_path / "damaged.atc"
    damaged.write_bytes(bytes(data))
    return damaged


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--scale", "0"], "greater than zero"),
        (["--scale", "x5"], "not a factor"),
        (["--duration", "-3s"], "negative"),
        (["--rate", "fast"], "not a rate"),
        (["--workers", "0"], "--workers"),
        (["--target", "127.0.0.1:80"], "http://"),
        (
            ["--spool-dir", "/nonexistent/spool"],
            "--spool-dir /nonexistent/spool: no such directory",
        ),
    ],
)
def test_bad_arguments_are_one_line(replay: Any, args: list[str], message: str) -> None:
    done = replay(*args)
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert message in done.stderr and "Traceback" not in done.stderr


def test_a_spool_dir_that_is_a_file_is_one_line(replay: Any, tmp_path: Path) -> None:
    a_file = tmp_path / "f"
    a_file.write_text("x")
    done = replay("--spool-dir", str(a_file), "--target", "http://127.0.0.1:9")
    assert done.returncode == 2
    assert done.stderr.strip() == f"replay run: error: --spool-dir {a_file}: not a directory"


def test_corrupt_corpus_is_one_line(replay: Any, tmp_path: Path) -> None:
    junk = tmp_path / "junk.atc"
    junk.write_bytes(b"definitely not a corpus" * 10)
    done = replay(str(junk), "--target", "http://127.0.0.1:9", "--workers", "1")
    assert done.returncode == 2, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "not a corpus" in done.stderr and "Traceback" not in done.stderr


def test_damaged_chunk_found_when_loading(
    replay: Any, synth_corpus: Any, tiny_server: Any, tmp_path: Path
) -> None:
    # the header is fine, a chunk is not: the workers find it before the start
    url = tiny_server()
    done = replay(str(_damage(synth_corpus(), tmp_path)), "--target", url, "--workers", "2")
    assert done.returncode == 2, done.stderr
    assert "corrupt" in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_refused_target_at_start(replay: Any) -> None:
    done = replay("--target", "http://127.0.0.1:9", "--workers", "1")
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "replay run: error: cannot connect to http://127.0.0.1:9: connection refused"
    )
