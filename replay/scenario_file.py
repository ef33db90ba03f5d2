"""Scenario files: k6's `options.scenarios` as TOML, read into typed `Scenario`s.

A file holds named scenarios under ``[scenarios.NAME]``, each with an ``executor`` (k6's
names plus ``corpus-timeline``), a ``corpus`` and that executor's parameters in snake_case,
and an optional top-level ``[thresholds]`` table as k6's. docs/scenarios.md is the full
reference. Anything wrong is an `InputError` of one line naming the file, the scenario and
the key. Durations are parsed here once; `Scenario.scaled` compresses them (--time-scale).
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

from capture.corpus import ENDPOINTS
from capture.errors import InputError
from capture.units import parse_duration_ns
from corpora import BUNDLED
from replay.config import ARRIVALS
from replay.thresholds import parse_threshold

NS = 1_000_000_000
GRACE_NS = 30 * NS  # k6's default gracefulStop and gracefulRampDown
EXECUTORS = (
    "constant-arrival-rate",
    "ramping-arrival-rate",
    "constant-vus",
    "ramping-vus",
    "corpus-timeline",
)
OPEN = ("constant-arrival-rate", "ramping-arrival-rate", "corpus-timeline")
"""Executors whose requests have their own due times (the rest are closed: VUs)."""
COMMON = ("executor", "corpus", "start_time", "endpoints")
PARAMETERS: dict[str, tuple[str, ...]] = {
    "constant-arrival-rate": ("rate", "time_unit", "duration", "max_inflight", "arrival"),
    "ramping-arrival-rate": ("start_rate", "time_unit", "stages", "max_inflight", "arrival"),
    "constant-vus": ("vus", "duration", "think_time", "flow", "graceful_stop"),
    "ramping-vus": (
        "start_vus",
        "stages",
        "think_time",
        "flow",
        "graceful_stop",
        "graceful_ramp_down",
    ),
    "corpus-timeline": ("scale", "speed", "duration", "max_inflight"),
}
REQUIRED: dict[str, tuple[str, ...]] = {
    "constant-arrival-rate": ("rate", "duration"),
    "ramping-arrival-rate": ("stages",),
    "constant-vus": ("vus", "duration"),
    "ramping-vus": ("stages",),
    "corpus-timeline": (),
}
TOP_LEVEL = ("description", "scenarios", "thresholds")
_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
PRESETS_PACKAGE = "replay.presets"


@dataclass(frozen=True)
class Scenario:
    """One scenario, every duration in ns, every rate per second (rate / time_unit)."""

    name: str
    executor: str
    corpus: str  # a bundled name or a path
    start_ns: int = 0
    duration_ns: int = 0  # 0: corpus-timeline without a duration (the corpus's)
    rate: float = 0.0  # constant-arrival-rate
    start_rate: float = 0.0  # ramping-arrival-rate
    stages: tuple[tuple[int, float], ...] = ()  # (ns, target rate per second or VUs)
    vus: int = 0  # constant-vus
    start_vus: int = 0  # ramping-vus
    think_ns: int = 0
    graceful_stop_ns: int = GRACE_NS
    graceful_ramp_down_ns: int = GRACE_NS
    max_inflight: int | None = None
    endpoints: tuple[str, ...] = ()
    flow: tuple[tuple[str, int], ...] = ()  # (endpoint, think ns after it)
    scale: float = 1.0
    speed: float = 1.0
    arrival: str = "uniform"

    @property
    def closed(self) -> bool:
        return self.executor not in OPEN

    @property
    def length_ns(self) -> int:
        """How long the scenario schedules work (its stages, or its duration)."""
        if self.stages:
            return sum(d for d, _ in self.stages)
        return self.duration_ns

    def scaled(self, factor: float) -> Scenario:
        """Every duration times `factor` (start time, duration, stages, graceful periods);
        rates, VU targets, think times and the time unit are unchanged."""

        def s(ns: int) -> int:
            return round(ns * factor)

        return replace(
            self,
            start_ns=s(self.start_ns),
            duration_ns=s(self.duration_ns),
            stages=tuple((s(d), t) for d, t in self.stages),
            graceful_stop_ns=s(self.graceful_stop_ns),
            graceful_ramp_down_ns=s(self.graceful_ramp_down_ns),
        )


@dataclass(frozen=True)
class ScenarioFile:
    """A parsed file: its scenarios in file order and its thresholds as our syntax."""

    source: str  # as named: a preset's name or a path
    scenarios: tuple[Scenario, ...]
    thresholds: tuple[str, ...] = ()
    description: str = ""
    names: tuple[str, ...] = field(default=())

    def scaled(self, factor: float) -> ScenarioFile:
        return replace(self, scenarios=tuple(s.scaled(factor) for s in self.scenarios))


# -- presets ---------------------------------------------------------------------------------
def preset_names() -> list[str]:
    """The bundled presets, sorted."""
    files = resources.files(PRESETS_PACKAGE).iterdir()
    return sorted(f.name[: -len(".toml")] for f in files if f.name.endswith(".toml"))


def preset_text(name: str) -> str:
    """A preset's TOML; InputError naming the presets when there is none by that name."""
    if name not in preset_names():
        raise InputError(f"no scenario preset {name!r} (one of {', '.join(preset_names())})")
    return resources.files(PRESETS_PACKAGE).joinpath(f"{name}.toml").read_text("utf-8")


