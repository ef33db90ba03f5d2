"""A run's phases: named spans of time, from its stages or given by hand.

The offered rate of a staged run is piecewise linear: ``--rate R0 --stage D1:R1 --stage
D2:R2 ...`` starts at R0 (0 without ``--rate``) and ramps linearly to R1 over D1, then to R2
over D2 (k6's ramping-arrival-rate). Each stage is one phase (``stage 1``, ``stage 2``, ...),
except in a spike-shaped run, whose phases are named as the guide's spike test names them:

    baseline   every stage before the ramp-up (some load, below the peak)
    ramp-up    the stage that rises to the run's peak rate
    spike      the stages that hold the peak
    drop       the stage after them, falling below the peak
    recovery   every later stage (never back at the peak); may be absent

A run is spike-shaped when its stages fit that pattern exactly. Stages are read from the
results' ``meta.stages`` when present (``[{"duration_s", "target_rps"}]``, from
``meta.rate``), else from ``--rate``/``--stage`` in ``meta.command_line``; the stages of
``meta.scenarios`` (each ``{"name", "rate" or "start_vus", "start_s", "stages"}``, a stage's
level ``target_rps`` or, for VU executors, ``target_vus``) add up into one curve.
A run without stages is one phase, ``run``. ``--phases NAME=START-END,...`` overrides all.
"""

from __future__ import annotations

import itertools
import math
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from capture.units import parse_duration_ns, parse_rate

SPIKE_NAMES = ("baseline", "ramp-up", "spike", "drop", "recovery")


@dataclass(frozen=True)
class Phase:
    """A named span [start_s, end_s) of the run; rates are the offered curve's ends, when
    the phase comes from stages."""

    name: str
    start_s: float
    end_s: float
    rate_from: float | None = None
    rate_to: float | None = None

    def seconds(self, run_seconds: int) -> tuple[int, int]:
        """The whole seconds [a, b) the phase's figures are read over (ends rounded)."""
        a = min(max(round(self.start_s), 0), run_seconds)
        return a, min(max(round(self.end_s), a), run_seconds)


@dataclass(frozen=True)
class Phases:
    phases: tuple[Phase, ...]
    source: str  # "--phases", "stages", "scenario stages" or "whole run"
    spike_shaped: bool
    notes: tuple[str, ...] = ()

    def named(self, name: str) -> Phase | None:
        return next((p for p in self.phases if p.name == name), None)


Curve = list[tuple[float, float]]
"""Breakpoints (time s, offered rate /s) of a piecewise linear offered rate."""


def curve_of_stages(
    start_rate: float, stages: Sequence[tuple[float, float]], at: float = 0.0
) -> Curve:
    """The breakpoints of ``start_rate`` then each (duration_s, target rate) stage."""
    points = [(at, start_rate)]
    t = at
    for duration, rate in stages:
        t += duration
        points.append((t, rate))
    return points


def sum_curves(curves: Sequence[Curve]) -> Curve:
    """The sum of piecewise linear curves (each 0 outside its span), as one curve."""
    times = sorted({t for c in curves for t, _ in c})
    return [(t, sum(_value(c, t) for c in curves)) for t in times]


def _value(curve: Curve, t: float) -> float:
    if not curve or t < curve[0][0] or t > curve[-1][0]:
        return 0.0
    for (t0, r0), (t1, r1) in itertools.pairwise(curve):
        if t0 <= t <= t1:
            return r0 if t1 == t0 else r0 + (r1 - r0) * (t - t0) / (t1 - t0)
    return curve[-1][1]


def _segments(curve: Curve) -> list[Phase]:
    return [
        Phase("", t0, t1, r0, r1) for (t0, r0), (t1, r1) in itertools.pairwise(curve) if t1 > t0
    ]


def _same(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)


