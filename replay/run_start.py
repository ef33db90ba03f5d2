"""The start of a run: the instant every worker starts at, and the live-metrics server.

The start is one instant on CLOCK_MONOTONIC (with its wall-clock twin): a short margin from
now, or --start-at when segments on several machines must start together. A run that cannot
start raises RunFailed with its exit status.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, TextIO

from capture.errors import EXIT_BAD_INPUT
from capture.units import NS
from replay.plan import RunPlan

if TYPE_CHECKING:
    from replay.live import LiveMetrics, MetricsServer

START_MARGIN_NS = 250_000_000
START_AT_MARGIN_NS = 50_000_000  # --start-at: the least time the workers get to hear it


class RunFailed(Exception):
    """The run could not start (exit 2) or a worker failed before the start."""

    def __init__(self, message: str, code: int = EXIT_BAD_INPUT) -> None:
        super().__init__(message)
        self.code = code


def start_instant(plan: RunPlan, stderr: TextIO) -> tuple[int, int, int]:
    """(monotonic, wall, late) ns of the start: START_MARGIN_NS from now, or --start-at when
    given (a segment ready within --max-start-skew after it starts `late` ns late; later, it
    refuses rather than skew the run). Wall and monotonic clocks are read together."""
    mono, wall = time.monotonic_ns(), time.time_ns()
    if plan.start_at_ns is None:
        return mono + START_MARGIN_NS, wall + START_MARGIN_NS, 0
    earliest = wall + START_AT_MARGIN_NS
    late = earliest - plan.start_at_ns
    if late > plan.max_start_skew_ns:
        raise RunFailed(
            f"ready at {iso(wall)}, {late / NS:.3f}s after --start-at {iso(plan.start_at_ns)}"
            f" (more than --max-start-skew {plan.max_start_skew_ns / NS:g}s): not starting "
            "a skewed segment; give a later --start-at",
            EXIT_BAD_INPUT,
        )
    start_wall = max(plan.start_at_ns, earliest)
    if plan.progress and start_wall - wall > NS:
        stderr.write(
            f"replay: ready; starting at {iso(start_wall)} "
            f"(--start-at, in {(start_wall - wall) / NS:,.1f}s)\n"
        )
        stderr.flush()
    return mono + (start_wall - wall), start_wall, max(late, 0)


def serve_metrics(plan: RunPlan, stderr: TextIO) -> tuple[LiveMetrics, MetricsServer] | None:
    """--metrics-port: live metrics served from before the workers start (RunFailed if the
    address cannot be bound); None without it."""
    if plan.metrics_listen is None:
        return None
    from replay.live import LiveMetrics, MetricsServer

    live = LiveMetrics(str(plan.segment), vus=plan.vus)
    host, port = plan.metrics_listen
    try:
        server = MetricsServer(live, host, port)
    except OSError as exc:
        raise RunFailed(f"--metrics-port {host}:{port}: {exc.strerror or exc}") from None
    if plan.progress:
        stderr.write(f"replay: live metrics at {server.url}\n")
        stderr.flush()
    return live, server


def iso(wall_ns: int) -> str:
    moment = datetime.fromtimestamp(wall_ns / NS, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def package_version() -> str:
    try:
        return version("agenttrace-loadtools")
    except PackageNotFoundError:
        return "unknown"
