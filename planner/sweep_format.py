"""The sweep file, schema ``planner-sweep/1``: what `planner sweep` writes, `planner report` reads.

The layout and the meaning of every field are in docs/sweep-format.md; this module is the
file's only reader and writer. A sweep is a list of pod counts, each with the ladder of
offered rates it was driven at (its steps) and two summaries derived from them:

    x_max  the highest achieved rate of any step
    x_slo  the highest offered rate of a step that passed the SLO (`Slo.passes`), or null

`PodPoint.from_steps` derives both, so the writer cannot get them wrong; the loader checks
that a file agrees with its own steps and names the first field that does not.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from planner.errors import InputError
from planner.limits import MAX_COUNT, MAX_NUMBER, pods_problem

SCHEMA = "planner-sweep/1"
_REL_TOL = 1e-6  # x_max and x_slo must match their steps to this relative tolerance


@dataclass(frozen=True)
class Slo:
    """The service-level objective a step is judged against."""

    p99_ms: float = 100.0
    max_error_rate: float = 0.01
    min_achieved_ratio: float = 0.99

    def passes(self, step: Step) -> bool:
        """p99 under the limit, error rate at most the limit, achieved ≥ ratio × offered."""
        return (
            step.requests > 0
            and step.p99_ms is not None
            and step.p99_ms < self.p99_ms
            and step.error_rate <= self.max_error_rate
            and step.achieved_rps >= self.min_achieved_ratio * step.offered_rps
        )


@dataclass(frozen=True)
class Step:
    """One offered rate held for ``duration_s``.

    ``requests`` were sent, ``errors`` of them failed (non-2xx, timeout, connection error),
    ``dropped`` were due but never sent; ``achieved_rps`` counts successful responses per
    second. Latencies are from the intended send time; None when no request completed.
    """

    offered_rps: float
    achieved_rps: float
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    errors: int
    dropped: int
    requests: int
    duration_s: float
    passed_slo: bool = False  # set by `PodPoint.from_steps`, checked by the loader

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0


@dataclass(frozen=True)
class PodPoint:
    """Everything measured at one pod count. ``complete`` is false for a pod count whose
    ladder was interrupted; the report leaves such points out (and says so)."""

    pods: int
    x_max: float
    x_slo: float | None
    steps: tuple[Step, ...] = ()
    complete: bool = True

    @classmethod
    def from_steps(
        cls, pods: int, steps: Iterable[Step], slo: Slo, *, complete: bool = True
    ) -> PodPoint:
        """Judge each step against ``slo`` and derive x_max and x_slo from them."""
        judged = tuple(replace(s, passed_slo=slo.passes(s)) for s in steps)
        if not judged:
            raise ValueError("a pod count needs at least one step")
        passed = [s.offered_rps for s in judged if s.passed_slo]
        return cls(
            pods=pods,
            x_max=max(s.achieved_rps for s in judged),
            x_slo=max(passed) if passed else None,
            steps=judged,
            complete=complete,
        )


@dataclass(frozen=True)
class Sweep:
    """A whole sweep. ``finished`` is None while it runs or after an interruption."""

    target: str
    slo: Slo
    started: str
    finished: str | None
    version: str
    points: tuple[PodPoint, ...] = ()
    scale_cmd: str | None = None
    corpus: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def with_point(self, point: PodPoint) -> Sweep:
        """This sweep with ``point`` added, replacing any earlier one at the same pod count."""
        kept = tuple(p for p in self.points if p.pods != point.pods)
        return replace(self, points=tuple(sorted((*kept, point), key=lambda p: p.pods)))


# ----------------------------------------------------------------------------- writing


def sweep_to_dict(sweep: Sweep) -> dict[str, Any]:
    return {
        "schema": SCHEMA,
        "target": sweep.target,
        "slo": {
            "p99_ms": sweep.slo.p99_ms,
            "max_error_rate": sweep.slo.max_error_rate,
            "min_achieved_ratio": sweep.slo.min_achieved_ratio,
        },
        "started": sweep.started,
        "finished": sweep.finished,
        "version": sweep.version,
        "scale_cmd": sweep.scale_cmd,
        "corpus": sweep.corpus,
        "extra": dict(sweep.extra),
        "points": [
            {
                "pods": p.pods,
                "complete": p.complete,
                "x_max": p.x_max,
                "x_slo": p.x_slo,
                "steps": [
                    {
                        "offered_rps": s.offered_rps,
                        "achieved_rps": s.achieved_rps,
                        "p50_ms": s.p50_ms,
                        "p95_ms": s.p95_ms,
                        "p99_ms": s.p99_ms,
                        "errors": s.errors,
                        "dropped": s.dropped,
                        "requests": s.requests,
                        "duration_s": s.duration_s,
                        "passed_slo": s.passed_slo,
                    }
                    for s in p.steps
                ],
            }
            for p in sweep.points
        ],
    }


def write_sweep(sweep: Sweep, path: str | Path) -> None:
    """Write atomically (a temporary file renamed over ``path``): a crash never leaves half a
    file, so an interrupted sweep always resumes from a valid one."""
    target = Path(path)
    text = json.dumps(sweep_to_dict(sweep), indent=2, allow_nan=False) + "\n"
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent or Path("."))
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# ----------------------------------------------------------------------------- reading


def load_sweep(path: str | Path) -> Sweep:
    """Read and validate a sweep file; any problem is an `InputError` naming file and field."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError("no such file", path=path) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read it ({_reason(exc)})", path=path) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(
            f"not valid JSON ({exc.msg})", path=path, where=f"line {exc.lineno}"
        ) from None
    return sweep_from_dict(data, path)


