"""The threshold grammar: k6's threshold syntax plus windows, parsed into ``Threshold``.

Grammar (whitespace is free between tokens)::

    threshold   := metric [ "{" tag ":" value { "," tag ":" value } "}" ] ":" aggregation
                   op number [ unit ] [ "[" "window" "=" duration "]" ]
    aggregation := avg | med | min | max | p(N) | rate | count      (N in 0..100, fractional ok)
    op          := < | <= | > | >= | == | !=
    tag         := endpoint (ingest, list, get, ...) | status (503, 5xx or an error kind)
                   | scenario (a scenario's name: judged on that scenario's requests only)

Metrics, and the aggregations each takes:

    http_req_duration              latency from the intended send time (coordinated omission
                                   corrected), ms: avg med min max p(N) count
    http_req_duration_uncorrected  latency from the actual send, ms: the same
    send_lag                       actual minus intended send time, ms: the same
    http_req_failed                errors (4xx, 5xx, transport) among sent requests:
                                   rate (0..1, or with %), count
    http_reqs                      completed requests: count, rate (per second)
    dropped_requests               requests the generator could not send: count, rate (among
                                   offered; with {endpoint:...}, among that endpoint's sent
                                   plus dropped, as offers are not counted per endpoint)
    visibility_lag                 acknowledgment to first readable (--visibility-probe), ms,
                                   by acknowledgment second: avg med min max p(N) count

Durations take ms by default, or a unit: ``p(99)<2s``, ``p(50)<800us``.

A ``Threshold`` is only the criterion; judging it against a run is ``replay.verdicts``.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass

from capture.corpus import ENDPOINTS
from capture.units import parse_positive_duration_ns
from replay.outcomes import ERROR_KINDS

TREND = {
    "http_req_duration": "latency",
    "http_req_duration_uncorrected": "latency_uncorrected",
    "send_lag": "send_lag",
}
AGGREGATIONS: dict[str, tuple[str, ...]] = {
    **{name: ("avg", "med", "min", "max", "p", "count") for name in TREND},
    "http_req_failed": ("rate", "count"),
    "http_reqs": ("count", "rate"),
    "dropped_requests": ("count", "rate"),
    "visibility_lag": ("avg", "med", "min", "max", "p", "count"),
}
METRIC_NAMES = tuple(AGGREGATIONS)
OPERATORS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}
_EXAMPLE = "example: 'http_req_duration{endpoint:ingest}: p(99)<500 [window=10s]'"

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_AGGREGATION = re.compile(r"(avg|med|min|max|rate|count|p\(([^)]*)\))")
_OPERATOR = re.compile(r"(<=|>=|==|!=|<|>)")
_NUMBER = re.compile(r"([+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)\s*([a-zµ%]*)")
_WINDOW = re.compile(r"\[\s*window\s*=\s*([^\]]*?)\s*\]\s*$")
_DURATION_UNITS_MS = {"": 1.0, "ms": 1.0, "s": 1000.0, "us": 0.001, "µs": 0.001}
_STATUS = re.compile(r"[1-5](\d\d|xx)")
_SCENARIO = re.compile(r"[A-Za-z0-9_-]{1,64}")


@dataclass(frozen=True)
class Threshold:
    """One parsed threshold. ``str()`` gives the canonical text, which parses back equal."""

    metric: str
    aggregation: str  # avg, med, min, max, p, rate, count
    op: str
    value: float  # ms for durations, 0..1 for http_req_failed and dropped_requests rates
    percentile: float | None = None  # N of p(N)
    endpoint: str | None = None
    status: str | None = None
    window_s: int | None = None
    scenario: str | None = None

    @property
    def tags(self) -> str:
        pairs = (("scenario", self.scenario), ("endpoint", self.endpoint), ("status", self.status))
        parts = [f"{k}:{v}" for k, v in pairs if v]
        return "{" + ",".join(parts) + "}" if parts else ""

    @property
    def subject(self) -> str:
        """The metric with its tags: ``http_req_duration{endpoint:ingest}``."""
        return self.metric + self.tags

    @property
    def expression(self) -> str:
        """The aggregation, the operator and the bound: ``p(99)<500``."""
        return f"{self.aggregation_name}{self.op}{_number(self.value)}"

    @property
    def aggregation_name(self) -> str:
        if self.aggregation == "p":
            return f"p({_number(self.percentile or 0.0)})"
        return self.aggregation

    def __str__(self) -> str:
        window = f" [window={duration_text(self.window_s)}]" if self.window_s else ""
        return f"{self.subject}: {self.expression}{window}"

    def holds(self, value: float) -> bool:
        return OPERATORS[self.op](value, self.value)


def _number(x: float) -> str:
    if x.is_integer() and abs(x) < 1e15:
        return str(int(x))
    return repr(x)


def duration_text(seconds: int) -> str:
    """Whole seconds in the largest unit that divides them: ``90s``, ``2m``, ``1h``."""
    if seconds % 3600 == 0:
        return f"{seconds // 3600}h"
    if seconds % 60 == 0:
        return f"{seconds // 60}m"
    return f"{seconds}s"


def parse_threshold(text: str) -> Threshold:
    """Parse one threshold; ValueError naming the part that is wrong."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"empty threshold ({_EXAMPLE})")
    src = text.strip()

    def bad(message: str) -> ValueError:
        return ValueError(f"threshold {src!r}: {message}")

    window_s = None
    m = _WINDOW.search(src)
    if m:
        window_s = _parse_window(m.group(1), bad)
        rest = src[: m.start()].rstrip()
    elif "[" in src or "]" in src:
        i = src.find("[") if "[" in src else src.find("]")
        raise bad(f"bad window suffix {src[i:]!r}: expected [window=10s] at the end")
    else:
        rest = src

    m = _NAME.match(rest)
    if not m:
        raise bad(f"expected a metric name at {rest[:20]!r} ({_EXAMPLE})")
    metric = m.group(0)
    if metric not in AGGREGATIONS:
        raise bad(f"unknown metric {metric!r} (known: {', '.join(METRIC_NAMES)})")
    rest = rest[m.end() :].lstrip()

    endpoint = status = scenario = None
    if rest.startswith("{"):
        close = rest.find("}")
        if close < 0:
            raise bad(f"unclosed '{{' in {rest!r}")
        endpoint, status, scenario = _parse_tags(metric, rest[1:close], bad)
        rest = rest[close + 1 :].lstrip()
    if not rest.startswith(":"):
        where = rest[:20] if rest else "the end"
        raise bad(f"expected ':' after {metric!r}, found {where!r} ({_EXAMPLE})")
    rest = rest[1:].strip()

    m = _AGGREGATION.match(rest)
    if not m:
        word = re.match(r"[^<>=!\s]*", rest)
        found = word.group(0) if word and word.group(0) else rest[:20]
        raise bad(f"unknown aggregation {found!r} (use avg, med, min, max, p(N), rate or count)")
    aggregation = "p" if m.group(1).startswith("p(") else m.group(1)
    percentile = _parse_percentile(m.group(2), bad) if aggregation == "p" else None
    allowed = AGGREGATIONS[metric]
    if aggregation not in allowed:
        names = ", ".join("p(N)" if a == "p" else a for a in allowed)
        raise bad(f"{metric} takes {names}, not {m.group(1)!r}")
    rest = rest[m.end() :].lstrip()

    named = m.group(1)
    m = _OPERATOR.match(rest)
    if not m:
        found = repr(rest[:20]) if rest else "nothing"
        raise bad(f"expected <, <=, >, >=, == or != after {named!r}, found {found}")
    op = m.group(1)
    rest = rest[m.end() :].strip()

    value = _parse_value(metric, aggregation, rest, bad)
    return Threshold(
        metric, aggregation, op, value, percentile, endpoint, status, window_s, scenario
    )


