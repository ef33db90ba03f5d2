"""The library API: start a sandbox as a child process, use it, stop it.

    from sandbox.process import start_sandbox

    with start_sandbox(port=0) as sb:            # a free port, a generated key
        post(f"{sb.url}/api/public/traces", headers={"Authorization": f"Bearer {sb.api_key}"})
        sb.flush()                                # everything acknowledged is now readable
    # leaving the block sends SIGTERM and waits: the queue is drained before it returns

The child is ``python -m sandbox`` with the matching flags (one code path with the CLI). It
reports readiness with one JSON line on a pipe, after its port is bound and every process
is serving; :func:`start_sandbox` returns only then, or raises :class:`SandboxError` with
the end of the child's log. :meth:`SandboxProcess.stop` sends SIGTERM, waits, and sends
SIGKILL only after ``timeout``.

Secrets never reach the child's command line (which any user may read with ``ps``): the API
keys and admin token go through an inherited pipe (``--secrets-fd``). The child's log is a
temporary file unlinked as soon as it is opened, so nothing is left in ``$TMPDIR`` however
the caller ends (a signal during start-up included); :meth:`SandboxProcess.read_log` reads
it through the open descriptor. ``keep_logs=True`` (or ``log=PATH``) keeps a named file.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from sandbox.capacity import Emulation
from sandbox.faults import FaultSpec
from sandbox.secrets_input import encode_pipe

ABANDON_TIMEOUT = 15.0


class SandboxError(RuntimeError):
    """The sandbox did not start, or an admin call failed."""


@dataclass
class SandboxProcess:
    """A running sandbox. ``url`` is ``http://host:port``; ``api_key`` belongs to
    ``project_id`` (the first of ``api_keys``); ``pid`` is the supervisor's."""

    url: str
    host: str
    port: int
    api_key: str
    project_id: str
    api_keys: dict[str, str]
    admin_token: str
    pid: int
    db: str
    log_path: Path | None
    """The log file when it was asked for (``log=`` or ``keep_logs``); None: an unlinked one."""
    _proc: subprocess.Popen[bytes] = field(repr=False)
    _log_fd: int | None = field(default=None, repr=False)
    """The open, unlinked log file of the child (None once stopped or when named)."""

    @property
    def running(self) -> bool:
        return self._proc.poll() is None

    @property
    def returncode(self) -> int | None:
        """The supervisor's exit status once it has exited (0 after a clean stop)."""
        return self._proc.poll()

    def stop(self, timeout: float = 60.0) -> None:
        """SIGTERM, wait up to ``timeout`` (the queue drains first), then SIGKILL."""
        if self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        if self._log_fd is not None:
            os.close(self._log_fd)
            self._log_fd = None

    def kill(self) -> int:
        """SIGKILL the supervisor at once (its children then drain and exit on their own)."""
        if self._proc.poll() is None:
            self._proc.kill()
        return self._proc.wait()

    def flush(self, timeout: float = 30.0) -> None:
        """Return once every trace acknowledged so far is readable."""
        self.admin("POST", "/admin/flush", {"timeout": timeout}, timeout=timeout + 5)

    def set_pods(self, pods: int, **model: float) -> dict[str, Any]:
        """Change the emulated pod count at run time (and optionally podRate, sigma, kappa,
        serviceCv, queueDepth); turns emulation on. Returns the new model."""
        return self.admin("POST", "/admin/pods", {"pods": pods, **model})

    def admin(
        self, method: str, path: str, body: Any = None, timeout: float = 30.0
    ) -> dict[str, Any]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.url + path,
            data=data,
            method=method,
            headers={
                "Authorization": f"Bearer {self.admin_token}",
                "Content-Type": "application/json",
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                answer: dict[str, Any] = json.loads(response.read() or b"{}")
                return answer
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")
            exc.close()
            raise SandboxError(f"{method} {path}: {exc.code} {detail}") from None

    def read_log(self) -> str:
        """What the child has written so far (empty once stopped, unless the log is named)."""
        if self._log_fd is not None:
            return _read_fd(self._log_fd).decode(errors="replace")
        if self.log_path is None:
            return ""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def __enter__(self) -> SandboxProcess:
        return self

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _tb: TracebackType | None,
    ) -> None:
        self.stop()


