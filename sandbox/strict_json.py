"""JSON as the sandbox accepts it: what it can queue, store and serve back as valid JSON.

Python's :func:`json.loads` accepts ``NaN``, ``Infinity`` and ``-Infinity``, turns ``1e400``
into an infinite float and reads integers of any size. None of these survives the pipeline:
the queue's msgpack holds integers of at most 64 bits, and a non-finite float would be
stored and served back as ``NaN``, which is not JSON. They are refused here, at the door,
with the reason, so a body is either stored faithfully or answered 400.
"""

from __future__ import annotations

import json
import math
from typing import Any

MIN_INT = -(2**63)
MAX_INT = 2**63 - 1
"""Integers a body may hold: a signed 64-bit range, which msgpack and SQLite both keep."""


class NotStorable(ValueError):
    """A JSON value the sandbox cannot keep; ``field`` is ``body``, ``message`` says why."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.field = "body"
        self.message = message


def _int(text: str) -> int:
    value = int(text)
    if not MIN_INT <= value <= MAX_INT:
        shown = text if len(text) <= 24 else f"{text[:20]}... ({len(text)} digits)"
        raise NotStorable(f"integer {shown} is outside the signed 64-bit range")
    return value


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise NotStorable(f"number {text[:24]} is too large for a 64-bit float")
    return value


def _constant(name: str) -> Any:
    raise NotStorable(f"{name} is not JSON (only finite numbers are)")


def loads(data: bytes | str) -> Any:
    """Parse strict JSON; raises :class:`NotStorable`, or ValueError for malformed JSON."""
    return json.loads(data, parse_int=_int, parse_float=_float, parse_constant=_constant)
