"""The sweep runner: for each pod count, scale, climb a ladder of offered rates, record it.

    for pods in config.pods:
        skip it if the file (with --resume) already holds it complete
        scale(pods)                       the scale command and readiness, or the sandbox
        while (rate := ladder.next_rate(history)) is not None:
            step = measure(rate)          one open-model run at a fixed rate (replay)
            write the file                the pod count marked complete: false
        write the file                    the pod count complete: x_max and x_slo derived

The file is written (atomically) after every step, so an interruption of any kind, even a
kill, loses at most the step in progress; `--resume` skips the complete pod counts and
continues the ladder of an incomplete one from its recorded steps (the ladder is a pure
function of them, planner/ladder.py). Ctrl-C writes what was measured and raises
`SweepInterrupted`; a failed scale command, a target that never becomes ready or a replay
failure write it too and raise `SweepError`.

``measure`` and ``scale`` are passed in: `planner.stepper.ReplayStepper` and
`planner.scaling.CommandScaler` (or `planner.embedded.EmbeddedSandbox.scale`) in the CLI,
small fakes in the tests. This module sends nothing itself.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

from capture.errors import EXIT_BAD_INPUT, EXIT_FAILED
from planner import __version__
from planner.errors import InputError
from planner.ladder import BLIND_FACTOR, HINTED_FACTOR, Ladder, hinted_start
from planner.sweep_format import PodPoint, Slo, Step, Sweep, load_sweep, write_sweep


class Measurement(NamedTuple):
    """One step as measured, and why it may not be the target's doing (or None)."""

    step: Step
    note: str | None = None


Measure = Callable[[float], Measurement]
"""Hold an offered rate for one step and measure it."""
Scale = Callable[[int], None]
"""Set the pod count and return once the target is ready; `ScaleError` if it cannot."""


class ScaleError(Exception):
    """Scaling failed: the command exited non-zero or timed out, or readiness never came."""


