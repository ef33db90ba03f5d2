"""SIGTERM is Ctrl-C: `replay run` and `planner sweep` stop their workers and the embedded
sandbox, write what they measured, say "interrupted" once, leave nothing in $TMPDIR and exit
130 (docs/security.md)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from stderr_lines import read_until


def _processes_with_env(marker: str) -> list[int]:
    """PIDs of this user's live processes whose environment holds `marker` (their TMPDIR)."""
    found = []
    needle = marker.encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            environ = (entry / "environ").read_bytes()
            if needle in environ and (entry / "stat").read_text().split()[2] != "Z":
                found.append(int(entry.name))
    return found


def _sandbox_running(marker: str) -> bool:
    """Whether one of the processes with `marker` has become `python -m sandbox`."""
    for pid in _processes_with_env(marker):
        with contextlib.suppress(OSError):
            if b"-m\0sandbox\0" in Path(f"/proc/{pid}/cmdline").read_bytes():
                return True
    return False


@pytest.fixture
def started() -> Iterator[list[subprocess.Popen[str]]]:
    procs: list[subprocess.Popen[str]] = []
    yield procs
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def _start(
    started: list[subprocess.Popen[str]], tmpdir: Path, entry: str, *args: str
) -> subprocess.Popen[str]:
    env = {**os.environ, "TMPDIR": str(tmpdir), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-c", f"from {entry} import main; main()", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    started.append(proc)
    return proc


def _gone(marker: str, timeout: float = 15) -> list[int]:
    deadline = time.monotonic() + timeout
    while (left := _processes_with_env(marker)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


def test_sigterm_to_replay_run_is_ctrl_c(
    tmp_path: Path, short_tmp: Path, started: list[subprocess.Popen[str]]
) -> None:
    tmpdir = short_tmp / "tmp"
    tmpdir.mkdir()
    out = tmp_path / "r.json"
    proc = _start(
        started, tmpdir, "replay.cli", "run", "ingestion", "--duration", "60s",
        "--workers", "2", "--out", str(out),
    )  # fmt: skip
    read_until(proc, "replay 1s/", timeout=120)  # running: workers and sandbox are up
    assert len(_processes_with_env(f"TMPDIR={tmpdir}")) >= 3  # replay, 2 workers, sandbox
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    results = json.loads(out.read_text())
    assert any("interrupted" in note for note in results["meta"]["notes"])
    assert results["totals"]["requests"] > 0
    assert (stdout + stderr).count("interrupted") == 1
    assert "Traceback" not in stderr
    assert _gone(f"TMPDIR={tmpdir}") == []  # workers and the embedded sandbox stopped
    assert sorted(p.name for p in tmpdir.iterdir()) == []  # nothing left in $TMPDIR


def test_sigterm_to_replay_run_while_the_sandbox_starts(
    short_tmp: Path, started: list[subprocess.Popen[str]]
) -> None:
    tmpdir = short_tmp / "tmp"
    tmpdir.mkdir()
    proc = _start(started, tmpdir, "replay.cli", "run", "ingestion", "--duration", "60s")
    # as soon as the embedded sandbox's process runs (a process with this TMPDIR running
    # `-m sandbox`: replay's workers, spawned first, have it too), while replay waits for it
    # to be ready
    deadline = time.monotonic() + 60
    while not _sandbox_running(f"TMPDIR={tmpdir}") and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert (stdout + stderr).count("interrupted") == 1, stderr
    assert _gone(f"TMPDIR={tmpdir}") == []


def test_sigterm_to_planner_sweep_is_ctrl_c(
    tmp_path: Path, short_tmp: Path, started: list[subprocess.Popen[str]], small_corpus: Path
) -> None:
    tmpdir = short_tmp / "tmp"
    tmpdir.mkdir()
    out = tmp_path / "sweep.json"
    proc = _start(
        started, tmpdir, "planner.cli", "sweep", "--sandbox", "--pods", "1,2",
        "--pod-rate", "100", "--step-duration", "1s", "--warmup", "0s", "--start-rate", "80",
        "--precision", "10%", "--max-steps", "3", "--corpus", str(small_corpus),
        "--out", str(out),
    )  # fmt: skip
    read_until(proc, "2 pods  step  1", timeout=120)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert "interrupted" in stderr and "continue with --resume" in stderr
    kept = json.loads(out.read_text())
    assert [p["pods"] for p in kept["points"]][:1] == [1]
    assert _gone(f"TMPDIR={tmpdir}") == []
    assert sorted(p.name for p in tmpdir.iterdir()) == []