def spike_phases(curve: Curve) -> list[Phase] | None:
    """The five phases of a spike-shaped curve, or None when it is not one."""
    segs = _segments(curve)
    if not segs:
        return None
    peak = max(max(s.rate_from or 0.0, s.rate_to or 0.0) for s in segs)
    if peak <= 0:
        return None
    at_peak = [_same(s.rate_from or 0.0, peak) and _same(s.rate_to or 0.0, peak) for s in segs]
    if True not in at_peak:
        return None
    h0 = at_peak.index(True)
    h1 = h0
    while h1 + 1 < len(segs) and at_peak[h1 + 1]:
        h1 += 1
    if h0 < 2 or h1 + 1 >= len(segs):
        return None  # no baseline before the ramp-up, or no drop after the hold
    ramp, drop = segs[h0 - 1], segs[h1 + 1]
    baseline, recovery = segs[: h0 - 1], segs[h1 + 2 :]
    base_rates = [r for s in baseline for r in (s.rate_from or 0.0, s.rate_to or 0.0)]
    after = [r for s in recovery for r in (s.rate_from or 0.0, s.rate_to or 0.0)]
    if not (
        (ramp.rate_from or 0.0) < peak
        and (drop.rate_to or 0.0) < peak
        and max(base_rates) > 0
        and max(base_rates) < peak
        and not any(_same(r, peak) or r > peak for r in after)
    ):
        return None
    out = [
        Phase(
            "baseline",
            baseline[0].start_s,
            baseline[-1].end_s,
            baseline[0].rate_from,
            baseline[-1].rate_to,
        ),
        Phase("ramp-up", ramp.start_s, ramp.end_s, ramp.rate_from, ramp.rate_to),
        Phase("spike", segs[h0].start_s, segs[h1].end_s, peak, peak),
        Phase("drop", drop.start_s, drop.end_s, drop.rate_from, drop.rate_to),
    ]
    if recovery:
        out.append(
            Phase(
                "recovery",
                recovery[0].start_s,
                recovery[-1].end_s,
                recovery[0].rate_from,
                recovery[-1].rate_to,
            )
        )
    return out


def stage_phases(curve: Curve) -> list[Phase]:
    """One phase per segment: ``stage 1``, ``stage 2``, ..."""
    return [
        Phase(f"stage {i}", s.start_s, s.end_s, s.rate_from, s.rate_to)
        for i, s in enumerate(_segments(curve), start=1)
    ]


def parse_phases(text: str) -> list[Phase]:
    """``NAME=START-END,...`` (durations: 90, 90s, 1m30s, 250ms) -> phases; ValueError."""
    phases: list[Phase] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            raise ValueError(f"{text!r}: an empty phase (write NAME=START-END,...)")
        name, sep, span = part.partition("=")
        name = name.strip()
        if not sep or not name:
            raise ValueError(f"{part!r} is not a phase: write NAME=START-END, e.g. spike=60-90")
        start, dash, end = span.partition("-")
        if not dash:
            raise ValueError(f"{part!r}: write the span as START-END, e.g. {name}=1m-2m30s")
        try:
            a, b = parse_duration_ns(start) / 1e9, parse_duration_ns(end) / 1e9
        except ValueError as exc:
            raise ValueError(f"{part!r}: {exc}") from None
        if not b > a:
            raise ValueError(f"{part!r}: the phase must end after it starts")
        if any(p.name == name for p in phases):
            raise ValueError(f"{part!r}: phase {name!r} is named twice")
        phases.append(Phase(name, a, b))
    return sorted(phases, key=lambda p: (p.start_s, p.end_s))


def _rate(text: str) -> float:
    return 0.0 if text.strip() in ("0", "0/s", "0.0") else parse_rate(text)


def stages_from_command(command: str) -> tuple[float, list[tuple[float, float]]] | None:
    """(start rate, [(duration_s, rate)]) of a ``replay run`` command's --rate and --stage
    options; None when it has no --stage (or cannot be read)."""
    try:
        words = shlex.split(command)
    except ValueError:
        return None
    rate, stages = 0.0, []
    try:
        for i, word in enumerate(words):
            value = None
            for option in ("--rate", "--stage"):
                if word == option and i + 1 < len(words):
                    value = (option, words[i + 1])
                elif word.startswith(option + "="):
                    value = (option, word[len(option) + 1 :])
            if value is None:
                continue
            if value[0] == "--rate":
                rate = _rate(value[1])
            else:
                duration, _, target = value[1].partition(":")
                stages.append((parse_duration_ns(duration) / 1e9, _rate(target)))
    except ValueError:
        return None
    return (rate, stages) if stages else None


