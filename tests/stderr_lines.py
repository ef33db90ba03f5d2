"""Reading a child process's stderr in tests: up to a line that says it got somewhere."""

from __future__ import annotations

import subprocess
import time


def read_until(proc: subprocess.Popen[str], needle: str, timeout: float) -> list[str]:
    """stderr lines up to and including the first containing ``needle`` (AssertionError with
    what was read when it does not come within ``timeout`` seconds or stderr ends)."""
    assert proc.stderr is not None
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        lines.append(line)
        if needle in line:
            return lines
    raise AssertionError(f"{needle!r} not seen; stderr so far:\n{''.join(lines)}")
