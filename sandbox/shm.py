"""A small block of memory shared by every process of one sandbox, with a lock.

The emulated-capacity schedule and the per-key rate limiter must be global across API
processes (pods), as a real deployment's would be (a load balancer's view, a Redis bucket).
Each lives in a file under the sandbox's runtime directory, mapped with ``mmap`` into every
process; read-modify-write happens under ``flock`` on that file. The critical sections are a
few microseconds of pure computation, never I/O, so the lock is held too briefly to matter
to a gevent loop.
"""

from __future__ import annotations

import fcntl
import mmap
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class SharedBlock:
    """``size`` bytes of ``path`` mapped read-write; ``create`` zero-fills a new file."""

    def __init__(self, path: str | Path, size: int, *, create: bool = False) -> None:
        flags = os.O_RDWR | (os.O_CREAT | os.O_TRUNC if create else 0)
        self._fd = os.open(str(path), flags, 0o600)
        if create:
            os.ftruncate(self._fd, size)
        self.size = size
        self.buf = mmap.mmap(self._fd, size)

    @contextmanager
    def locked(self) -> Iterator[mmap.mmap]:
        """Exclusive access across processes for one read-modify-write."""
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            yield self.buf
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        self.buf.close()
        os.close(self._fd)
