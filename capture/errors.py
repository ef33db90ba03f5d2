"""Bad input and exit statuses, for every package: library modules raise `InputError`, the
CLI layer (capture/cli_errors.py) prints it as one line and exits with `EXIT_BAD_INPUT`.

It lives in capture because capture is upstream of every other package: replay, sandbox and
planner may all import it without data flowing backwards.
"""

from __future__ import annotations

import os

EXIT_OK = 0
EXIT_FAILED = 1  # the run or sweep failed (a worker died, a replay step failed)
EXIT_BAD_INPUT = 2  # bad arguments, a bad file or value, an unreachable target
EXIT_THRESHOLD_FAILED = 99  # a threshold failed (as k6)
EXIT_INTERRUPTED = 130  # Ctrl-C (128 + SIGINT)


class InputError(Exception):
    """Bad input found past argument parsing: what is wrong, and where when it is known.

    ``str(error)`` is ``path: where: message`` without the empty parts; ``path`` names the
    file (or the option), ``where`` the place in it (``line 4``, ``points[2].x_max``)."""

    def __init__(self, message: str, *, path: str | os.PathLike[str] = "", where: str = "") -> None:
        self.path = os.fspath(path)
        self.where = where
        self.message = message
        super().__init__(": ".join(p for p in (self.path, where, message) if p))