def load_scenarios(source: str) -> ScenarioFile:
    """A preset by name, or a scenario file by path."""
    path = Path(source)
    if path.is_file():
        try:
            text = path.read_text("utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(f"{source}: cannot read ({exc})") from None
        return parse_scenarios(text, source, base=path.parent)
    if source in preset_names():
        return parse_scenarios(preset_text(source), source, base=None)
    raise InputError(
        f"{source}: no such scenario file, and not a preset ({', '.join(preset_names())})"
    )


# -- parsing ---------------------------------------------------------------------------------
def parse_scenarios(text: str, where: str, base: Path | None = None) -> ScenarioFile:
    """Parse a scenario file's text; `where` names it in errors, `base` is the directory
    relative corpus paths are tried in first."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{where}: not TOML: {exc}") from None
    for key in doc:
        if key not in TOP_LEVEL:
            raise InputError(f"{where}: unknown key {key!r} (one of {', '.join(TOP_LEVEL)})")
    description = doc.get("description", "")
    if not isinstance(description, str):
        raise InputError(f"{where}: description: a string, not {_kind(description)}")
    table = doc.get("scenarios")
    if not isinstance(table, dict) or not table:
        raise InputError(f"{where}: no [scenarios.NAME] table")
    scenarios = []
    for name, body in table.items():
        at = f"{where}: scenario {name}"
        if not _NAME.fullmatch(name):
            raise InputError(f"{at}: a name is letters, digits, _ and - (up to 64)")
        if not isinstance(body, dict):
            raise InputError(f"{at}: not a table")
        scenarios.append(_scenario(name, body, at, base))
    names = tuple(s.name for s in scenarios)
    thresholds = _thresholds(doc.get("thresholds", {}), where, names)
    return ScenarioFile(where, tuple(scenarios), thresholds, description, names)


def _scenario(name: str, body: Mapping[str, Any], at: str, base: Path | None) -> Scenario:
    executor = body.get("executor")
    if executor is None:
        raise InputError(f"{at}: executor: missing (one of {', '.join(EXECUTORS)})")
    if executor not in EXECUTORS:
        raise InputError(f"{at}: executor: {executor!r} is not one of {', '.join(EXECUTORS)}")
    allowed = COMMON + PARAMETERS[executor]
    for key in body:
        if key not in allowed:
            raise InputError(
                f"{at}: {key}: not a key of a {executor} scenario (one of {', '.join(allowed)})"
            )
    for key in ("corpus", *REQUIRED[executor]):
        if key not in body:
            raise InputError(f"{at}: {key}: missing (a {executor} scenario needs it)")
    r = _Reader(body, at)
    unit = r.duration("time_unit", NS, positive=True)
    per_second = NS / unit
    kwargs: dict[str, Any] = {
        "corpus": _corpus(r.string("corpus"), f"{at}: corpus", base),
        "start_ns": r.duration("start_time", 0),
        "endpoints": r.endpoints(),
    }
    if executor == "constant-arrival-rate":
        kwargs.update(rate=r.number("rate", positive=True) * per_second)
    if executor == "ramping-arrival-rate":
        kwargs.update(start_rate=r.number("start_rate", 0.0) * per_second)
        kwargs.update(stages=r.stages(per_second, whole=False))
    if executor in ("constant-arrival-rate", "corpus-timeline"):
        kwargs.update(
            duration_ns=r.duration("duration", 0, positive="duration" in REQUIRED[executor])
        )
    if "max_inflight" in body:  # (an open executor's key)
        kwargs.update(max_inflight=r.integer("max_inflight", 1))
    if executor in ("constant-arrival-rate", "ramping-arrival-rate"):
        arrival = r.string("arrival", "uniform")
        if arrival not in ARRIVALS:
            raise InputError(f"{at}: arrival: {arrival!r} is not one of {', '.join(ARRIVALS)}")
        kwargs.update(arrival=arrival)
    if executor == "constant-vus":
        kwargs.update(vus=r.integer("vus", 1), duration_ns=r.duration("duration", 0, True))
    if executor == "ramping-vus":
        kwargs.update(start_vus=r.integer("start_vus", 0, default=0))
        kwargs.update(stages=r.stages(1.0, whole=True))
        kwargs.update(graceful_ramp_down_ns=r.duration("graceful_ramp_down", GRACE_NS))
    if executor in ("constant-vus", "ramping-vus"):
        kwargs.update(think_ns=r.duration("think_time", 0))
        kwargs.update(graceful_stop_ns=r.duration("graceful_stop", GRACE_NS))
        kwargs.update(flow=r.flow())
        if kwargs["flow"] and "think_time" in body:
            raise InputError(f"{at}: think_time: give each flow step its own think_time")
        if kwargs["flow"] and kwargs["endpoints"]:
            raise InputError(f"{at}: endpoints: a flow names its endpoints step by step")
    if executor == "corpus-timeline":
        kwargs.update(scale=r.number("scale", positive=True, default=1.0))
        kwargs.update(speed=r.number("speed", positive=True, default=1.0))
    return Scenario(name=name, executor=executor, **kwargs)


class _Reader:
    """Typed reads of one scenario's keys, each error naming the key."""

    def __init__(self, body: Mapping[str, Any], at: str) -> None:
        self.body, self.at = body, at

    def bad(self, key: str, why: str) -> InputError:
        return InputError(f"{self.at}: {key}: {why}")

    def string(self, key: str, default: str | None = None) -> str:
        value = self.body.get(key, default)
        if not isinstance(value, str) or not value:
            raise self.bad(key, f"a non-empty string, not {_kind(value)}")
        return value

    def number(self, key: str, default: float | None = None, *, positive: bool = False) -> float:
        value = self.body.get(key, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.bad(key, f"a number, not {_kind(value)}")
        if value < 0 or (positive and value <= 0) or value != value or value == float("inf"):
            raise self.bad(
                key, f"{value} is not a {'positive' if positive else 'non-negative'} number"
            )
        return float(value)

    def integer(self, key: str, least: int, default: int | None = None) -> int:
        value = self.body.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.bad(key, f"a whole number, not {_kind(value)}")
        if value < least:
            raise self.bad(key, f"{value} is less than {least}")
        return value

    def duration(self, key: str, default: int, positive: bool = False) -> int:
        if key not in self.body:
            return default
        return _duration(self.body[key], positive, lambda why: self.bad(key, why))

    def stages(self, per: float, whole: bool) -> tuple[tuple[int, float], ...]:
        value = self.body.get("stages")
        if not isinstance(value, list) or not value:
            raise self.bad("stages", "a non-empty list of {duration = ..., target = ...}")
        out = []
        for i, stage in enumerate(value):
            key = f"stages[{i}]"
            if not isinstance(stage, dict):
                raise self.bad(key, f"a table {{duration = ..., target = ...}}, not {_kind(stage)}")
            for k in stage:
                if k not in ("duration", "target"):
                    raise self.bad(f"{key}.{k}", "not a stage key (duration, target)")
            for k in ("duration", "target"):
                if k not in stage:
                    raise self.bad(f"{key}.{k}", "missing")
            ns = _duration(
                stage["duration"], False, lambda why, k=key: self.bad(f"{k}.duration", why)
            )
            target = stage["target"]
            if isinstance(target, bool) or not isinstance(target, (int, float)) or target < 0:
                raise self.bad(f"{key}.target", f"a non-negative number, not {target!r}")
            if whole and not isinstance(target, int):
                raise self.bad(f"{key}.target", f"a whole number of VUs, not {target!r}")
            out.append((ns, float(target) * per))
        if not sum(ns for ns, _ in out):
            raise self.bad("stages", "the stages last no time at all")
        return tuple(out)

    def endpoints(self) -> tuple[str, ...]:
        value = self.body.get("endpoints", [])
        if not isinstance(value, list) or not all(isinstance(e, str) for e in value):
            raise self.bad("endpoints", "a list of endpoint names")
        for e in value:
            if e not in ENDPOINTS:
                raise self.bad(
                    "endpoints", f"unknown endpoint {e!r} (one of {', '.join(ENDPOINTS)})"
                )
        return tuple(dict.fromkeys(value))

    def flow(self) -> tuple[tuple[str, int], ...]:
        value = self.body.get("flow", [])
        if not isinstance(value, list):
            raise self.bad("flow", "a list of {endpoint = ..., think_time = ...}")
        out = []
        for i, step in enumerate(value):
            key = f"flow[{i}]"
            if not isinstance(step, dict):
                raise self.bad(
                    key, f"a table {{endpoint = ..., think_time = ...}}, not {_kind(step)}"
                )
            for k in step:
                if k not in ("endpoint", "think_time"):
                    raise self.bad(f"{key}.{k}", "not a flow step key (endpoint, think_time)")
            endpoint = step.get("endpoint")
            if endpoint not in ENDPOINTS:
                raise self.bad(
                    f"{key}.endpoint", f"{endpoint!r} is not an endpoint ({', '.join(ENDPOINTS)})"
                )
            think = _duration(
                step.get("think_time", 0),
                False,
                lambda why, k=key: self.bad(f"{k}.think_time", why),
            )
            out.append((str(endpoint), think))
        return tuple(out)


def _duration(value: Any, positive: bool, bad: Any) -> int:
    """A duration as TOML gives it: "2m", "1.5s", or a number of seconds."""
    if isinstance(value, bool):
        raise bad(f'a duration ("30s", "2m"), not {_kind(value)}')
    if isinstance(value, (int, float)):
        if value < 0 or value != value or value == float("inf"):
            raise bad(f"{value} is not a duration")
        ns = round(value * NS)
    elif isinstance(value, str):
        try:
            ns = parse_duration_ns(value)
        except ValueError as exc:
            raise bad(str(exc)) from None
    else:
        raise bad(f'a duration ("30s", "2m"), not {_kind(value)}')
    if positive and ns <= 0:
        raise bad("must be longer than zero")
    return ns


def _corpus(name: str, at: str, base: Path | None) -> str:
    """A bundled corpus name, or a path that exists (tried beside the file first)."""
    if base is not None:
        beside = base / name
        if beside.is_file():
            return str(beside)
    if Path(name).is_file():
        return name
    if name in BUNDLED:
        return name
    raise InputError(
        f"{at}: {name!r}: no such file, and not a bundled corpus ({', '.join(sorted(BUNDLED))})"
    )


def _thresholds(table: Any, where: str, names: Sequence[str]) -> tuple[str, ...]:
    if not isinstance(table, dict):
        raise InputError(f'{where}: thresholds: a table of "metric{{tags}}" = ["expr", ...]')
    out = []
    for subject, exprs in table.items():
        at = f"{where}: thresholds: {subject}"
        if isinstance(exprs, str):
            exprs = [exprs]
        if not isinstance(exprs, list) or not all(isinstance(e, str) for e in exprs):
            raise InputError(f'{at}: a list of expressions such as "p(99)<200"')
        for expr in exprs:
            text = f"{subject}: {expr}"
            try:
                t = parse_threshold(text)
            except ValueError as exc:
                raise InputError(f"{at}: {exc}") from None
            if t.scenario is not None and t.scenario not in names:
                raise InputError(
                    f"{at}: no scenario {t.scenario!r} in this file ({', '.join(names)})"
                )
            out.append(text)
    return tuple(out)


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    return f"{type(value).__name__} {value!r}"[:60]
