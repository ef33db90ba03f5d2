"""Values a user types: durations (90, 90s, 5m, 1h30m, 250ms), rates, scale factors (5x).

Each is parsed once, here, by a pure function that raises ValueError with a message fit to
show the user; the click ParamTypes below turn that into click's usage error (exit 2).
Every CLI in this project (capture, replay, planner, sandbox) takes its values through
these types, so `2m` means the same thing everywhere.
"""

from __future__ import annotations

import math
import re
from typing import Any

import click

_UNITS_NS = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
    "d": 86_400_000_000_000,
}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h|d)")


def parse_duration_ns(text: str) -> int:
    """'90' and '90s' are 90 seconds; '5m', '2h', '1h30m', '250ms', '1.5s' as they read."""
    s = str(text).strip().lower()
    if not s:
        raise ValueError("empty duration")
    if s.startswith("-"):
        raise ValueError(f"{text!r} is negative: a duration must be positive")
    try:
        seconds = float(s)
    except ValueError:
        pos, total = 0, 0.0
        for match in _DURATION_PART.finditer(s):
            if match.start() != pos:
                break
            total += float(match.group(1)) * _UNITS_NS[match.group(2)]
            pos = match.end()
        if pos != len(s) or pos == 0:
            raise ValueError(
                f"{text!r} is not a duration (examples: 90, 90s, 5m, 2h, 1h30m, 250ms)"
            ) from None
        ns = total
    else:
        if not math.isfinite(seconds):
            raise ValueError(f"{text!r} is not a finite duration") from None
        ns = seconds * 1e9
    return round(ns)


def parse_positive_duration_ns(text: str) -> int:
    ns = parse_duration_ns(text)
    if ns <= 0:
        raise ValueError(f"{text!r} is zero: a duration must be positive")
    return ns


def parse_rate(text: str) -> float:
    """Requests per second: '200', '200/s', '1.5k', '12000/m' (per minute)."""
    s = str(text).strip().lower().replace(" ", "")
    per = 1.0
    for suffix, divisor in (("/s", 1.0), ("/m", 60.0), ("/h", 3600.0)):
        if s.endswith(suffix):
            s, per = s[: -len(suffix)], divisor
            break
    mult = 1.0
    if s.endswith("k"):
        s, mult = s[:-1], 1000.0
    try:
        value = float(s) * mult / per
    except ValueError:
        raise ValueError(f"{text!r} is not a rate (examples: 200, 200/s, 1.5k, 600/m)") from None
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{text!r}: a rate must be a positive number of requests per second")
    return value


def parse_factor(text: str) -> float:
    """A multiplier written '5x', '2.5x' or '5': positive and finite."""
    s = str(text).strip().lower()
    number = s[:-1] if s.endswith("x") else s
    try:
        value = float(number)
    except ValueError:
        raise ValueError(f"{text!r} is not a factor (examples: 5x, 2.5x, 0.5x)") from None
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{text!r}: a factor must be greater than zero")
    return value


def format_duration_ns(ns: int | float) -> str:
    """Short human form: 1h02m, 5m00s, 12.3s, 850ms."""
    seconds = ns / 1e9
    if seconds >= 3600:
        return f"{int(seconds // 3600)}h{int(seconds % 3600 // 60):02d}m"
    if seconds >= 60:
        return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"
    if seconds >= 1:
        return f"{seconds:.1f}s"
    return f"{seconds * 1000:.0f}ms"


class _Parsed(click.ParamType):
    """A click type backed by one of the parse functions above."""

    def __init__(self, name: str, parse: Any) -> None:
        self.name = name
        self._parse = parse

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if not isinstance(value, str):
            return value
        try:
            return self._parse(value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


DURATION = _Parsed("duration", parse_positive_duration_ns)
"""A positive duration, converted to integer nanoseconds."""
RATE = _Parsed("rate", parse_rate)
"""A positive rate, converted to requests per second (float)."""
FACTOR = _Parsed("factor", parse_factor)
"""A positive multiplier such as 5x, converted to float."""
