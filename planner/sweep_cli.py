"""`planner sweep` behind its options: values parsed, combinations checked, the target opened,
progress printed. The measuring is `planner.sweep.run_sweep`; this module only wires it.

Progress is one line per step on stderr (pods, offered, achieved, p99, errors, dropped,
pass/fail), plus a line when a pod count starts and ends; the summary goes to stdout.
SIGTERM is handled as Ctrl-C while the command runs (and only then).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TextIO

import click

from capture.cli_units import ParsedType
from capture.errors import EXIT_INTERRUPTED
from capture.units import NS, format_duration_ns, parse_duration_ns
from planner.errors import InputError
from planner.sweep import (
    PodEvent,
    StepEvent,
    SweepConfig,
    SweepError,
    SweepInterrupted,
)
from planner.sweep_format import Slo, Sweep
from replay.signals import Stops, sigterm_as_interrupt

# ----------------------------------------------------------------------------- values


def parse_pods(text: str) -> tuple[int, ...]:
    """'1,2,3,4,6,8' -> (1, 2, 3, 4, 6, 8), in the order given; no repeats."""
    pods: list[int] = []
    for raw in text.split(","):
        word = raw.strip()
        if not word.isdigit() or int(word) < 1:
            raise ValueError(f"{word!r} in {text!r} is not a pod count (whole numbers ≥ 1: 1,2,4)")
        if int(word) in pods:
            raise ValueError(f"{text!r} names {int(word)} pods twice")
        pods.append(int(word))
    return tuple(pods)


def parse_slo_p99_ms(text: str) -> float:
    """'p99<100ms' (also 'p(99) < 0.1s') -> 100.0 milliseconds."""
    metric, sep, limit = text.replace(" ", "").partition("<")
    if not sep or metric.lower() not in ("p99", "p(99)"):
        raise ValueError(f"{text!r}: write p99<LIMIT, e.g. p99<100ms (a sweep judges p99)")
    if limit.replace(".", "", 1).isdigit():
        raise ValueError(f"{text!r}: give the limit a unit, e.g. p99<{limit}ms")
    ns = parse_duration_ns(limit)
    if ns <= 0:
        raise ValueError(f"{text!r}: the limit must be above zero")
    return ns / 1e6


def parse_fraction(text: str) -> float:
    """'0.01' or '1%' -> 0.01, from 0 to 1."""
    s = text.strip()
    try:
        value = float(s[:-1]) / 100 if s.endswith("%") else float(s)
    except ValueError:
        raise ValueError(f"{text!r} is not a fraction (examples: 0.01, 1%)") from None
    if not 0 <= value <= 1:
        raise ValueError(f"{text!r} is not between 0 and 1 (0% and 100%)")
    return value


def parse_whole_seconds(text: str) -> int:
    """A duration in whole seconds (replay measures per second): '6s', '1m', '0'."""
    ns = parse_duration_ns(text)
    if ns % NS:
        raise ValueError(f"{text!r}: use whole seconds (replay measures each second)")
    return ns // NS


PODS = ParsedType("list", parse_pods)
SLO_P99 = ParsedType("p99<limit", parse_slo_p99_ms)
FRACTION = ParsedType("fraction", parse_fraction)
SECONDS = ParsedType("seconds", parse_whole_seconds)


# ----------------------------------------------------------------------------- the command


@dataclass(frozen=True)
class SweepSettings:
    """`planner sweep`'s options, parsed (durations in ns or whole seconds, as named)."""

    out: Path
    target: str | None = None
    sandbox: bool = False
    pod_counts: tuple[int, ...] = (1, 2, 3, 4, 6, 8)
    scale_cmd: str | None = None
    shell: bool = False
    ready_url: str | None = None
    ready_timeout: int = 300 * NS
    p99_ms: float = 100.0
    max_error_rate: float = 0.01
    corpus: str = "ingestion"
    api_key: str | None = None
    project_id: str | None = None
    step_s: int = 6
    warmup_s: int = 2
    start_rate: float = 50.0
    max_rate: float | None = None
    precision: float = 0.05
    max_steps: int = 12
    workers: int = 1
    max_inflight: int = 1000
    timeout_ns: int = 5 * NS
    pod_rate: float | None = None
    sigma: float | None = None
    kappa: float | None = None
    queue_depth: int | None = None
    resume: bool = False
    overwrite: bool = False


def run_sweep_command(s: SweepSettings, err: TextIO | None = None) -> int:
    """Check the options, open the target, run the sweep; the exit status.

    Bad input raises `InputError` (the CLI prints it as one line, exit 2); failures after the
    first measurement are reported here, with what the file keeps."""
    err = err or sys.stderr
    # SIGTERM is Ctrl-C: what was measured is written, the embedded sandbox and replay's
    # workers are stopped (the default action would orphan them)
    with sigterm_as_interrupt() as stops:
        try:
            return _command(s, err, stops)
        except KeyboardInterrupt:
            err.write("\nplanner: interrupted before the first measurement\n")
            return EXIT_INTERRUPTED


