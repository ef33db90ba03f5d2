"""Ingest-to-visible probes: how long after an acknowledged ingestion a trace can be read.

``replay run --visibility-probe FRACTION`` picks that fraction of acknowledged trace
ingestions (single and batch; exactly every 1/FRACTION-th, by a running credit, so the
choice is deterministic and spread evenly) and polls ``GET /api/public/traces/{id}`` with
the run's key until it answers 200 or ``--visibility-timeout`` passes. The lag is the time
from the acknowledgment (the POST's answer) to the send of the first poll answered 200.

The poll schedule keeps that figure honest: polls go at 0, 50, 100, ... ms after the
acknowledgment, and once 500 ms have passed, each next poll waits a tenth of the time
waited so far. A trace that became visible at v is seen by a poll sent at most
max(50 ms, v/10) later, so the figure overstates the lag by at most 10 % + 50 ms.

Probes run on their own connections (never the load's) from greenlets of the worker, at most
MAX_PENDING at once per worker; a probe that would exceed it is not started, and counted.
Each ended probe is (acknowledgment second since the start, lag in µs or -1 for a timeout).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import gevent

NS = 1_000_000_000
FIRST_STEP_NS = 50_000_000
PROPORTIONAL_AFTER_NS = 500_000_000
MAX_PENDING = 512
TIMEOUT = -1
PROBED = ("ingest", "batch")  # the endpoints whose acknowledged traces are probed


def next_poll_ns(waited_ns: int) -> int:
    """When the next poll goes, `waited_ns` after the acknowledgment: the poll schedule."""
    if waited_ns < PROPORTIONAL_AFTER_NS:
        return (waited_ns // FIRST_STEP_NS + 1) * FIRST_STEP_NS
    return waited_ns + max(FIRST_STEP_NS, waited_ns // 10)


class Prober:
    """One worker's visibility probes. `fetch(path) -> status` does one GET (it may block
    the calling greenlet); `clock()` is CLOCK_MONOTONIC in ns."""

    def __init__(
        self,
        fetch: Callable[[str], int],
        fraction: float,
        timeout_ns: int,
        base_path: str = "",
        clock: Callable[[], int] = time.monotonic_ns,
    ) -> None:
        self.fetch = fetch
        self.fraction = fraction
        self.timeout_ns = timeout_ns
        self.base_path = base_path
        self.clock = clock
        self.start_ns = 0
        self.pending = 0
        self.skipped = 0  # picked, but MAX_PENDING were already polling
        self.started = 0
        self._credit = 0.0
        self._ended: list[tuple[int, int]] = []
        self._greenlets: set[Any] = set()

    def consider(self, trace_id: bytes, ack_ns: int) -> None:
        """An ingestion of `trace_id` was acknowledged at `ack_ns`: probe it if its turn."""
        self._credit += self.fraction
        if self._credit < 1.0:
            return
        self._credit -= 1.0
        if self.pending >= MAX_PENDING:
            self.skipped += 1
            return
        self.pending += 1
        self.started += 1
        greenlet = gevent.spawn(self._probe, trace_id.decode("ascii", "replace"), ack_ns)
        self._greenlets.add(greenlet)
        greenlet.link(self._greenlets.discard)

    def _probe(self, trace_id: str, ack_ns: int) -> None:
        path = f"{self.base_path}/api/public/traces/{trace_id}"
        second = max(ack_ns - self.start_ns, 0) // NS
        try:
            waited = 0
            while waited <= self.timeout_ns:
                at = ack_ns + waited
                delay = at - self.clock()
                if delay > 0:
                    gevent.sleep(delay / NS)
                sent = self.clock()
                try:
                    status = self.fetch(path)
                except Exception:  # a failed poll is one more reason to poll again
                    status = 0
                if status == 200:
                    self._ended.append((second, max(sent - ack_ns, 0) // 1000))
                    return
                waited = next_poll_ns(max(self.clock() - ack_ns, waited))
            self._ended.append((second, TIMEOUT))
        finally:
            self.pending -= 1

    def take(self) -> list[tuple[int, int]]:
        """The probes that ended since the last take."""
        ended, self._ended = self._ended, []
        return ended

    def stop(self, grace_s: float) -> None:
        """Give running probes `grace_s`, then end them (those count as nothing)."""
        if self._greenlets:
            gevent.joinall(list(self._greenlets), timeout=grace_s)
            gevent.killall(list(self._greenlets), block=True, timeout=1)


def http_fetcher(scheme: str, host: str, port: int, api_key: str | None) -> Callable[[str], int]:
    """A GET over geventhttpclient (own connections, keep-alive), returning the status."""
    from geventhttpclient import HTTPClient

    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    client = HTTPClient(
        host,
        port,
        ssl=scheme == "https",
        concurrency=32,
        connection_timeout=5,
        network_timeout=5,
        headers=headers,
    )

    def fetch(path: str) -> int:
        response = client.get(path)
        try:
            response.read()
            return int(response.status_code)
        finally:
            response.release()

    return fetch
