"""How long a process could not run while it sent: the kernel's run delay, the host's steal.

Linux counts, for each thread, the time it spent runnable on a run queue while another task
held its core (`/proc/thread-self/schedstat`, second field, in ns). On a virtual machine the
host may also take a core away from the whole machine: the kernel counts that per core as
steal time (`/proc/stat`, the eighth number of each `cpu` line, in clock ticks), and a
thread's run delay does not see it. A worker reads both when it starts sending and when it
stops: the differences are time its schedule went on without it, which nothing in the
worker can win back. The run notes them (`replay.run_end`) when they are a noticeable share
of the sending time, so that send lag caused by a shared machine is not taken for the
tool's or the target's.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

SCHEDSTAT = "/proc/thread-self/schedstat"
STAT = "/proc/stat"
NOTE_SHARE = 0.05  # a worker that waited this share of its sending time is noted...
NOTE_MIN_NS = 100_000_000  # ... if that was at least this long
STEAL_NOTE_SHARE = 0.005  # the host's steal is noted from this share of the sending time...
STEAL_NOTE_MIN_NS = 20_000_000  # ... if it was at least this long (a core's average)
_TICKS_PER_S = os.sysconf("SC_CLK_TCK")  # /proc/stat's unit


def run_delay_ns() -> int | None:
    """The calling thread's run delay so far, in ns; None where the kernel does not say."""
    try:
        with open(SCHEDSTAT, "rb") as f:
            return int(f.read().split()[1])
    except (OSError, IndexError, ValueError):
        return None


def steal_ticks(stat: str, line: str = "cpu") -> int | None:
    """The steal time on one line of /proc/stat's text `stat` (`cpu`: the machine's, `cpuN`:
    one core's), in clock ticks; None when it does not say."""
    for fields in map(str.split, stat.splitlines()):
        if fields and fields[0] == line:
            return int(fields[8]) if len(fields) > 8 and fields[8].isdigit() else None
    return None


def steal_of(stat: str) -> int | None:
    """The steal time in /proc/stat's text `stat`, as ns of one core: the machine's total
    (its `cpu` line) over its cores (its `cpuN` lines); None when the text does not say."""
    total = steal_ticks(stat)
    names = (line.split(maxsplit=1)[0] for line in stat.splitlines() if line.strip())
    cores = sum(1 for name in names if name.startswith("cpu") and name[3:].isdigit())
    if total is None or not cores:
        return None
    return total * 1_000_000_000 // (_TICKS_PER_S * cores)


def host_steal_ns() -> int | None:
    """The host's steal time so far, in ns of one core (the machine's cores on average);
    None where the kernel does not say."""
    try:
        with open(STAT, encoding="ascii") as f:
            return steal_of(f.read())
    except (OSError, ValueError):
        return None


class CoreWait:
    """The run delay, the host's steal and the monotonic time from `begin()` to `end()`
    (sending)."""

    def __init__(self) -> None:
        self._from: int | None = None
        self._steal_from: int | None = None
        self._began = 0
        self.waited_ns: int | None = None
        self.stolen_ns: int | None = None
        self.sending_ns = 0
        self._ended = False

    def begin(self, now_ns: int) -> None:
        self._from = run_delay_ns()
        self._steal_from = host_steal_ns()
        self._began = now_ns

    def end(self, now_ns: int) -> None:
        if self._ended:
            return
        self._ended = True
        self.sending_ns = max(now_ns - self._began, 0)
        until, stolen = run_delay_ns(), host_steal_ns()
        if self._from is not None and until is not None:
            self.waited_ns = max(until - self._from, 0)
        if self._steal_from is not None and stolen is not None:
            self.stolen_ns = max(stolen - self._steal_from, 0)

    def info(self) -> dict[str, Any]:
        """`core_wait_ns`, `host_steal_ns` and `sending_ns` for a worker's `done` info (each
        wait only when known; nothing when neither is)."""
        out: dict[str, Any] = {}
        if self.waited_ns is not None:
            out["core_wait_ns"] = self.waited_ns
        if self.stolen_ns is not None:
            out["host_steal_ns"] = self.stolen_ns
        if out:
            out["sending_ns"] = self.sending_ns
        return out


def core_wait_note(index: int, info: Any) -> str | None:
    """The note for worker `index`'s `done` info when it waited for its core for long."""
    waited, sending = int(info.get("core_wait_ns", 0)), int(info.get("sending_ns", 0))
    if not _noticeable(waited, sending, NOTE_SHARE, NOTE_MIN_NS):
        return None
    return (
        f"worker {index} waited {waited / 1e9:.2f} s for a core while sending "
        f"({waited / sending:.1%} of {sending / 1e9:.1f} s): other processes on this machine "
        "held the CPU, so part of the send lag and of any drops measure the machine, not "
        "the target"
    )


def steal_note(infos: Sequence[Any]) -> str | None:
    """The note for the workers' `done` infos when the host took their cores for long: the
    most any worker saw (they share the machine and nearly the same seconds)."""
    seen = [
        (int(info["host_steal_ns"]), int(info.get("sending_ns", 0)))
        for info in infos
        if "host_steal_ns" in info
    ]
    if not seen:
        return None
    stolen, sending = max(seen)
    if not _noticeable(stolen, sending, STEAL_NOTE_SHARE, STEAL_NOTE_MIN_NS):
        return None
    return (
        f"the host took {stolen / 1e9:.2f} s of each core on average while sending "
        f"({stolen / sending:.1%} of {sending / 1e9:.1f} s, steal time: this virtual "
        "machine's cores ran other guests): the workers, and a target on this machine, stood "
        "still about as long, so part of the send lag and of any drops measure the machine, "
        "not the target"
    )


def _noticeable(lost_ns: int, sending_ns: int, share: float, least_ns: int) -> bool:
    """Whether `lost_ns` of `sending_ns` is worth a note: that share of it, and that long."""
    return sending_ns > 0 and lost_ns >= least_ns and lost_ns >= sending_ns * share