def _terminate_with_parent() -> None:
    """In the child before exec: SIGTERM when the parent dies (Linux prctl PR_SET_PDEATHSIG)."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG = 1


def start_sandbox(
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    pods: int = 1,
    api_keys: Mapping[str, str] | None = None,
    admin_token: str | None = None,
    emulate: Emulation | None = None,
    faults: FaultSpec | str | None = None,
    db: str | Path | None = None,
    ingest_delay: float = 0.0,
    rate_limit: float | None = None,
    rate_burst: int | None = None,
    max_body: int | None = None,
    seed: int | None = None,
    log: str | Path | None = None,
    startup_timeout: float = 60.0,
    keep_logs: bool = False,
    request_timeout: float | None = None,
    max_connections: int | None = None,
    max_db_size: int | None = None,
) -> SandboxProcess:
    """Start a sandbox and return once it serves. ``port=0`` picks a free port.

    ``api_keys`` maps key -> project (default: one generated key for ``proj-sandbox``);
    ``emulate`` turns on emulated capacity; ``faults`` is a spec such as
    ``"error=0.01,slow=0.02:200ms"``; ``db`` keeps the store in that file (default: a
    temporary file removed at stop); ``log`` receives the child's output (default: an
    unlinked temporary file; ``keep_logs`` keeps it as ``agenttrace-sandbox-*.log`` in
    ``$TMPDIR``, its path in ``log_path``). The log never holds a key or the token.
    """
    args = [sys.executable, "-m", "sandbox", "--host", host, "--port", str(port)]
    args += ["--pods", str(pods)]
    if emulate is not None:
        args += [
            "--emulate-pods",
            str(emulate.pods),
            "--pod-rate",
            repr(emulate.pod_rate),
            "--sigma",
            repr(emulate.sigma),
            "--kappa",
            repr(emulate.kappa),
            "--service-cv",
            repr(emulate.service_cv),
            "--queue-depth",
            str(emulate.queue_depth),
        ]
    if faults:
        args += ["--faults", faults if isinstance(faults, str) else faults.describe()]
    if db is not None:
        args += ["--db", str(db)]
    if ingest_delay:
        args += ["--ingest-delay", f"{ingest_delay!r}s"]
    if rate_limit is not None:
        args += ["--rate-limit", repr(rate_limit)]
    if rate_burst is not None:
        args += ["--rate-burst", str(rate_burst)]
    if max_body is not None:
        args += ["--max-body", str(max_body)]
    if seed is not None:
        args += ["--seed", str(seed)]
    if request_timeout is not None:
        args += ["--request-timeout", f"{request_timeout!r}s"]
    if max_connections is not None:
        args += ["--max-connections", str(max_connections)]
    if max_db_size is not None:
        args += ["--max-db-size", str(max_db_size)]

    log_path, log_fd = _open_log(log, keep_logs)
    read_fd, write_fd = os.pipe()
    secrets_read, secrets_write = os.pipe()
    args += ["--ready-fd", str(write_fd), "--secrets-fd", str(secrets_read)]
    try:
        # Its own session: a Ctrl-C at the terminal reaches the caller (replay), which
        # finishes its run and then stops the sandbox, instead of the sandbox dying under
        # the last second of the run. The parent-death signal stops it if the caller is
        # killed outright, so no sandbox outlives the run that started it.
        proc = subprocess.Popen(
            args,
            pass_fds=(write_fd, secrets_read),
            stdin=subprocess.DEVNULL,
            stdout=log_fd,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_terminate_with_parent,
        )
    except BaseException:
        for fd in (read_fd, write_fd, secrets_read, secrets_write, log_fd):
            os.close(fd)
        raise
    os.close(write_fd)
    os.close(secrets_read)
    _send_secrets(secrets_write, encode_pipe(dict(api_keys or {}), admin_token))
    try:
        line = _read_line(read_fd, startup_timeout)
    except BaseException:  # Ctrl-C (or a signal turned into an exception) during start-up
        _abandon(proc, log_fd)
        raise
    finally:
        os.close(read_fd)
    if line is None:
        tail = _read_fd(log_fd).decode(errors="replace")[-2000:]
        _abandon(proc, log_fd)
        raise SandboxError(f"the sandbox did not start (exit {proc.returncode}):\n{tail}")
    ready = json.loads(line)
    return SandboxProcess(
        url=ready["url"],
        host=ready["host"],
        port=ready["port"],
        api_key=ready["api_key"],
        project_id=ready["project_id"],
        api_keys=dict(ready["api_keys"]),
        admin_token=ready["admin_token"],
        pid=proc.pid,
        db=ready["db"],
        log_path=log_path,
        _proc=proc,
        _log_fd=log_fd,
    )


def _open_log(log: str | Path | None, keep: bool) -> tuple[Path | None, int]:
    """The child's log: (its path if named, an open descriptor for reading it back)."""
    if log is not None:
        path = Path(log)
        return path, os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
    fd, name = tempfile.mkstemp(prefix="agenttrace-sandbox-", suffix=".log")
    if keep:
        return Path(name), fd
    os.unlink(name)  # nothing on disk to leave behind, whatever happens next
    return None, fd


def _send_secrets(fd: int, data: bytes) -> None:
    """Write the secrets to the child's pipe and close it; a thread, should they exceed
    the pipe's buffer, so a child that dies before reading cannot block the caller."""

    def send() -> None:
        with contextlib.suppress(OSError), os.fdopen(fd, "wb") as pipe:
            pipe.write(data)

    if len(data) < 16384:
        send()
    else:
        threading.Thread(target=send, daemon=True).start()


def _abandon(proc: subprocess.Popen[bytes], log_fd: int) -> None:
    """Stop a child that did not become ready (SIGTERM, so it removes its runtime
    directory; SIGKILL after ``ABANDON_TIMEOUT``), and close its log."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=ABANDON_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
    proc.wait()
    os.close(log_fd)


def _read_fd(fd: int) -> bytes:
    """Everything written to a file so far, read through its descriptor."""
    chunks = []
    offset = 0
    while chunk := os.pread(fd, 1 << 20, offset):
        chunks.append(chunk)
        offset += len(chunk)
    return b"".join(chunks)


def _read_line(fd: int, timeout: float) -> str | None:
    """The readiness line, or None if the child closed the pipe or time ran out."""
    data = b""
    deadline = time.monotonic() + timeout
    while b"\n" not in data:
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        readable, _, _ = select.select([fd], [], [], min(left, 1.0))
        if not readable:
            continue
        chunk = os.read(fd, 65536)
        if not chunk:
            return None
        data += chunk
    return data.split(b"\n", 1)[0].decode()