def _command(s: SweepSettings, err: TextIO, stops: Stops) -> int:
    from planner.embedded import SandboxModel

    sandbox = bool(s.sandbox)
    model_options = {k: getattr(s, k) for k in ("pod_rate", "sigma", "kappa", "queue_depth")}
    _check_combination(s, sandbox, model_options)
    model: SandboxModel | None = None
    if sandbox:
        model = SandboxModel(**{k: v for k, v in model_options.items() if v is not None})
        try:
            model.emulation(max(s.pod_counts))
        except ValueError as exc:
            raise InputError(str(exc), path="--sandbox") from None
    precision = s.precision
    if not 0 < precision < 1:
        raise InputError(f"{precision:g}: must be above 0 and below 1", path="--precision")
    if s.max_rate is not None and s.max_rate < s.start_rate:
        raise InputError("is below --start-rate", path="--max-rate")
    plan = _step_plan(s)
    out: Path = s.out
    extra: dict[str, Any] = {
        "step_s": s.step_s,
        "warmup_s": s.warmup_s,
        "precision": precision,
        "start_rate": s.start_rate,
        "workers": s.workers,
        "arrival": "uniform",
    }
    if model is not None:
        extra["sandbox"] = model.as_extra()
    config = SweepConfig(
        pods=s.pod_counts,
        out=out,
        target=s.target or "",
        slo=Slo(p99_ms=s.p99_ms, max_error_rate=s.max_error_rate),
        start_rate=s.start_rate,
        precision=precision,
        max_steps=s.max_steps,
        max_rate=s.max_rate,
        resume=s.resume,
        overwrite=s.overwrite,
        scale_cmd=s.scale_cmd,
        corpus=s.corpus,
        extra=extra,
    )
    if model is not None:
        return _sweep_sandbox(config, model, plan, s, err, stops)
    return _sweep_target(config, plan, s, err, stops)


def _check_combination(s: SweepSettings, sandbox: bool, model: dict[str, Any]) -> None:
    if s.resume and s.overwrite:
        raise InputError("and --overwrite cannot be combined", path="--resume")
    if sandbox:
        for flag, key in (
            ("--target", "target"),
            ("--scale-cmd", "scale_cmd"),
            ("--ready-url", "ready_url"),
        ):
            if getattr(s, key) is not None:
                raise InputError("not with --sandbox (the sweep scales the sandbox)", path=flag)
        return
    given = [k for k, v in model.items() if v is not None]
    if given:
        flag = "--" + given[0].replace("_", "-")
        raise InputError("sets the emulated sandbox: it needs --sandbox", path=flag)
    if s.target is None:
        raise InputError("give --target URL (with --scale-cmd), or --sandbox", path="planner sweep")
    if s.scale_cmd is None and len(s.pod_counts) > 1:
        raise InputError(
            "missing: with several pod counts the sweep must set each one "
            "(e.g. --scale-cmd 'kubectl scale deploy/api --replicas={pods}')",
            path="--scale-cmd",
        )
    if s.scale_cmd is not None:
        from planner.scaling import check_command

        try:
            check_command(s.scale_cmd, shell=s.shell)
        except ValueError as exc:
            raise InputError(str(exc), path="--scale-cmd") from None
    elif s.shell:
        raise InputError("applies to --scale-cmd, which is not given", path="--shell")


def _step_plan(s: SweepSettings) -> Any:
    from planner.stepper import make_step_plan

    try:
        return make_step_plan(
            s.corpus,
            workers=s.workers,
            max_inflight=s.max_inflight,
            timeout_ns=s.timeout_ns,
        )
    except ValueError as exc:
        raise InputError(str(exc), path="--corpus") from None


def _sweep_target(
    config: SweepConfig, plan: Any, s: SweepSettings, err: TextIO, stops: Stops
) -> int:
    from planner.scaling import CommandScaler
    from planner.stepper import ReplayStepper, open_user_target

    assert s.target is not None  # (checked: no --sandbox without --target)
    try:
        target = open_user_target(s.target, s.api_key, s.project_id)
    except ValueError as exc:
        raise InputError(str(exc), path="--target") from None
    scaler = CommandScaler(
        cmd=s.scale_cmd,
        shell=s.shell,
        ready_url=s.ready_url,
        timeout_s=s.ready_timeout / NS,
        target_url=s.target,
    )
    stepper = ReplayStepper(target, plan, warmup_s=s.warmup_s, step_s=s.step_s)
    return _run(config, stepper, scaler, err, stops, describe=None)


def _sweep_sandbox(
    config: SweepConfig, model: Any, plan: Any, s: SweepSettings, err: TextIO, stops: Stops
) -> int:
    from planner.embedded import EmbeddedSandbox
    from planner.stepper import ReplayStepper
    from planner.sweep import begin

    begin(config)  # refuse a file that cannot be written or resumed before starting anything
    try:
        sandbox = EmbeddedSandbox.start(model, config.pods[0])
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise InputError(first, path="--sandbox") from None
    with sandbox:
        stops.check()  # (a stop lost while the sandbox was forked)
        err.write(
            f"sandbox: {sandbox.url} (pid {sandbox.pid}), emulating X(N) = {model.pod_rate:g}·N / "
            f"(1 + {model.sigma:g}(N−1) + {model.kappa:g}N(N−1))\n"
        )
        stepper = ReplayStepper(sandbox.target, plan, warmup_s=s.warmup_s, step_s=s.step_s)
        config = replace(config, target=sandbox.url)
        return _run(config, stepper, sandbox.scale, err, stops, describe=model.throughput)


