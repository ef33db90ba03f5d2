"""The largest values the planner takes from a file or an option.

Sweep files and CSVs are data anybody may have written. A value far beyond anything
measurable (10^400 pods, a rate of 1e300/s) is not a measurement: the fit would overflow
into inf and NaN, and an integer that large cannot even become a float. Such values are
refused where they are read, with the file and field named.
"""

from __future__ import annotations

MAX_PODS = 100_000
"""Pod counts: far beyond any deployment the law has been fitted to."""
MAX_RATE = 1e9
"""Requests per second: offered, achieved, throughput or a target rate."""
MAX_NUMBER = 1e12
"""Any other number of a sweep file (latencies in ms, durations in s, ratios)."""
MAX_COUNT = 10**15
"""Whole-number counts of a sweep file (requests, errors, drops)."""


def rate_problem(value: float, name: str = "rate") -> str | None:
    """Why `value` is not a usable rate (per second), or None."""
    if value > MAX_RATE:
        return f"{name} {value:g}/s is beyond {MAX_RATE:g}/s: not a measurable rate"
    return None


def pods_problem(value: int) -> str | None:
    """Why `value` is not a usable pod count, or None."""
    if value > MAX_PODS:
        shown = f"{value:,}" if value < 10**30 else f"a {len(str(value))}-digit number"
        return f"pods {shown} is more than {MAX_PODS:,}"
    return None
