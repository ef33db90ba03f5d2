"""The messages between a worker and the coordinator, written and read by both ends here.

Each message is a msgpack array whose first element names it. The coordinator sends a
worker its `WorkerConfig` (a map), then `Start` and maybe `Stop`; the worker answers with
`Loading` (while a long corpus is read), `Ready`, one `Delta` per interval (and `Probes`
with --visibility-probe), and `Done` or `Error`. A sender builds a message with its class
and `encode()`s it; a receiver passes the
raw array to `from_worker` or `to_worker` and gets the typed message back, or
`ProtocolError` for anything else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, NotRequired, TypedDict

LoadStage = Literal["read", "spool"]
LOAD_STAGES: tuple[LoadStage, ...] = ("read", "spool")  # in the order a worker goes through
ErrorKind = Literal["corpus", "target", "internal"]


class ProtocolError(ValueError):
    """A message that is not one this end of the protocol understands."""


class ReadyInfo(TypedDict, total=False):
    """What a loaded worker says about its shard."""

    pid: int
    records: int  # records in its shard
    cached: bool  # templates held in memory
    spooled: int  # templates spooled to disk
    spool_bytes: int
    spool_dir: str
    spool_error: str  # why the spool could not be written (absent when it could)
    sharding: str  # "chunk": this worker decoded only its chunks; "trace": every record
    spool_lead_ns: int  # built this long before ready, past the usual lead (replay.lead)
    spool_lead_short: int  # templates replay.lead wanted built first, left for behind the sends


class DoneInfo(TypedDict):
    """What a worker says when its run is over."""

    abandoned: int  # in flight at the end of the drain: cut off, not recorded
    serial: int  # requests sent
    intervals: int  # intervals sent
    unsent: int  # came due, never sent: counted as dropped
    unsent_counted: bool  # False: `unsent` is a lower bound (counting was cut short)
    probes_skipped: int  # visibility probes not started: too many already polling
    built_late: NotRequired[int]  # templates built as they came due: the spool fell behind
    core_wait_ns: NotRequired[int]  # runnable but off its core while sending (replay.core_wait)
    host_steal_ns: NotRequired[int]  # the host's steal while sending, a core's average (ditto)
    sending_ns: NotRequired[int]  # how long it was sending


# --- worker -> coordinator --------------------------------------------------------------


@dataclass(frozen=True)
class Loading:
    """Still loading: `read` of the corpus's `records` read so far, in `stage`."""

    worker: int
    read: int
    records: int
    stage: LoadStage = "read"

    def encode(self) -> list[Any]:
        return ["loading", self.worker, self.read, self.records, self.stage]


@dataclass(frozen=True)
class Ready:
    """Loaded, connections opened: waiting for `Start`."""

    worker: int
    info: ReadyInfo

    def encode(self) -> list[Any]:
        return ["ready", self.worker, dict(self.info)]


@dataclass(frozen=True)
class Delta:
    """Interval `interval`'s recorder deltas, one per fold (replay.recorder)."""

    worker: int
    interval: int
    folds: list[bytes]

    def encode(self) -> list[Any]:
        return ["delta", self.worker, self.interval, self.folds]


@dataclass(frozen=True)
class Probes:
    """Visibility probes that ended: (acknowledgment second, lag µs or -1 for a timeout)."""

    worker: int
    ended: list[tuple[int, int]]

    def encode(self) -> list[Any]:
        return ["probes", self.worker, [list(e) for e in self.ended]]


@dataclass(frozen=True)
class Done:
    """The run is over and its last interval sent."""

    worker: int
    info: DoneInfo

    def encode(self) -> list[Any]:
        return ["done", self.worker, dict(self.info)]


@dataclass(frozen=True)
class Error:
    """The worker failed: `kind` corpus or target (bad input), or internal (a bug)."""

    worker: int
    kind: ErrorKind
    text: str

    def encode(self) -> list[Any]:
        return ["error", self.worker, self.kind, self.text]


FromWorker = Loading | Ready | Delta | Probes | Done | Error


def from_worker(message: Any) -> FromWorker:
    """The typed message a worker sent; ProtocolError when it is none of them."""
    try:
        kind = message[0]
        if kind == "delta":
            return Delta(int(message[1]), int(message[2]), list(message[3]))
        if kind == "probes":
            return Probes(int(message[1]), [(int(a), int(b)) for a, b in message[2]])
        if kind == "loading":
            stage = message[4]
            if stage not in LOAD_STAGES:
                raise ProtocolError(f"unknown loading stage {stage!r}")
            return Loading(int(message[1]), int(message[2]), int(message[3]), stage)
        if kind == "ready":
            return Ready(int(message[1]), _ready_info(message[2]))
        if kind == "done":
            info = message[2]
            done = DoneInfo(
                abandoned=int(info["abandoned"]),
                serial=int(info["serial"]),
                intervals=int(info["intervals"]),
                unsent=int(info["unsent"]),
                probes_skipped=int(info.get("probes_skipped", 0)),
                unsent_counted=bool(info["unsent_counted"]),
            )
            for key in ("built_late", "core_wait_ns", "host_steal_ns", "sending_ns"):
                if key in info:
                    done[key] = int(info[key])
            return Done(int(message[1]), done)
        if kind == "error":
            what = message[2]
            if what not in ("corpus", "target", "internal"):
                raise ProtocolError(f"unknown error kind {what!r}")
            return Error(int(message[1]), what, str(message[3]))
    except (IndexError, KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, ProtocolError):
            raise
        raise ProtocolError(f"malformed worker message: {exc}") from None
    raise ProtocolError(f"unknown worker message {kind!r}")


def _ready_info(raw: dict[str, Any]) -> ReadyInfo:
    info = ReadyInfo(
        pid=int(raw["pid"]),
        records=int(raw["records"]),
        cached=bool(raw["cached"]),
        spooled=int(raw["spooled"]),
        spool_bytes=int(raw["spool_bytes"]),
        spool_dir=str(raw["spool_dir"]),
    )
    if "spool_error" in raw:
        info["spool_error"] = str(raw["spool_error"])
    if "sharding" in raw:
        info["sharding"] = str(raw["sharding"])
    if "spool_lead_ns" in raw:
        info["spool_lead_ns"] = int(raw["spool_lead_ns"])
    if "spool_lead_short" in raw:
        info["spool_lead_short"] = int(raw["spool_lead_short"])
    return info


# --- coordinator -> worker --------------------------------------------------------------


@dataclass(frozen=True)
class Start:
    """Start pacing at `mono_ns` (CLOCK_MONOTONIC, system-wide) which is `wall_ns` of the
    wall clock."""

    mono_ns: int
    wall_ns: int

    def encode(self) -> list[Any]:
        return ["start", self.mono_ns, self.wall_ns]


@dataclass(frozen=True)
class Stop:
    """Stop sending; finish what is in flight, flush, say `Done`."""

    def encode(self) -> list[Any]:
        return ["stop"]


def to_worker(message: Any) -> Start | Stop:
    """The typed command the coordinator sent after the config; ProtocolError otherwise."""
    try:
        kind = message[0]
        if kind == "start":
            return Start(int(message[1]), int(message[2]))
        if kind == "stop":
            return Stop()
    except (IndexError, KeyError, TypeError, ValueError) as exc:
        raise ProtocolError(f"malformed coordinator message: {exc}") from None
    raise ProtocolError(f"unknown coordinator message {kind!r}")