def _run(
    config: SweepConfig,
    stepper: Callable[[float], Any],
    scale: Callable[[int], None],
    err: TextIO,
    stops: Stops,
    describe: Callable[[int], float] | None,
) -> int:
    from planner.sweep import run_sweep

    def measure(rate: float) -> Any:
        stops.check()
        measured = stepper(rate)
        stops.check()  # (a stop lost while the step forked its workers: not recorded)
        return measured

    progress = _Progress(err, config, describe)
    try:
        result = run_sweep(
            config, measure=measure, scale=scale, on_step=progress.step, on_pods=progress.pods
        )
    except SweepInterrupted as exc:
        err.write(f"\nplanner: interrupted; {_kept(exc.sweep, config.out)}\n")
        return EXIT_INTERRUPTED
    except SweepError as exc:
        err.write(f"planner: {exc}; {_kept(exc.sweep, config.out)}\n")
        return exc.code
    _summary(result, config.out, time.monotonic() - progress.started, describe)
    return 0


def _kept(sweep: Sweep, out: Path) -> str:
    complete = [p.pods for p in sweep.points if p.complete]
    partial = [p for p in sweep.points if not p.complete]
    parts = [_count(len(complete), "complete pod count")]
    parts += [f"{_count(len(p.steps), 'step')} at {p.pods} pods" for p in partial]
    return f"{out} keeps {' and '.join(parts)}: continue with --resume"


class _Progress:
    """One line per step, and per pod count's start and end, on stderr."""

    def __init__(
        self, err: TextIO, config: SweepConfig, describe: Callable[[int], float] | None
    ) -> None:
        self.err = err
        self.config = config
        self.describe = describe
        self.started = time.monotonic()
        self.pod_started = self.started

    def _line(self, text: str) -> None:
        elapsed = format_duration_ns((time.monotonic() - self.started) * NS)
        self.err.write(f"[{elapsed:>6}] {text}\n")
        self.err.flush()

    def pods(self, event: PodEvent) -> None:
        n = event.pods
        if event.kind == "skip" and event.point is not None:
            self._line(f"{n} pods: complete in {self.config.out}, skipped ({_xs(event.point)})")
        elif event.kind == "start":
            self.pod_started = time.monotonic()
            self._line(f"{n} pods: scaling; ladder starts at {_rate(event.start_rate)}")
        elif event.kind == "resume" and event.point is not None:
            self.pod_started = time.monotonic()
            self._line(
                f"{n} pods: resuming after {_count(len(event.point.steps), 'step')}; "
                f"next {_rate(event.start_rate)}"
            )
        elif event.kind == "done" and event.point is not None:
            took = format_duration_ns((time.monotonic() - self.pod_started) * NS)
            emulated = f"; emulated X({n}) = {self.describe(n):,.1f}/s" if self.describe else ""
            steps = len(event.point.steps)
            self._line(f"{n} pods: {_xs(event.point)} in {steps} steps, {took}{emulated}")

    def step(self, event: StepEvent) -> None:
        s = event.step
        p99 = "-" if s.p99_ms is None else f"{s.p99_ms:,.1f} ms"
        verdict = "pass" if s.passed_slo else "FAIL"
        note = f"  ({event.note})" if event.note else ""
        self._line(
            f"{event.pods} pods  step {event.number:>2}  offered {s.offered_rps:>9,.1f}/s  "
            f"achieved {s.achieved_rps:>9,.1f}/s  p99 {p99:>10}  errors {s.error_rate:6.2%}  "
            f"dropped {s.dropped}  {verdict}{note}"
        )


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _rate(rate: float | None) -> str:
    return "-" if rate is None else f"{rate:,.1f}/s"


def _xs(point: Any) -> str:
    return f"x_slo {_rate(point.x_slo)}, x_max {_rate(point.x_max)}"


def _summary(
    sweep: Sweep, out: Path, seconds: float, describe: Callable[[int], float] | None
) -> None:
    click.echo(f"Swept {len(sweep.points)} pod counts in {format_duration_ns(seconds * NS)}: {out}")
    header = f"  {'pods':>4}  {'x_slo/s':>10}  {'x_max/s':>10}  {'steps':>5}"
    click.echo(header + ("  emulated X(N)/s" if describe else ""))
    for p in sweep.points:
        x_slo = "-" if p.x_slo is None else f"{p.x_slo:,.1f}"
        row = f"  {p.pods:>4}  {x_slo:>10}  {p.x_max:>10,.1f}  {len(p.steps):>5}"
        click.echo(row + (f"  {describe(p.pods):>15,.1f}" if describe else ""))
    click.echo(f"Next: planner report {out} --target-rate RATE --html report.html")