def sweep_from_dict(data: Any, path: str | Path = "") -> Sweep:
    v = _Validator(path)
    root = v.obj(data, "")
    schema = root.get("schema")
    if schema != SCHEMA:
        raise InputError(f"expected {SCHEMA!r}, found {schema!r}", path=path, where="schema")
    slo_data = v.obj(v.req(root, "slo", ""), "slo")
    slo = Slo(
        p99_ms=v.number(v.req(slo_data, "p99_ms", "slo"), "slo.p99_ms", positive=True),
        max_error_rate=v.number(
            v.req(slo_data, "max_error_rate", "slo"), "slo.max_error_rate", most=1.0
        ),
        min_achieved_ratio=v.number(
            slo_data.get("min_achieved_ratio", 0.99), "slo.min_achieved_ratio", most=1.0
        ),
    )
    points_data = v.req(root, "points", "")
    if not isinstance(points_data, list):
        raise InputError("expected a list", path=path, where="points")
    points: list[PodPoint] = []
    seen: dict[int, int] = {}
    for i, raw in enumerate(points_data):
        point = _point(v, raw, f"points[{i}]", slo)
        if point.pods in seen:
            raise InputError(
                f"{point.pods} pods already at points[{seen[point.pods]}]",
                path=path,
                where=f"points[{i}].pods",
            )
        seen[point.pods] = i
        points.append(point)
    extra = root.get("extra", {})
    return Sweep(
        target=v.string(v.req(root, "target", ""), "target"),
        slo=slo,
        started=v.timestamp(v.req(root, "started", ""), "started"),
        finished=None
        if root.get("finished") is None
        else v.timestamp(root["finished"], "finished"),
        version=v.string(v.req(root, "version", ""), "version"),
        points=tuple(points),
        scale_cmd=v.optional_string(root.get("scale_cmd"), "scale_cmd"),
        corpus=v.optional_string(root.get("corpus"), "corpus"),
        extra=v.obj(extra, "extra") if extra is not None else {},
    )


def _point(v: _Validator, raw: Any, where: str, slo: Slo) -> PodPoint:
    obj = v.obj(raw, where)
    pods = v.integer(v.req(obj, "pods", where), f"{where}.pods", least=1)
    if pods_problem(pods):
        raise v.fail(f"{where}.pods", str(pods_problem(pods)))
    complete = v.boolean(obj.get("complete", True), f"{where}.complete")
    x_max = v.number(v.req(obj, "x_max", where), f"{where}.x_max")
    x_slo_raw = v.req(obj, "x_slo", where)
    x_slo = None if x_slo_raw is None else v.number(x_slo_raw, f"{where}.x_slo")
    steps_raw = obj.get("steps", [])
    if not isinstance(steps_raw, list):
        raise InputError("expected a list", path=v.path, where=f"{where}.steps")
    steps = tuple(_step(v, s, f"{where}.steps[{j}]", slo) for j, s in enumerate(steps_raw))
    if steps:
        highest = max(s.achieved_rps for s in steps)
        if not _close(x_max, highest):
            raise InputError(
                f"{x_max:g} but its steps' highest achieved_rps is {highest:g}",
                path=v.path,
                where=f"{where}.x_max",
            )
        passed = [s.offered_rps for s in steps if s.passed_slo]
        expected = max(passed) if passed else None
        if (x_slo is None) != (expected is None) or (
            x_slo is not None and expected is not None and not _close(x_slo, expected)
        ):
            shown = "null" if expected is None else f"{expected:g}"
            raise InputError(
                f"{'null' if x_slo is None else f'{x_slo:g}'} but its steps say {shown} "
                "(the highest offered_rps of a step that passed the SLO)",
                path=v.path,
                where=f"{where}.x_slo",
            )
    elif complete:
        raise InputError(
            "a complete pod count needs at least one step", path=v.path, where=f"{where}.steps"
        )
    return PodPoint(pods=pods, x_max=x_max, x_slo=x_slo, steps=steps, complete=complete)