def _parse_window(text: str, bad: Callable[[str], ValueError]) -> int:
    try:
        ns = parse_positive_duration_ns(text)
    except ValueError as exc:
        raise bad(f"window {text!r}: {exc}") from None
    if ns % 1_000_000_000:
        raise bad(f"window {text!r} is not a whole number of seconds (the timeline's unit)")
    return ns // 1_000_000_000


def _parse_tags(
    metric: str, body: str, bad: Callable[[str], ValueError]
) -> tuple[str | None, str | None, str | None]:
    found: dict[str, str] = {}
    for item in body.split(","):
        key, sep, value = (part.strip() for part in item.partition(":"))
        if not sep or not key or not value:
            raise bad(f"tag {item.strip()!r} is not name:value")
        if key in found:
            raise bad(f"tag {key!r} given twice")
        if key == "endpoint":
            if value not in ENDPOINTS:
                raise bad(f"unknown endpoint {value!r} (known: {', '.join(ENDPOINTS)})")
        elif key == "status":
            if metric == "dropped_requests":
                raise bad("dropped_requests has no status (they were never sent)")
            if not (_STATUS.fullmatch(value) or value in ERROR_KINDS):
                raise bad(
                    f"status {value!r} is not an HTTP status (503), a class (5xx) "
                    f"or an error kind ({', '.join(ERROR_KINDS)})"
                )
        elif key == "scenario":
            if not _SCENARIO.fullmatch(value):
                raise bad(f"scenario {value!r} is not a scenario name (letters, digits, _, -)")
        else:
            raise bad(f"unknown tag {key!r} (use endpoint, status or scenario)")
        found[key] = value
    return found.get("endpoint"), found.get("status"), found.get("scenario")


def _parse_percentile(text: str, bad: Callable[[str], ValueError]) -> float:
    try:
        p = float(text.strip())
    except ValueError:
        raise bad(f"p({text}) needs a number: p(99), p(99.9)") from None
    if not 0.0 <= p <= 100.0:
        raise bad(f"p({text}) is outside 0..100")
    return p


def _parse_value(
    metric: str, aggregation: str, text: str, bad: Callable[[str], ValueError]
) -> float:
    m = _NUMBER.fullmatch(text)
    if not m:
        raise bad(f"expected a number after the comparison, found {text or 'nothing'!r}")
    number, unit = float(m.group(1)), m.group(2)
    if not math.isfinite(number):
        raise bad(f"{text!r} is not a finite number")
    if metric in TREND and aggregation != "count":
        if unit not in _DURATION_UNITS_MS:
            raise bad(f"unit {unit!r} in {text!r}: durations take ms (default), s or us")
        return number * _DURATION_UNITS_MS[unit]
    if unit == "%" and aggregation == "rate" and metric != "http_reqs":
        return number / 100.0
    if unit:
        raise bad(f"unit {unit!r} in {text!r} does not fit {metric} {aggregation}")
    return number
