"""SIGTERM treated as Ctrl-C, for commands that must stop cleanly when a supervisor asks.

A process manager, a CI runner's timeout or `kill` sends SIGTERM; its default action ends
the process at once, leaving workers orphaned, the embedded sandbox running and no results
file. Inside `sigterm_as_interrupt()` SIGTERM calls whatever handles SIGINT at that moment:
the coordinator's handler during a run (stop the workers, write partial results), Python's
default (KeyboardInterrupt) before and after it.

A KeyboardInterrupt raised by a signal handler is lost when the handler happens to run
inside an at-fork hook (the `logging` module's, just after a fork for the sandbox or a
worker): Python prints "Exception ignored" with a traceback and goes on. So while the
process forks (hooks of this module's bracket every other's) a stop request is only
remembered (`Stops`), and a command calls `Stops.check()` where it can act on one, after
starting its processes: a request that raised nothing is raised there.
"""

from __future__ import annotations

import contextlib
import logging  # noqa: F401  (imported first: its at-fork hooks must run inside ours)
import os
import signal
import threading
from collections.abc import Iterator
from types import FrameType

_forking = [False]  # between the first "before fork" hook and the last "after fork" one


def _set_forking(value: bool) -> None:
    _forking[0] = value


# "before" hooks run last registered first, "after" hooks first registered first: these
# are the first and the last to run around a fork (logging's are registered already)
os.register_at_fork(
    before=lambda: _set_forking(True),
    after_in_parent=lambda: _set_forking(False),
    after_in_child=lambda: _set_forking(False),
)


class Stops:
    """The stop requests (SIGTERM; SIGINT while Python's default would handle it) received
    inside `sigterm_as_interrupt()`."""

    def __init__(self) -> None:
        self.received: list[int] = []

    def check(self) -> None:
        """KeyboardInterrupt if a stop was requested: call it where an interrupt would have
        unwound already had it not been swallowed, before a handler of its own takes over."""
        if self.received:
            raise KeyboardInterrupt


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[Stops]:
    """While active, SIGTERM does what SIGINT would; yields the `Stops` received."""
    stops = Stops()
    if threading.current_thread() is not threading.main_thread():
        yield stops
        return

    def on_int(signum: int, frame: FrameType | None) -> None:
        stops.received.append(signum)
        if not _forking[0]:  # (forking, an exception would be lost: check() raises it)
            raise KeyboardInterrupt

    def on_term(signum: int, frame: FrameType | None) -> None:
        stops.received.append(signum)
        handler = signal.getsignal(signal.SIGINT)
        if callable(handler):
            handler(signal.SIGINT, frame)
        elif not _forking[0]:  # SIGINT ignored or default at the C level: stop as Ctrl-C would
            raise KeyboardInterrupt

    previous_int = signal.getsignal(signal.SIGINT)
    ours_for_int = previous_int is signal.default_int_handler  # (not an ignored SIGINT)
    if ours_for_int:
        signal.signal(signal.SIGINT, on_int)
    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        yield stops
    finally:
        signal.signal(signal.SIGTERM, previous)
        if ours_for_int:
            signal.signal(signal.SIGINT, previous_int)
