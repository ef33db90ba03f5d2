"""What a run sends to: the user's --target, checked at start, or the embedded sandbox.

Without --target, replay starts the sandbox (the sandbox package's library API) on a free
port of 127.0.0.1 and uses its URL, API key and project id; the coordinator stops it when the
run ends, whatever the reason. With --target, one TCP connect checks that something
listens, so a wrong URL fails in a second with one line instead of a run full of "refused".
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from replay.address import Target, probe


class TargetError(Exception):
    """The target cannot be used (bad URL, refuses connections, sandbox will not start)."""


@dataclass
class RunTarget:
    url: str
    api_key: str | None
    project_id: str | None
    embedded: bool
    _stop: Callable[[], None] | None = field(default=None, repr=False)

    def stop(self) -> None:
        stop, self._stop = self._stop, None
        if stop is not None:
            stop()


def open_target(
    url: str | None,
    api_key: str | None,
    project_id: str | None,
    sandbox_options: dict[str, Any] | None = None,
) -> RunTarget:
    """Check the user's target, or start the embedded sandbox. Raises TargetError."""
    if url is None:
        return _start_sandbox(sandbox_options or {})
    from replay.redact import redact_url, userinfo_problem

    problem = userinfo_problem(url)
    if problem:
        raise TargetError(problem)
    try:
        target = Target.parse(url)
    except ValueError as exc:
        raise TargetError(str(exc)) from None
    why = probe(target)
    if why is not None:
        raise TargetError(f"cannot connect to {redact_url(url)}: {why}")
    return RunTarget(url, api_key, project_id, embedded=False)


def _start_sandbox(options: dict[str, Any]) -> RunTarget:
    try:
        from sandbox.process import start_sandbox
    except ImportError as exc:
        raise TargetError(
            f"the embedded sandbox is not available ({exc}); give --target URL"
        ) from None
    try:
        sandbox = start_sandbox(**options)
    except Exception as exc:  # its failure to start is this run's failure to start
        raise TargetError(f"the embedded sandbox did not start: {exc}") from None
    return RunTarget(
        sandbox.url,
        getattr(sandbox, "api_key", None),
        getattr(sandbox, "project_id", None),
        embedded=True,
        _stop=sandbox.stop,
    )
