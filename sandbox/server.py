"""The supervisor: one ingestion worker and N API pods on one port, started and stopped.

Start-up: create the runtime directory, reserve the port (a bound, non-listening
``SO_REUSEPORT`` socket, which also resolves port 0 to a free port), write the config,
start the worker and wait for it, start the pods and wait for each, then announce: a banner
on stdout and, for the library, one JSON line on ``--ready-fd``. Readiness is reported by
each child over a pipe; nothing sleeps and hopes.

While running, a pod or worker that dies unexpectedly is started again (at most
``MAX_RESTARTS`` times a minute). On SIGINT, SIGTERM or SIGHUP: SIGTERM to every pod, wait
for them (their in-flight requests finish and their queue connections close), then SIGTERM
to the worker, which writes everything it holds before exiting. Only after that does the
supervisor exit, removing the runtime directory (and the database, if it was temporary).
Children run in their own process group, so a terminal's Ctrl-C reaches the supervisor
alone and the shutdown happens in this order.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO

from sandbox.capacity import SharedSchedule
from sandbox.config import SandboxConfig
from sandbox.ratelimit import SharedRateLimiter

log = logging.getLogger("sandbox.server")

START_TIMEOUT = 60.0
POD_STOP_TIMEOUT = 30.0
WORKER_STOP_TIMEOUT = 300.0
MAX_RESTARTS = 5
_SUN_PATH_MAX = 108
_SIGNALS = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGCHLD}


class StartError(RuntimeError):
    """The sandbox could not start (the message says why, in one line).

    ``status`` is 2 when the user's input is at fault (a port in use), else 1.
    """

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class _Child:
    role: str
    index: int
    proc: subprocess.Popen[bytes]


class Supervisor:
    def __init__(
        self,
        config: SandboxConfig,
        *,
        ready_fd: int | None = None,
        out: IO[str] | None = None,
        given: tuple[set[str], bool] = (set(), False),
    ) -> None:
        self._requested = config
        self._ready_fd = ready_fd
        self._given = given
        self._out = out if out is not None else sys.stdout
        self._children: dict[int, _Child] = {}
        self._restarts: list[float] = []
        self._reservation: socket.socket | None = None
        self.config = config

    def run(self) -> int:
        """Start, serve until a signal, stop in order; returns the exit status."""
        signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
        runtime = _runtime_dir()
        try:
            self._start(runtime)
            self._announce()
            status = self._serve()
        finally:
            self._stop()
            if self._reservation is not None:
                self._reservation.close()
            shutil.rmtree(runtime, ignore_errors=True)
        return status

    # ------------------------------------------------------------ start

    def _start(self, runtime: str) -> None:
        config = replace(self._requested.completed(), runtime_dir=runtime)
        self._reservation = _reserve(config.host, config.port)
        config = replace(config, port=self._reservation.getsockname()[1])
        if config.db is not None:
            db = Path(config.db).expanduser().resolve()
            if not db.parent.is_dir():
                raise StartError(f"--db {config.db}: directory {db.parent} does not exist", 2)
            config = replace(config, db=str(db))
        Path(config.metrics_dir).mkdir()
        Path(config.config_path).write_text(config.to_json())
        SharedSchedule.create(config.capacity_path, config.emulation, config.emulate).close()
        if config.rate_limit is not None:
            SharedRateLimiter(
                config.ratelimit_path,
                len(config.api_keys),
                config.rate_limit,
                config.burst,
                create=True,
            ).close()
        self.config = config
        self._spawn_and_wait([("worker", 0)])
        self._spawn_and_wait([("pod", i) for i in range(config.pods)])

    def _spawn_and_wait(self, roles: list[tuple[str, int]]) -> None:
        pending: dict[int, _Child] = {}
        for role, index in roles:
            read_fd, child = self._spawn(role, index)
            pending[read_fd] = child
        deadline = time.monotonic() + START_TIMEOUT
        while pending:
            left = deadline - time.monotonic()
            if left <= 0:
                raise StartError(f"{len(pending)} sandbox processes not ready in {START_TIMEOUT}s")
            readable, _, _ = select.select(list(pending), [], [], min(left, 1.0))
            for fd in readable:
                data = os.read(fd, 64)
                os.close(fd)
                child = pending.pop(fd)
                if not data:
                    code = child.proc.wait()
                    raise StartError(
                        f"sandbox {child.role} {child.index} exited with status {code} "
                        "before it was ready (see the log above)"
                    )

    def _spawn(self, role: str, index: int) -> tuple[int, _Child]:
        read_fd, write_fd = os.pipe()
        env = dict(os.environ, PROMETHEUS_MULTIPROC_DIR=self.config.metrics_dir)
        env.pop("prometheus_multiproc_dir", None)
        argv = [
            sys.executable,
            "-m",
            "sandbox.child",
            role,
            self.config.config_path,
            str(index),
            str(write_fd),
            str(os.getpid()),
        ]
        proc = subprocess.Popen(
            argv, pass_fds=(write_fd,), env=env, stdin=subprocess.DEVNULL, process_group=0
        )
        os.close(write_fd)
        child = _Child(role, index, proc)
        self._children[proc.pid] = child
        return read_fd, child

    def _announce(self) -> None:
        config = self.config
        url = f"http://{_url_host(config.host)}:{config.port}"
        lines = [
            f"AgentTrace sandbox on {url}  ({config.pods} API pod{'s' * (config.pods > 1)}"
            f" + 1 ingestion worker, supervisor pid {os.getpid()})",
            f"  database     {config.db_path}{'' if config.db else '  (temporary)'}",
        ]
        # A secret is shown only when it was generated for a person at a terminal: given
        # ones are known to whoever gave them, and a library caller (--ready-fd) reads them
        # from the pipe, while this banner may end up in a log file.
        library = self._ready_fd is not None
        given_keys, token_given = self._given
        for key, project in config.api_keys.items():
            shown = "(not shown)" if library else "(given)" if key in given_keys else key
            lines.append(f"  API key      {shown}  (project {project})")
        token_shown = "(not shown)" if library else "(given)" if token_given else config.admin_token
        lines.append(f"  admin token  {token_shown}")
        if config.emulate:
            e = config.emulation
            lines.append(
                f"  emulating    {e.pods} pods x {e.pod_rate:g}/s, sigma {e.sigma:g}, "
                f"kappa {e.kappa:g}: capacity {e.throughput:.1f} requests/s"
            )
        if config.faults:
            lines.append(f"  faults       {config.faults.describe()}")
        key_shown = "$API_KEY" if library or config.api_key in given_keys else config.api_key
        lines.append(f"  try: curl -H 'Authorization: Bearer {key_shown}' {url}/api/public/traces")
        lines.append("  Ctrl-C or SIGTERM stops it (acknowledged traces are written first)")
        print("\n".join(lines), file=self._out, flush=True)
        if self._ready_fd is not None:
            ready = {
                "url": url,
                "host": config.host,
                "port": config.port,
                "pid": os.getpid(),
                "api_keys": config.api_keys,
                "api_key": config.api_key,
                "project_id": config.api_keys[config.api_key],
                "admin_token": config.admin_token,
                "db": config.db_path,
                "pods": config.pods,
            }
            os.write(self._ready_fd, (json.dumps(ready) + "\n").encode())
            os.close(self._ready_fd)
            self._ready_fd = None

    # ------------------------------------------------------------ run

    def _serve(self) -> int:
        while True:
            info = signal.sigtimedwait(_SIGNALS, 1.0)
            if info is None:
                continue
            if info.si_signo != signal.SIGCHLD:
                log.info("received %s; stopping", signal.Signals(info.si_signo).name)
                return 0
            for child in self._reap():
                if not self._may_restart():
                    log.error("sandbox processes keep dying; giving up")
                    return 1
                log.warning(
                    "%s %d (pid %d) exited with %s; starting it again",
                    child.role,
                    child.index,
                    child.proc.pid,
                    child.proc.returncode,
                )
                self._spawn_and_wait([(child.role, child.index)])

    def _reap(self) -> list[_Child]:
        dead = []
        for pid, child in list(self._children.items()):
            if child.proc.poll() is not None:
                del self._children[pid]
                self._forget_metrics(pid)
                dead.append(child)
        return dead

    def _may_restart(self) -> bool:
        now = time.monotonic()
        self._restarts = [t for t in self._restarts if now - t < 60] + [now]
        return len(self._restarts) <= MAX_RESTARTS

    def _forget_metrics(self, pid: int) -> None:
        from sandbox.metrics import mark_process_dead

        with contextlib.suppress(OSError):
            mark_process_dead(pid, self.config.metrics_dir)

    # ------------------------------------------------------------ stop

    def _stop(self) -> None:
        pods = [c for c in self._children.values() if c.role == "pod"]
        workers = [c for c in self._children.values() if c.role == "worker"]
        self._terminate(pods, POD_STOP_TIMEOUT)
        self._terminate(workers, WORKER_STOP_TIMEOUT)
        self._children.clear()

    @staticmethod
    def _terminate(children: list[_Child], timeout: float) -> None:
        for child in children:
            if child.proc.poll() is None:
                child.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for child in children:
            try:
                child.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.error("%s %d did not stop in %ss; killing it", child.role, child.index, timeout)
                child.proc.kill()
                child.proc.wait()


def _runtime_dir() -> str:
    """A private directory for the sandbox's socket and shared files: under TMPDIR, or under
    /tmp when TMPDIR is so deep that the queue socket's path would not fit a Unix socket
    address (``sun_path``: 108 bytes on Linux, with its terminating NUL)."""
    runtime = tempfile.mkdtemp(prefix="agenttrace-sandbox-")
    socket_path = SandboxConfig(runtime_dir=runtime).queue_socket
    if len(os.fsencode(socket_path)) < _SUN_PATH_MAX:
        return runtime
    os.rmdir(runtime)
    return tempfile.mkdtemp(prefix="agenttrace-sandbox-", dir="/tmp")


def _reserve(host: str, port: int) -> socket.socket:
    """Hold the port for the pods (bound, not listening); resolves port 0 to a free port.

    A first, exclusive bind proves the port is free: with SO_REUSEPORT alone, a second
    sandbox of the same user would silently share a port another sandbox listens on.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    probe = socket.socket(family, socket.SOCK_STREAM)
    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        probe.bind((host, port))
        port = probe.getsockname()[1]
        probe.close()
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise StartError(
            f"--host/--port: cannot listen on {host}:{port}: {exc.strerror or exc}", status=2
        ) from None
    finally:
        probe.close()
    return sock


def _url_host(host: str) -> str:
    if host in ("0.0.0.0", ""):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host
