"""Worker processes started before the target is up, so that their start-up overlaps it.

A worker's first second or two is its interpreter importing gevent, numpy and the replay
modules and patching with gevent; only then does it read its configuration (target URL,
key, project) from its control pipe. `replay run` therefore spawns the workers first and
starts the embedded sandbox while they import; the coordinator takes them over
(`Prespawned.take`) and sends each its configuration once the target is known. Whatever
happens before that (the sandbox fails to start, Ctrl-C), `close` reaps them.
"""

from __future__ import annotations

import selectors

from replay.workers import WorkerProc, reap, spawn_worker


class Prespawned:
    """`count` worker processes waiting for their configuration, and the selector their
    pipes are registered with; the coordinator's once taken, reaped by `close` otherwise."""

    def __init__(self, count: int) -> None:
        self.selector: selectors.BaseSelector = selectors.DefaultSelector()
        self.procs: list[WorkerProc] = []
        self._owned = True
        try:
            for w in range(count):
                self.procs.append(spawn_worker(w, self.selector))
        except BaseException:
            self.close()
            raise

    def take(self) -> tuple[list[WorkerProc], selectors.BaseSelector]:
        """Hand the processes over: from now on the taker reaps them."""
        if not self._owned:
            raise RuntimeError("the prespawned workers were already taken or closed")
        self._owned = False
        return self.procs, self.selector

    def close(self) -> None:
        """Kill and reap the workers unless they were taken (idempotent)."""
        if self._owned:
            self._owned = False
            reap(self.procs, self.selector)
