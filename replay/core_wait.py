"""How long a process waited for a core while it could have run: the kernel's run delay.

Linux counts, for each thread, the time it spent runnable on a run queue while another task
held its core (`/proc/thread-self/schedstat`, second field, in ns). A worker reads it when it
starts sending and when it stops: the difference is time its schedule went on without it,
which nothing in the worker can win back. The run notes it (`replay.run_end`) when it is a
noticeable share of the sending time, so that send lag caused by a shared machine is not
taken for the tool's or the target's.
"""

from __future__ import annotations

from typing import Any

SCHEDSTAT = "/proc/thread-self/schedstat"
NOTE_SHARE = 0.05  # a worker that waited this share of its sending time is noted...
NOTE_MIN_NS = 100_000_000  # ... if that was at least this long


def run_delay_ns() -> int | None:
    """The calling thread's run delay so far, in ns; None where the kernel does not say."""
    try:
        with open(SCHEDSTAT, "rb") as f:
            return int(f.read().split()[1])
    except (OSError, IndexError, ValueError):
        return None


class CoreWait:
    """The run delay and the monotonic time from `begin()` to `end()` (sending)."""

    def __init__(self) -> None:
        self._from: int | None = None
        self._began = 0
        self.waited_ns: int | None = None
        self.sending_ns = 0

    def begin(self, now_ns: int) -> None:
        self._from = run_delay_ns()
        self._began = now_ns

    def end(self, now_ns: int) -> None:
        if self._from is None or self.waited_ns is not None:
            return
        until = run_delay_ns()
        if until is not None:
            self.waited_ns = max(until - self._from, 0)
            self.sending_ns = max(now_ns - self._began, 0)

    def info(self) -> dict[str, Any]:
        """`core_wait_ns` and `sending_ns` for a worker's `done` info (nothing when unknown)."""
        if self.waited_ns is None:
            return {}
        return {"core_wait_ns": self.waited_ns, "sending_ns": self.sending_ns}


def core_wait_note(index: int, info: Any) -> str | None:
    """The note for worker `index`'s `done` info when it waited for its core for long."""
    waited, sending = int(info.get("core_wait_ns", 0)), int(info.get("sending_ns", 0))
    if sending <= 0 or waited < NOTE_MIN_NS or waited < sending * NOTE_SHARE:
        return None
    return (
        f"worker {index} waited {waited / 1e9:.2f} s for a core while sending "
        f"({waited / sending:.1%} of {sending / 1e9:.1f} s): other processes on this machine "
        "held the CPU, so part of the send lag and of any drops measure the machine, not "
        "the target"
    )