def _step(v: _Validator, raw: Any, where: str, slo: Slo) -> Step:
    obj = v.obj(raw, where)

    def num(key: str) -> float:
        return v.number(v.req(obj, key, where), f"{where}.{key}")

    def latency(key: str) -> float | None:
        value = v.req(obj, key, where)
        return None if value is None else v.number(value, f"{where}.{key}")

    def count(key: str) -> int:
        return v.integer(v.req(obj, key, where), f"{where}.{key}", least=0)

    step = Step(
        offered_rps=v.number(
            v.req(obj, "offered_rps", where), f"{where}.offered_rps", positive=True
        ),
        achieved_rps=num("achieved_rps"),
        p50_ms=latency("p50_ms"),
        p95_ms=latency("p95_ms"),
        p99_ms=latency("p99_ms"),
        errors=count("errors"),
        dropped=count("dropped"),
        requests=count("requests"),
        duration_s=v.number(v.req(obj, "duration_s", where), f"{where}.duration_s", positive=True),
        passed_slo=v.boolean(v.req(obj, "passed_slo", where), f"{where}.passed_slo"),
    )
    if step.errors > step.requests:
        raise InputError(
            f"{step.errors} errors out of {step.requests} requests",
            path=v.path,
            where=f"{where}.errors",
        )
    if step.passed_slo != slo.passes(step):
        verdict = "passes" if slo.passes(step) else "fails"
        raise InputError(
            f"{str(step.passed_slo).lower()}, but the step {verdict} the file's SLO "
            f"(p99 < {slo.p99_ms:g} ms, error rate ≤ {slo.max_error_rate:g}, "
            f"achieved ≥ {slo.min_achieved_ratio:g} × offered)",
            path=v.path,
            where=f"{where}.passed_slo",
        )
    return step


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=_REL_TOL, abs_tol=1e-9)


def _reason(exc: BaseException) -> str:
    return exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)


class _Validator:
    """Type checks that raise `InputError` naming the file and the field."""

    def __init__(self, path: str | Path) -> None:
        self.path = path

    def fail(self, where: str, message: str) -> InputError:
        return InputError(message, path=self.path, where=where or "top level")

    def obj(self, value: Any, where: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(where, f"expected an object, got {_show(value)}")
        return value

    def req(self, obj: Mapping[str, Any], key: str, where: str) -> Any:
        if key not in obj:
            raise self.fail(f"{where}.{key}" if where else key, "missing")
        return obj[key]

    def number(
        self, value: Any, where: str, *, positive: bool = False, most: float | None = None
    ) -> float:
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or (isinstance(value, float) and not math.isfinite(value))
        ):
            raise self.fail(where, f"expected a number, got {_show(value)}")
        if abs(value) > MAX_NUMBER:  # before any float conversion: an int may exceed a float
            raise self.fail(where, f"{_show(value)}: beyond {MAX_NUMBER:g}, not a measurement")
        if value < 0 or (positive and value == 0):
            raise self.fail(where, f"{value:g}: must be {'> 0' if positive else '≥ 0'}")
        if most is not None and value > most:
            raise self.fail(where, f"{value:g}: must be at most {most:g}")
        return float(value)

    def integer(self, value: Any, where: str, *, least: int) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(where, f"expected a whole number, got {_show(value)}")
        if value < least:
            raise self.fail(where, f"{value}: must be at least {least}")
        if value > MAX_COUNT:
            raise self.fail(where, f"{_show(value)}: beyond {MAX_COUNT:,}, not a measurement")
        return value

    def boolean(self, value: Any, where: str) -> bool:
        if not isinstance(value, bool):
            raise self.fail(where, f"expected true or false, got {_show(value)}")
        return value

    def string(self, value: Any, where: str) -> str:
        if not isinstance(value, str):
            raise self.fail(where, f"expected a string, got {_show(value)}")
        return value

    def optional_string(self, value: Any, where: str) -> str | None:
        return None if value is None else self.string(value, where)

    def timestamp(self, value: Any, where: str) -> str:
        text = self.string(value, where)
        try:
            datetime.fromisoformat(text)
        except ValueError:
            raise self.fail(where, f"{text!r} is not an ISO-8601 time") from None
        return text


def _show(value: Any) -> str:
    if value is None:
        return "null"
    text = (
        json.dumps(value) if isinstance(value, str | int | float | bool) else type(value).__name__
    )
    return text if len(text) <= 40 else text[:37] + "..."
