"""Work done ahead of the schedule, between turns of the gevent loop, never inside a send.

Pacing maths, corpus decoding and template building (streamed shards) happen here in slices
of about SLICE_NS, so a dispatch only pops what is ready.
"""

from __future__ import annotations

import itertools
import time
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

AHEAD = 4096  # requests (or templates) prepared ahead of the schedule, at most
SPOOLED_AHEAD = 64  # the same when they are read back from a spool (see `Ahead`)
SLICE_NS = 100_000  # work ahead holds the loop for about this long at a time
BATCH = 8  # items prepared between two looks at the clock


class Ahead:
    """Work done ahead of the schedule: items from `source` (due times and templates, or
    templates alone) put into a bounded deque in slices of about SLICE_NS, by a check
    watcher that runs once per turn of the loop while the deque is below half full. So
    pacing maths, corpus decoding and template building (streamed shards) never run inside
    a dispatch, and never hold the loop for long. (Not a greenlet: a greenlet that yields
    with sleep(0) is resumed by gevent's callback runner before the loop polls again, for
    up to its switch interval, and starves the sockets.)

    How far ahead (`size`): AHEAD for templates kept in memory or built as they are read
    (the deque absorbs the cost of building). Templates read back from a spool are new
    objects made from a frame just decompressed: SPOOLED_AHEAD of them are rendered while
    their bytes are still in the core's cache, where AHEAD of them (several MB) would be
    written out to memory and read back.

    The consumer reads and pops `items`, then calls `poke()`. `on_fill` is called after each
    slice (the closed model restarts VUs that found the deque empty); `exhausted` is set
    once the source has ended.
    """

    def __init__(
        self,
        source: Iterator[Any],
        loop: Any,
        size: int = AHEAD,
        on_fill: Callable[[], None] | None = None,
    ) -> None:
        self.items: deque[Any] = deque()
        self.size = size
        self.exhausted = False
        self.on_fill = on_fill
        self._source = source
        self._check = loop.check()
        self._spin = loop.idle()  # keeps the loop from blocking while there is work
        self.filling = False

    def prefill(self, until_ns: int) -> None:
        """Fill up before the start (until full, or until `until_ns`), then keep it so."""
        while not self.exhausted and len(self.items) < self.size:
            self.fill_slice()
            if time.monotonic_ns() > until_ns:
                break
        self.poke()

    def poke(self) -> None:
        if not self.filling and not self.exhausted and len(self.items) < self.size // 2:
            self.filling = True
            self._check.start(self._on_check)
            self._spin.start(nothing)

    def stop(self) -> None:
        self.filling = False
        self._check.stop()
        self._spin.stop()

    def _on_check(self) -> None:
        self.fill_slice()
        if self.exhausted or len(self.items) >= self.size:
            self.stop()

    def rest(self) -> Iterator[Any]:
        """What was prepared, then what was not (once stopped): for counting what is left."""
        while self.items:
            yield self.items.popleft()
        yield from self._source

    def fill_slice(self) -> None:
        items, source, size = self.items, self._source, self.size
        until = time.monotonic_ns() + SLICE_NS
        monotonic_ns = time.monotonic_ns
        while len(items) < size:
            want = min(BATCH, size - len(items))
            before = len(items)
            items.extend(itertools.islice(source, want))
            if len(items) - before < want:
                self.exhausted = True
                break
            if monotonic_ns() > until:
                break
        if self.on_fill is not None:
            self.on_fill()


def nothing() -> None:
    """A watcher callback that does nothing: the watcher only keeps the loop awake."""
