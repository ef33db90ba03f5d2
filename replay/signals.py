"""SIGTERM treated as Ctrl-C, for commands that must stop cleanly when a supervisor asks.

A process manager, a CI runner's timeout or `kill` sends SIGTERM; its default action ends
the process at once, leaving workers orphaned, the embedded sandbox running and no results
file. Inside `sigterm_as_interrupt()` SIGTERM calls whatever handles SIGINT at that moment:
the coordinator's handler during a run (stop the workers, write partial results), Python's
default (KeyboardInterrupt) before and after it.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[list[int]]:
    """While active, SIGTERM does what SIGINT would; yields the list of signals received."""
    received: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield received
        return

    def on_term(signum: int, frame: FrameType | None) -> None:
        received.append(signum)
        handler = signal.getsignal(signal.SIGINT)
        if callable(handler):
            handler(signal.SIGINT, frame)
        else:  # SIGINT ignored or default at the C level: stop as Ctrl-C would
            raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        yield received
    finally:
        signal.signal(signal.SIGTERM, previous)
