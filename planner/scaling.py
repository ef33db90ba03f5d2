"""Setting the pod count of a real deployment: the user's scale command, then readiness.

``--scale-cmd`` is split like a shell would (`shlex.split`) and run without a shell, with
``{pods}`` replaced in every word: ``kubectl scale deploy/api --replicas={pods}``. Only with
``--shell`` does ``/bin/sh -c`` run it (pipes, ``&&``, ``$VAR``), so a pod count can never
be interpreted by a shell unless the user asked for one. ``{pods}`` is replaced with
`str.replace`, not `str.format`, so JSON braces in the command stay as written:
``curl -d '{"pods": {pods}}' ...``.

A command that exits non-zero or outlives the timeout stops the sweep (`ScaleError`, with
the last line it printed). ``--ready-url`` is then polled with GET, once a second, until it
answers 2xx; if it does not within the timeout, `ScaleError` says what it last answered.
The poll goes to that URL directly (no proxy from the environment), as replay does. The
command and the readiness poll share one timeout (``--ready-timeout``). Last, one TCP
connect checks that the target itself accepts connections at the new pod count.
"""

from __future__ import annotations

import shlex
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass

from capture.units import format_duration_ns
from planner.sweep import ScaleError
from replay.address import Target, probe

PLACEHOLDER = "{pods}"
POLL_INTERVAL_S = 1.0
ATTEMPT_TIMEOUT_S = 5.0


def command_for(cmd: str, pods: int, *, shell: bool) -> str | list[str]:
    """The command to run for ``pods``: a word list, or (``shell``) one string for sh -c.

    Raises ValueError for a command shlex cannot split (an unbalanced quote)."""
    if shell:
        return cmd.replace(PLACEHOLDER, str(pods))
    return [word.replace(PLACEHOLDER, str(pods)) for word in shlex.split(cmd)]


def check_command(cmd: str, *, shell: bool) -> None:
    """ValueError with the user's message if ``cmd`` cannot serve as a scale command."""
    if PLACEHOLDER not in cmd:
        raise ValueError(f"{cmd!r} has no {PLACEHOLDER}: the command must name the pod count")
    words = command_for(cmd, 1, shell=shell)
    if not words:
        raise ValueError("the command is empty")


def run_scale_command(cmd: str, pods: int, *, shell: bool, timeout_s: float) -> None:
    """Run the scale command for ``pods``; `ScaleError` unless it exits 0 within the time."""
    argv = command_for(cmd, pods, shell=shell)
    shown = argv if isinstance(argv, str) else shlex.join(argv)
    try:
        done = subprocess.run(
            argv,
            shell=shell,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout_s,
            check=False,
        )
    except FileNotFoundError:
        program = argv if isinstance(argv, str) else argv[0]
        raise ScaleError(f"--scale-cmd: {program}: command not found") from None
    except PermissionError:
        program = argv if isinstance(argv, str) else argv[0]
        raise ScaleError(f"--scale-cmd: {program}: permission denied") from None
    except subprocess.TimeoutExpired:
        raise ScaleError(
            f"--scale-cmd for {pods} pods ({shown}) did not finish within "
            f"{format_duration_ns(timeout_s * 1e9)}"
        ) from None
    if done.returncode != 0:
        tail = _last_line(done.stderr) or _last_line(done.stdout)
        how = (
            f"was killed by signal {-done.returncode}"
            if done.returncode < 0
            else f"exited with status {done.returncode}"
        )
        raise ScaleError(
            f"--scale-cmd for {pods} pods ({shown}) {how}" + (f": {tail}" if tail else "")
        )


def wait_ready(
    url: str,
    timeout_s: float,
    *,
    interval_s: float = POLL_INTERVAL_S,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    probe: Callable[[str, float], tuple[bool, str]] | None = None,
    started: float | None = None,
) -> int:
    """Poll ``url`` until it answers 2xx; the number of attempts, or `ScaleError`.

    The deadline is ``timeout_s`` after ``started`` (a ``clock()`` reading; now if
    None), so a scale command and the wait after it share one budget and the error
    names the budget the user gave, not what was left of it. One attempt is always made.
    """
    probe = probe or http_probe
    deadline = (clock() if started is None else started) + timeout_s
    attempts = 0
    while True:
        attempts += 1
        left = deadline - clock()
        ok, answer = probe(url, max(0.1, min(ATTEMPT_TIMEOUT_S, left)))
        if ok:
            return attempts
        if clock() + interval_s > deadline:
            raise ScaleError(
                f"--ready-url {url}: not ready within "
                f"{format_duration_ns(timeout_s * 1e9)} ({attempts} attempts; last: {answer})"
            )
        sleep(interval_s)


_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def http_probe(url: str, timeout_s: float) -> tuple[bool, str]:
    """GET ``url``: (answered 2xx, what it answered in a few words)."""
    try:
        with _DIRECT.open(url, timeout=timeout_s) as response:
            status = int(response.status)
            return 200 <= status < 300, f"HTTP {status}"
    except urllib.error.HTTPError as exc:
        exc.close()
        return False, f"HTTP {exc.code}"
    except urllib.error.URLError as exc:
        return False, str(exc.reason)
    except (OSError, ValueError) as exc:
        return False, str(exc) or type(exc).__name__


@dataclass(frozen=True)
class CommandScaler:
    """`Scale` for a real deployment: the command, then (if given) the ready URL."""

    cmd: str | None
    shell: bool = False
    ready_url: str | None = None
    timeout_s: float = 300.0
    target_url: str | None = None  # checked with one TCP connect once ready

    def __call__(self, pods: int) -> None:
        started = time.monotonic()
        if self.cmd is not None:
            run_scale_command(self.cmd, pods, shell=self.shell, timeout_s=self.timeout_s)
        if self.ready_url is not None:
            wait_ready(self.ready_url, self.timeout_s, started=started)
        if self.target_url is not None:
            why = tcp_probe(self.target_url)
            if why is not None:
                raise ScaleError(f"cannot connect to {self.target_url} at {pods} pods: {why}")


def tcp_probe(url: str) -> str | None:
    """Why ``url``'s host and port do not accept a connection now, or None (replay's check)."""
    try:
        target = Target.parse(url)
    except ValueError as exc:
        return str(exc)
    why: str | None = probe(target)
    return why


def _last_line(data: bytes | None) -> str:
    lines = [ln.strip() for ln in (data or b"").decode(errors="replace").splitlines()]
    lines = [ln for ln in lines if ln]
    return lines[-1][:200] if lines else ""