class StepFailed(Exception):
    """The load generator could not run a step (``code``: 2 bad input, 1 a worker failed)."""

    def __init__(self, message: str, code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.code = code


class StepInterrupted(Exception):
    """Ctrl-C during a step: the step is incomplete and is not recorded."""


class SweepError(Exception):
    """The sweep stopped on a failure; ``sweep`` is what was measured (and written)."""

    def __init__(self, message: str, code: int, sweep: Sweep) -> None:
        super().__init__(message)
        self.code = code
        self.sweep = sweep


class SweepInterrupted(Exception):
    """Ctrl-C: ``sweep`` is what was measured (and written); ``pods`` the count in progress."""

    def __init__(self, sweep: Sweep, pods: int | None) -> None:
        super().__init__("interrupted")
        self.sweep = sweep
        self.pods = pods


@dataclass(frozen=True)
class SweepConfig:
    """What to measure and how. ``extra`` is recorded in the file (settings, the sandbox)."""

    pods: tuple[int, ...]
    out: Path
    target: str
    slo: Slo = field(default_factory=Slo)
    start_rate: float = 50.0
    precision: float = 0.05
    max_steps: int = 12
    min_rate: float = 1.0
    max_rate: float | None = None
    resume: bool = False
    overwrite: bool = False
    scale_cmd: str | None = None
    corpus: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StepEvent:
    """What ``on_step`` is told after each step: the step judged against the SLO."""

    pods: int
    number: int  # 1-based, within the pod count (resumed steps included)
    step: Step
    note: str | None


@dataclass(frozen=True)
class PodEvent:
    """What ``on_pods`` is told: ``kind`` is start, resume, skip or done."""

    kind: str
    pods: int
    point: PodPoint | None = None
    start_rate: float | None = None


def ladder_for(config: SweepConfig, sweep: Sweep, pods: int) -> Ladder:
    """The ladder at ``pods``: from a measured pod count's x_slo if there is one (a hinted
    start, fine ramp), else from ``config.start_rate`` (blind, coarse ramp)."""
    measured = [
        (p.pods, p.x_slo)
        for p in sweep.points
        if p.complete and p.x_slo is not None and p.pods != pods
    ]
    hint = hinted_start(measured, pods)
    return Ladder(
        start=config.start_rate if hint is None else hint,
        factor=BLIND_FACTOR if hint is None else HINTED_FACTOR,
        precision=config.precision,
        max_steps=config.max_steps,
        min_rate=config.min_rate,
        max_rate=config.max_rate,
    )


def history(steps: Sequence[Step], slo: Slo) -> list[tuple[float, bool]]:
    """The ladder's view of the steps: (offered rate, passed the SLO)."""
    return [(s.offered_rps, slo.passes(s)) for s in steps]


def begin(config: SweepConfig, now: str | None = None) -> Sweep:
    """A new sweep, or (``config.resume``) the file's, checked to be the same experiment.

    Refuses (InputError) an existing file without --resume or --overwrite, a missing file
    with --resume, and a file measured against another SLO, target, corpus or sandbox.
    """
    out = config.out
    now = now or _now()
    if config.resume:
        if not out.exists():
            raise InputError("no such file to resume (without --resume: a new sweep)", path=out)
        previous = load_sweep(out)
        _check_same_experiment(previous, config)
        return replace(
            previous,
            finished=None,
            version=__version__,
            extra={**previous.extra, **config.extra},
        )
    if out.exists() and not config.overwrite:
        raise InputError(
            "already exists: --resume continues that sweep, --overwrite replaces it", path=out
        )
    if not out.parent.is_dir():
        raise InputError(f"cannot write it (no directory {out.parent})", path=out)
    return Sweep(
        target=config.target,
        slo=config.slo,
        started=now,
        finished=None,
        version=__version__,
        scale_cmd=config.scale_cmd,
        corpus=config.corpus,
        extra=dict(config.extra),
    )


def _check_same_experiment(previous: Sweep, config: SweepConfig) -> None:
    out = config.out
    if previous.slo != config.slo:
        raise InputError(
            f"the file was judged against {_describe_slo(previous.slo)}; this sweep asks for "
            f"{_describe_slo(config.slo)}: resume with the same --slo and --max-error-rate, "
            "or start a new --out",
            path=out,
            where="slo",
        )
    sandbox_then, sandbox_now = previous.extra.get("sandbox"), config.extra.get("sandbox")
    if sandbox_then != sandbox_now:
        raise InputError(
            f"the file measured {_describe_system(previous)}; this sweep measures "
            f"{_describe_system(config)}: resume with the same settings, or start a new --out",
            path=out,
            where="extra.sandbox",
        )
    if sandbox_now is None and previous.target != config.target:
        raise InputError(
            f"the file measured {previous.target}, this sweep targets {config.target}: "
            "resume against the same target, or start a new --out",
            path=out,
            where="target",
        )
    if previous.corpus != config.corpus:
        raise InputError(
            f"the file replayed {previous.corpus!r}, this sweep replays {config.corpus!r}: "
            "resume with the same --corpus, or start a new --out",
            path=out,
            where="corpus",
        )


def _describe_slo(slo: Slo) -> str:
    return (
        f"p99 < {slo.p99_ms:g} ms, error rate ≤ {slo.max_error_rate:g}, "
        f"achieved ≥ {slo.min_achieved_ratio:g} × offered"
    )


def _describe_system(obj: Sweep | SweepConfig) -> str:
    sandbox = obj.extra.get("sandbox")
    if not sandbox:
        return obj.target
    return "the embedded sandbox (" + ", ".join(f"{k} {v}" for k, v in sandbox.items()) + ")"


def run_sweep(
    config: SweepConfig,
    *,
    measure: Measure,
    scale: Scale,
    on_step: Callable[[StepEvent], None] | None = None,
    on_pods: Callable[[PodEvent], None] | None = None,
) -> Sweep:
    """Measure every pod count in ``config.pods`` (see the module docstring); the sweep.

    Raises `InputError` before measuring anything (a file that cannot be resumed),
    `SweepInterrupted` on Ctrl-C and `SweepError` on a failure, both after writing.
    """
    sweep = begin(config)
    slo = sweep.slo
    write_sweep(sweep, config.out)
    current: int | None = None
    try:
        for pods in config.pods:
            current = pods
            earlier = _point(sweep, pods)
            if earlier is not None and earlier.complete:
                _emit(on_pods, PodEvent("skip", pods, earlier))
                continue
            steps = list(earlier.steps) if earlier is not None else []
            ladder = ladder_for(config, sweep, pods)
            kind = "resume" if steps else "start"
            _emit(on_pods, PodEvent(kind, pods, earlier, ladder.next_rate(history(steps, slo))))
            scale(pods)
            while (rate := ladder.next_rate(history(steps, slo))) is not None:
                measured = measure(rate)
                steps.append(measured.step)
                point = PodPoint.from_steps(pods, steps, slo, complete=False)
                sweep = sweep.with_point(point)
                write_sweep(sweep, config.out)
                _emit(on_step, StepEvent(pods, len(steps), point.steps[-1], measured.note))
            point = PodPoint.from_steps(pods, steps, slo, complete=True)
            sweep = sweep.with_point(point)
            write_sweep(sweep, config.out)
            _emit(on_pods, PodEvent("done", pods, point))
            current = None
    except (KeyboardInterrupt, StepInterrupted):
        raise SweepInterrupted(sweep, current) from None
    except ScaleError as exc:
        raise SweepError(str(exc), EXIT_BAD_INPUT, sweep) from None
    except StepFailed as exc:
        raise SweepError(str(exc), exc.code, sweep) from None
    sweep = replace(sweep, finished=_now())
    write_sweep(sweep, config.out)
    return sweep


def _point(sweep: Sweep, pods: int) -> PodPoint | None:
    return next((p for p in sweep.points if p.pods == pods), None)


def _emit(callback: Callable[[Any], None] | None, event: Any) -> None:
    if callback is not None:
        callback(event)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
