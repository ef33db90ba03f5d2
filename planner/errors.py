"""The one error the planner raises for bad input: it names the file and where in it.

The CLI prints ``str(error)`` as a single line on stderr and exits with status 2; the library
raises it wherever a user's file or value is wrong, so a caller never sees a traceback for a
mistake in their data.
"""

from __future__ import annotations

from pathlib import Path

from capture.cli_errors import InputError as _BadInput


class InputError(_BadInput, ValueError):
    """Bad input: ``path`` (may be empty), ``where`` (``line 4``, ``points[2].x_max``), message."""

    def __init__(self, path: str | Path, where: str, message: str) -> None:
        self.path = str(path)
        self.where = where
        self.message = message
        parts = [p for p in (self.path, where, message) if p]
        super().__init__(": ".join(parts))
