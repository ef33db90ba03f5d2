"""A stop request that arrives while the process forks (replay/signals.py): remembered, not
raised inside an at-fork hook (where Python would print the exception and lose it), and
raised by `Stops.check()`. Each case runs in a fresh interpreter, which gets a signal from
itself inside a hook registered as `logging` registers its own: before replay.signals."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

SCRIPT = """
import os, signal, sys
def hook():  # like logging's after-fork hook: Python code, run in the parent after a fork
    os.kill(os.getpid(), {signum})
    sum(i for i in range(10000))  # (the handler runs here, inside the hook)
os.register_at_fork(after_in_parent=hook)
from replay.signals import sigterm_as_interrupt
with sigterm_as_interrupt() as stops:
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    print("after the fork", stops.received == [{signum}] or stops.received == [{signum}, 2])
    try:
        stops.check()
    except KeyboardInterrupt:
        print("raised by check")
"""


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_during_a_fork_is_raised_by_check_not_lost(signum: int) -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT.format(signum=int(signum))],
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["after the fork True", "raised by check"]
    assert "Traceback" not in done.stderr and "Exception ignored" not in done.stderr
