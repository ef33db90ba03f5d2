"""Polling instead of sleeping while an upstream answer is due: the recording proxy's
remedy for the cost of waking an idle core.

When the proxy has nothing to do its core goes idle, and the upstream's answer has to wake
it; on a virtual machine that wake-up (an interrupt to a halted virtual CPU) takes tens of
microseconds, added to every request. While a request is out, and answers have lately come
back within `window_ns`, the hub's loop polls for events (a libev idle watcher: the loop's
epoll with no timeout) instead of sleeping, for at most `window_ns` after the last request
went out, and stops as soon as no answer is awaited. "Lately" is a running average of the
waits: an upstream that takes milliseconds to answer (a real AgentTrace writing to its
database) is never polled for, so the proxy spends CPU this way only where it buys latency.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from gevent import get_hub

_AVERAGE_SHIFT = 3  # the running average moves 1/8 of the way to each new wait


class AnswerPoll:
    """Keeps the hub's loop polling while answers are awaited that usually come soon."""

    def __init__(self, window_ns: int, clock: Callable[[], int] = time.monotonic_ns) -> None:
        self.window_ns = window_ns
        self._clock = clock
        self._idle = get_hub().loop.idle() if window_ns > 0 else None
        self._awaited = 0  # answers awaited with polling on
        self._until = 0  # when polling stops however many are awaited
        self.typical_ns = 0  # running average of the waits for an answer
        self.turns = 0  # turns of the loop spent polling

    @property
    def polling(self) -> bool:
        """Whether the loop polls now instead of sleeping."""
        return self._idle is not None and bool(self._idle.active)

    def sent(self) -> tuple[int, bool]:
        """A request went out: when, and whether its answer is polled for (to give back to
        `answered`)."""
        now = self._clock()
        idle = self._idle
        if idle is None or self.typical_ns > self.window_ns:
            return now, False
        self._awaited += 1
        self._until = now + self.window_ns
        if not idle.active:
            idle.start(self._check)
        return now, True

    def answered(self, sent: tuple[int, bool]) -> None:
        """The answer to a request `sent` has arrived (or its wait ended otherwise)."""
        at, polled = sent
        wait = self._clock() - at
        self.typical_ns += (wait - self.typical_ns) >> _AVERAGE_SHIFT
        if polled:
            self._awaited -= 1

    def _check(self) -> None:
        self.turns += 1
        if self._awaited <= 0 or self._clock() > self._until:
            assert self._idle is not None
            self._idle.stop()

    def close(self) -> None:
        if self._idle is not None:
            self._idle.close()
