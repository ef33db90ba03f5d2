"""One API process ("pod"): a gevent server on the shared port, wired to the app.

Each pod binds its own listening socket to the sandbox's port with ``SO_REUSEPORT`` (the
kernel spreads connections across pods), connects to the ingestion worker's queue, and
serves the :class:`~sandbox.app.App` through :mod:`sandbox.wire`. Store reads run on a
small thread pool so a slow search never stalls the event loop. Fault injection happens
here, in front of the app, as a failing proxy or network would.

On SIGTERM (or when its supervisor disappears) a pod stops accepting, closes idle
keep-alive connections, lets in-flight requests finish (their traces are enqueued before
they are answered), closes its queue connection and exits 0. gevent is used without
monkey-patching: everything that must cooperate uses gevent's own sockets and sleeps.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import signal
import socket
import sqlite3
import time
from collections.abc import Callable
from typing import Any

import gevent
import gevent.event
import gevent.pool
import gevent.threadpool
from gevent.server import StreamServer

from sandbox import store
from sandbox.app import API, App, Keys, Services
from sandbox.capacity import SharedSchedule
from sandbox.config import SandboxConfig
from sandbox.faults import FaultInjector
from sandbox.metrics import Metrics, render
from sandbox.pipeline import Producer
from sandbox.ratelimit import SharedRateLimiter
from sandbox.wire import Connections, Limits, Request, Response, bound_handler

log = logging.getLogger("sandbox.pod")

DRAIN_TIMEOUT = 15.0
READ_THREADS = 4


class StoreReader:
    """Runs store queries on a thread pool, one SQLite connection per concurrent query."""

    def __init__(self, path: str, threads: int = READ_THREADS) -> None:
        self._path = path
        self._pool = gevent.threadpool.ThreadPool(threads)
        self._conns: queue.SimpleQueue[sqlite3.Connection] = queue.SimpleQueue()

    def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        return self._pool.apply(self._call, (fn, args))

    def _call(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> Any:
        try:
            conn = self._conns.get_nowait()
        except queue.Empty:
            conn = store.connect(self._path, readonly=True)
        try:
            return fn(conn, *args)
        finally:
            self._conns.put(conn)

    def close(self) -> None:
        self._pool.kill()


class PodEndpoint:
    """The app behind fault injection, with metrics recorded per answer."""

    def __init__(self, app: App, faults: FaultInjector | None, metrics: Metrics) -> None:
        self._app = app
        self._faults = faults
        self._metrics = metrics

    def handle(self, request: Request) -> Response:
        route, param = self._app.match(request.path)
        if self._faults is not None and route is not None and route.kind == API:
            fault = self._faults.decide()
            if fault is not None:
                self._metrics.faults.labels(fault.kind).inc()
                if fault.kind in ("reset", "stall"):
                    return Response(0, action=fault.kind, route=route.name, tag=fault.kind)
                if fault.kind == "error":
                    body = json.dumps({"error": "injected", "message": "injected fault"})
                    return Response(fault.status, body.encode(), route=route.name, tag="error")
                gevent.sleep(fault.delay)
        return self._app.handle(request, route, param)

    def finished(self, request: Request, response: Response, seconds: float) -> None:
        if response.action:
            return  # no HTTP answer was given; counted in sandbox_faults_injected_total
        self._metrics.observe(
            request.method, response.route or "unmatched", response.status, seconds
        )
        if response.tag == "shed":
            self._metrics.shed.inc()
        elif response.tag == "rate_limited":
            self._metrics.rate_limited.inc()


def reuseport_listener(host: str, port: int) -> socket.socket:
    """A listening socket sharing ``port`` with the sandbox's other pods."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(1024)
    sock.setblocking(False)
    return sock


def run_pod(config: SandboxConfig, index: int, ready_fd: int, parent: int) -> int:
    """Serve until SIGTERM or the supervisor's death; returns the exit status."""
    metrics = Metrics()
    producer = Producer(config.queue_socket)
    producer.connect()
    reader = StoreReader(config.db_path)
    schedule = SharedSchedule(config.capacity_path)
    limiter = None
    if config.rate_limit is not None:
        limiter = SharedRateLimiter(
            config.ratelimit_path, len(config.api_keys), config.rate_limit, config.burst
        )
    faults = FaultInjector(config.faults, config.seed, index) if config.faults else None
    stopping = gevent.event.Event()
    services = Services(
        enqueue=producer.enqueue,
        flush=producer.flush,
        run=reader.run,
        metrics_text=lambda: render(config.metrics_dir),
        ready=lambda: producer.connected and producer.writable and not stopping.is_set(),
        accepting=lambda: producer.writable,
        schedule=schedule,
        limiter=limiter,
    )
    app = App(Keys(config.api_keys, config.admin_token), services)
    connections = Connections()
    pool = gevent.pool.Pool()
    handler = bound_handler(
        PodEndpoint(app, faults, metrics),
        Limits(
            max_body=config.max_body,
            idle_timeout=config.idle_timeout,
            request_timeout=config.request_timeout,
            max_connections=config.max_connections,
        ),
        connections,
        f"X-Sandbox-Pod: {index}\r\n".encode(),
    )
    server = StreamServer(reuseport_listener(config.host, config.port), handler, spawn=pool)
    server.start()
    gevent.signal_handler(signal.SIGTERM, stopping.set)
    gevent.spawn(_watch_parent, parent, stopping)
    os.write(ready_fd, b"ready\n")
    os.close(ready_fd)
    stopping.wait()
    log.info("pod %d draining", index)
    server.close()
    connections.close_idle()
    pool.join(timeout=DRAIN_TIMEOUT)
    if len(pool):
        log.warning("pod %d: %d connections still busy after %ss", index, len(pool), DRAIN_TIMEOUT)
        pool.kill(timeout=1)
    producer.close()
    reader.close()
    return 0


def _watch_parent(parent: int, stopping: gevent.event.Event) -> None:
    while not stopping.is_set():
        if os.getppid() != parent:
            log.warning("supervisor %d is gone; shutting down", parent)
            stopping.set()
            return
        gevent.sleep(0.5)


def wall_ms() -> int:
    return int(time.time() * 1000)