def _meta_stages(value: Any, start: Any) -> Curve | None:
    if not isinstance(value, list) or not value:
        return None
    stages = []
    for s in value:
        if not isinstance(s, Mapping):
            return None
        # an arrival-rate stage names its rate, a VU stage its VUs: either gives the shape
        d, r = s.get("duration_s"), s.get("target_rps", s.get("target_vus"))
        if not (isinstance(d, int | float) and isinstance(r, int | float)):
            return None
        if isinstance(d, bool) or isinstance(r, bool):
            return None
        stages.append((float(d), float(r)))
    return curve_of_stages(float(start) if isinstance(start, int | float) else 0.0, stages)


def run_curve(meta: Mapping[str, Any]) -> tuple[Curve | None, str, list[str]]:
    """The run's offered-rate curve from its metadata, where it came from, and notes."""
    scenarios = meta.get("scenarios")
    if isinstance(scenarios, list) and scenarios:
        curves = []
        for sc in scenarios:
            if not isinstance(sc, Mapping):
                continue
            start = sc.get("start_s", 0.0)
            curve = _meta_stages(sc.get("stages"), sc.get("rate", sc.get("start_vus")))
            if curve is not None:
                at = float(start) if isinstance(start, int | float) else 0.0
                curves.append([(t + at, r) for t, r in curve])
        if curves:
            return sum_curves(curves), "scenario stages", []
    curve = _meta_stages(meta.get("stages"), meta.get("rate"))
    if curve is not None:
        return curve, "stages", []
    commands = [c for c in str(meta.get("command_line") or "").split(" ; ") if c.strip()]
    parsed = [stages_from_command(c) for c in commands]
    found = [p for p in parsed if p is not None]
    if not found:
        return None, "whole run", []
    if len(found) != len(parsed) or any(p != found[0] for p in found):
        return None, "whole run", ["the merged runs have different stages: one phase, run"]
    return curve_of_stages(*found[0]), "stages", []


def run_phases(meta: Mapping[str, Any], duration_s: float, given: str | None = None) -> Phases:
    """The phases of a run: ``given`` (--phases), else from its stages, else one phase."""
    notes: list[str] = []
    if given is not None:
        phases = []
        for p in parse_phases(given):
            if p.start_s >= duration_s:
                raise ValueError(
                    f"phase {p.name!r} starts at {p.start_s:g} s, after the run's end "
                    f"({duration_s:g} s)"
                )
            if p.end_s > duration_s:
                notes.append(f"phase {p.name!r} cut at the run's end ({duration_s:g} s)")
                p = Phase(p.name, p.start_s, duration_s)
            phases.append(p)
        names = {p.name for p in phases}
        return Phases(tuple(phases), "--phases", {"baseline", "spike"} <= names, tuple(notes))
    curve, source, notes = run_curve(meta)
    if curve is None:
        return Phases((Phase("run", 0.0, duration_s),), "whole run", False, tuple(notes))
    curve = _clip(curve, duration_s)
    shaped = spike_phases(curve)
    if shaped is not None:
        return Phases(tuple(shaped), source, True, tuple(notes))
    return Phases(tuple(stage_phases(curve)), source, False, tuple(notes))


def _clip(curve: Curve, duration_s: float) -> Curve:
    """The curve up to the run's end (a run stopped early ends its last stage there)."""
    if duration_s <= 0 or curve[-1][0] <= duration_s + 1e-9:
        return curve
    kept = [(t, r) for t, r in curve if t < duration_s]
    kept.append((duration_s, _value(curve, duration_s)))
    return kept
