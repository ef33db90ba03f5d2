"""The command line: bad input is one line on stderr and exit 2; help documents the faults;
`replay sandbox` is the same command as `python -m sandbox`."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest
from click.testing import CliRunner

from capture.units import parse_size
from sandbox.cli import command


@pytest.mark.parametrize(
    ("args", "mentions"),
    [
        (["--port", "abc"], "--port"),
        (["--port", "70000"], "--port"),
        (["--pods", "0"], "--pods"),
        (["--api-key", "no-project"], "KEY:PROJECT"),
        (["--faults", "boom=1"], "--faults"),
        (["--faults", "error=2"], "from 0 to 1"),
        (["--rate-limit", "fast"], "not a rate"),
        (["--ingest-delay", "soon"], "not a duration"),
        (["--max-body", "huge"], "not a size"),
        (["--emulate-pods", "0"], "--emulate-pods"),
        (["--sigma", "2"], "--sigma"),
        (["--no-such-flag"], "no-such-flag"),
        (["--api-key", "k:a", "--api-key", "k:b"], "two projects"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args: list[str], mentions: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "sandbox", *args], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("python -m sandbox: error: ") and mentions in lines[0]
    assert "Traceback" not in done.stderr


def test_port_in_use_is_one_line() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "sandbox", "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 2
    errors = [line for line in done.stderr.splitlines() if "error:" in line]
    assert errors == [
        f"python -m sandbox: error: --host/--port: cannot listen on 127.0.0.1:{port}: "
        "Address already in use"
    ]
    assert "Traceback" not in done.stderr


def test_help_documents_faults_and_emulation() -> None:
    result = CliRunner().invoke(command, ["--help"])
    assert result.exit_code == 0
    for text in ("--faults", "slow=0.02:200ms", "stall=", "--emulate-pods", "X(N) =", "--ready-fd"):
        assert (text in result.output) == (text != "--ready-fd")  # the pipe flag stays hidden


def test_replay_mounts_the_command() -> None:
    from replay.cli import main

    assert main.commands["sandbox"] is command  # type: ignore[attr-defined]
    result = CliRunner().invoke(main, ["sandbox", "--pods", "zero"])
    assert result.exit_code == 2
    assert result.output.strip().splitlines()[-1].startswith("replay sandbox: error: ")


@pytest.mark.parametrize(
    ("text", "size"),
    [("4.5MB", 4_500_000), ("512KiB", 524_288), ("1000", 1000), ("1mib", 1_048_576), ("2k", 2000)],
)
def test_sizes(text: str, size: int) -> None:
    assert parse_size(text) == size


def test_foreground_sandbox_prints_its_key_and_stops_on_sigterm() -> None:
    # a generated key is printed for the person at the terminal; a given one is not (see
    # tests/sandbox/test_secrets.py)
    with subprocess.Popen(
        [sys.executable, "-m", "sandbox", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    ) as proc:
        try:
            assert proc.stdout is not None
            banner = proc.stdout.readline()
            assert banner.startswith("AgentTrace sandbox on http://127.0.0.1:")
            rest = [proc.stdout.readline() for _ in range(3)]
            assert any("sk-sandbox-" in line and "proj-sandbox" in line for line in rest)
            proc.terminate()
            assert proc.wait(timeout=60) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
