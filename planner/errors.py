"""The one error the planner raises for bad input: it names the file and where in it.

The CLI prints ``str(error)`` as a single line on stderr and exits with status 2; the library
raises it wherever a user's file or value is wrong, so a caller never sees a traceback for a
mistake in their data.
"""

from __future__ import annotations

from capture.errors import InputError as _BadInput


class InputError(_BadInput, ValueError):
    """Bad input in the planner's files or options: ``InputError(message, path=, where=)``."""
