"""Values a user types: durations (90, 90s, 5m, 1h30m, 250ms), rates, factors (5x), sizes.

Each is parsed once, here, by a pure function that raises ValueError with a message fit to
show the user; capture/cli_units.py wraps each in a click type. Every CLI in this project
(capture, replay, planner, sandbox) takes its values through them, so `2m` means the same
thing everywhere.
"""

from __future__ import annotations

import math
import re

NS = 1_000_000_000
"""Nanoseconds per second: every duration in the project is integer nanoseconds."""

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


def parse_rate(text: str, *, allow_zero: bool = False) -> float:
    """Requests per second: '200', '200/s', '1.5k', '12000/m' (per minute); zero only where
    `allow_zero` (a stage that ramps down to nothing)."""
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
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
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


def parse_delay_s(text: str) -> float:
    """A duration that may be zero, in seconds (float): '0', '250ms', '1.5s'."""
    return parse_duration_ns(text) / 1e9


_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*(b|kb|kib|mb|mib|gb|gib|k|m|g)?")
_SIZE_UNITS: dict[str | None, int] = {
    None: 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "kib": 1024,
    "m": 1000**2,
    "mb": 1000**2,
    "mib": 1024**2,
    "g": 1000**3,
    "gb": 1000**3,
    "gib": 1024**3,
}


def parse_size(text: str) -> int:
    """Bytes: '4.5MB' (10^6), '512KiB' (2^10), '1000000'."""
    match = _SIZE.fullmatch(str(text).strip().lower())
    if match is None:
        raise ValueError(f"{text!r} is not a size (examples: 4.5MB, 512KiB, 1000000)")
    value = round(float(match.group(1)) * _SIZE_UNITS[match.group(2)])
    if value < 1:
        raise ValueError(f"{text!r}: a size must be at least 1 byte")
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
