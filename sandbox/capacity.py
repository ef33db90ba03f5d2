"""Emulated capacity: N virtual pods whose total throughput follows the USL.

The Universal Scalability Law gives the throughput of N pods, each serving ``L`` requests
per second alone, slowed by contention ``sigma`` and coherency ``kappa``::

    X(N) = L*N / (1 + sigma*(N-1) + kappa*N*(N-1))

The sandbox emulates it as N virtual servers fed by one FIFO queue (an M/G/N queue when
arrivals are random). Each virtual server takes a mean service time ``S(N) = N / X(N)`` per
request, so that N busy servers complete exactly X(N) requests per second, and a request's
latency is its wait for a server plus its service time: latency rises as the offered load
nears X(N). A request that would wait longer than ``queue_depth * N / X(N)`` (a queue of
``queue_depth`` requests per pod) is shed with 503 at once.

The schedule is kept in *virtual time*. Admitting a request is pure arithmetic on the
servers' ``free_at`` times (``start = max(now, earliest free_at)``, ``finish = start +
service``): it never reads the time a previous request's response actually left. The API
process then sleeps until ``finish``; a sleep that overshoots (a busy event loop, a coarse
timer) delays that one response but does not move any server's ``free_at``, so the next
request's slot is as early as the formula allows. Overshoot adds latency, never costs
capacity. The schedule lives in shared memory, so all API processes draw on one set of
virtual servers.

Service times vary (coefficient of variation ``service_cv``, lognormal) so that queues
form before saturation, as in real servers. They are drawn from a golden-ratio
low-discrepancy sequence rather than at random: their running mean converges to ``S(N)``
almost as 1/n instead of 1/sqrt(n), so even a few seconds of saturation measure X(N)
within a fraction of a percent.

Every function here is a pure function of its arguments; only :class:`SharedSchedule`
touches shared memory, and it never reads a clock: callers pass ``now``.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from statistics import NormalDist

from sandbox.shm import SharedBlock

MAX_PODS = 256
MAX_POD_RATE = 1e9
"""Requests per second one emulated pod may serve: beyond it X(N) is no longer a finite float
for every N (and no real pod comes near)."""
MAX_QUEUE_DEPTH = 1_000_000
GOLDEN = (math.sqrt(5) - 1) / 2  # 0.618..., the golden-ratio conjugate


@dataclass(frozen=True)
class Emulation:
    """The emulated deployment: N pods of rate L with USL contention and coherency."""

    pods: int = 1
    pod_rate: float = 150.0
    sigma: float = 0.05
    kappa: float = 0.001
    service_cv: float = 0.5
    queue_depth: int = 128

    def __post_init__(self) -> None:
        if not 1 <= self.pods <= MAX_PODS:
            raise ValueError(f"pods must be from 1 to {MAX_PODS}, got {self.pods}")
        if not 0 < self.pod_rate <= MAX_POD_RATE:
            raise ValueError(f"pod rate must be above 0 and at most {MAX_POD_RATE:g}/s")
        if not 0 <= self.sigma <= 1:
            raise ValueError(f"sigma must be from 0 to 1, got {self.sigma}")
        if not 0 <= self.kappa <= 1:
            raise ValueError(f"kappa must be from 0 to 1, got {self.kappa}")
        if not 0 <= self.service_cv <= 4:
            raise ValueError(f"service cv must be from 0 to 4, got {self.service_cv}")
        if not 0 <= self.queue_depth <= MAX_QUEUE_DEPTH:
            raise ValueError(f"queue depth must be from 0 to {MAX_QUEUE_DEPTH}")

    @property
    def throughput(self) -> float:
        """X(N), requests per second at saturation."""
        return usl_throughput(self.pods, self.pod_rate, self.sigma, self.kappa)

    @property
    def service_time(self) -> float:
        """S(N) = N / X(N): mean seconds one virtual pod spends on one request."""
        return self.pods / self.throughput

    @property
    def max_wait(self) -> float:
        """The longest queueing wait admitted before a request is shed."""
        return self.queue_depth * self.pods / self.throughput

    def as_dict(self) -> dict[str, float | int]:
        return {
            "pods": self.pods,
            "podRate": self.pod_rate,
            "sigma": self.sigma,
            "kappa": self.kappa,
            "serviceCv": self.service_cv,
            "queueDepth": self.queue_depth,
            "capacity": round(self.throughput, 3),
        }


def usl_throughput(n: float, pod_rate: float, sigma: float, kappa: float) -> float:
    """X(N) = L*N / (1 + sigma*(N-1) + kappa*N*(N-1))."""
    return pod_rate * n / (1 + sigma * (n - 1) + kappa * n * (n - 1))


@lru_cache(maxsize=16)
def _lognormal_shape(cv: float) -> tuple[float, float]:
    """(mu, s) of a lognormal with mean 1 and coefficient of variation ``cv``."""
    s2 = math.log1p(cv * cv)
    return -s2 / 2, math.sqrt(s2)


_NORMAL = NormalDist()


def service_multiplier(seq: int, cv: float) -> float:
    """The ``seq``-th service-time multiplier: mean 1, CV ``cv``, low-discrepancy order.

    u_seq = frac(0.5 + seq * 0.618...) visits (0, 1) evenly; the lognormal quantile of
    u_seq is the multiplier. cv 0 gives 1 (deterministic service).
    """
    if cv <= 0:
        return 1.0
    u = (0.5 + seq * GOLDEN) % 1.0
    u = min(max(u, 1e-9), 1 - 1e-9)
    mu, s = _lognormal_shape(cv)
    return math.exp(mu + s * _NORMAL.inv_cdf(u))


def admit(
    free_at: list[float], now: float, service: float, max_wait: float
) -> tuple[int, float, float] | None:
    """Queue one request arriving at ``now``: (server, start, finish), or None to shed.

    FIFO onto the server that frees first: ``start = max(now, min(free_at))``. Pure: the
    caller stores ``finish`` into ``free_at[server]``.
    """
    server = min(range(len(free_at)), key=free_at.__getitem__)
    start = max(now, free_at[server])
    if start - now > max_wait:
        return None
    return server, start, start + service


def resize(free_at: list[float], pods: int, now: float) -> list[float]:
    """Servers after a change of N: the ``pods`` earliest-free are kept, new ones free now.

    Work already scheduled on a removed server still completes (its requests hold their
    finish times), as a pod being scaled down drains its in-flight requests.
    """
    kept = sorted(max(t, now) for t in free_at)[:pods]
    return kept + [now] * (pods - len(kept))


# ------------------------------------------------------------------ shared schedule

# enabled, pods, seq, pod_rate, sigma, kappa, service_cv, queue_depth, admitted, shed
_HEADER = struct.Struct("<IIQddddQQQ")
_SLOTS = struct.Struct(f"<{MAX_PODS}d")
SIZE = _HEADER.size + _SLOTS.size


@dataclass(frozen=True)
class Ticket:
    """An admitted request: respond no earlier than ``finish`` (monotonic seconds)."""

    start: float
    finish: float


class SharedSchedule:
    """The virtual servers of one sandbox, shared by its API processes."""

    def __init__(self, path: str | Path, *, create: bool = False) -> None:
        self._block = SharedBlock(path, SIZE, create=create)

    @classmethod
    def create(cls, path: str | Path, emulation: Emulation, enabled: bool) -> SharedSchedule:
        schedule = cls(path, create=True)
        schedule.configure(emulation, enabled=enabled, now=0.0)
        return schedule

    def enabled(self) -> bool:
        """A lock-free peek: is emulation on? (A stale answer only delays one request.)"""
        return bool(struct.unpack_from("<I", self._block.buf, 0)[0])

    def current(self) -> tuple[Emulation, bool]:
        with self._block.locked() as buf:
            header = _HEADER.unpack_from(buf, 0)
        return _emulation(header), bool(header[0])

    def configure(self, emulation: Emulation, *, enabled: bool, now: float) -> None:
        """Set N and the model's parameters; running requests keep their slots."""
        with self._block.locked() as buf:
            header = list(_HEADER.unpack_from(buf, 0))
            old_pods = header[1] or 1
            free_at = list(_SLOTS.unpack_from(buf, _HEADER.size))[:old_pods]
            slots = resize(free_at, emulation.pods, now)
            header[0] = int(enabled)
            header[1] = emulation.pods
            header[3:8] = [
                emulation.pod_rate,
                emulation.sigma,
                emulation.kappa,
                emulation.service_cv,
                emulation.queue_depth,
            ]
            _HEADER.pack_into(buf, 0, *header)
            struct.pack_into(f"<{len(slots)}d", buf, _HEADER.size, *slots)

    def admit(self, now: float) -> Ticket | None:
        """Schedule one request arriving at ``now``; None means shed it (503)."""
        with self._block.locked() as buf:
            header = list(_HEADER.unpack_from(buf, 0))
            pods, seq = header[1], header[2]
            emulation = _emulation(header)
            free_at = list(struct.unpack_from(f"<{pods}d", buf, _HEADER.size))
            service = emulation.service_time * service_multiplier(seq, emulation.service_cv)
            slot = admit(free_at, now, service, emulation.max_wait)
            if slot is None:
                header[9] += 1
                _HEADER.pack_into(buf, 0, *header)
                return None
            server, start, finish = slot
            header[2] = seq + 1
            header[8] += 1
            _HEADER.pack_into(buf, 0, *header)
            struct.pack_into("<d", buf, _HEADER.size + 8 * server, finish)
        return Ticket(start, finish)

    def counts(self) -> tuple[int, int]:
        """(admitted, shed) since start."""
        header = _HEADER.unpack_from(self._block.buf, 0)
        return header[8], header[9]

    def close(self) -> None:
        self._block.close()


def _emulation(header: tuple[float | int, ...] | list[float | int]) -> Emulation:
    return Emulation(
        pods=int(header[1]) or 1,
        pod_rate=float(header[3]),
        sigma=float(header[4]),
        kappa=float(header[5]),
        service_cv=float(header[6]),
        queue_depth=int(header[7]),
    )
