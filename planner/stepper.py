"""One step of a sweep through the replay engine: an open-model run at a fixed rate.

The step is `replay run --rate R --duration (warm-up + step)` in-process: a `RunPlan` made
by replay's own `make_plan` (so the corpus is checked exactly as `replay run` checks it),
run by replay's `Coordinator` with its summary and progress captured instead of printed.
Only whole seconds ``[warmup, warmup + step)`` of the run's per-second aggregate are
measured: the warm-up absorbs the connection pool filling and whatever queue the previous
step left behind, and the requests still in flight after the last second (replay's final,
partial interval) are left out.

From that window (interval k holds the requests that completed in second k):

    achieved_rps   successful responses / step seconds
    p50/p95/p99    latency from each request's intended send time (coordinated omission
                   corrected), every outcome included
    errors         non-2xx, timeouts, connection errors;   dropped: due but never sent

`offered_rps` is the rate replay was asked for. When replay says the load generator, not
the target, was the limit (drops, or a send-lag p99 above 10 ms), the step carries a note.
"""

from __future__ import annotations

import io
from dataclasses import replace

from capture.errors import EXIT_INTERRUPTED, InputError
from capture.units import NS
from planner.sweep import Measurement, StepFailed, StepInterrupted
from planner.sweep_format import Step
from replay.aggregate import RunAggregate
from replay.coordinator import Coordinator, RunFailed
from replay.plan import RunPlan, make_plan
from replay.results import generator_limit_reasons
from replay.target import RunTarget, TargetError, open_target


def make_step_plan(
    corpus: str, *, workers: int, max_inflight: int, timeout_ns: int, seed: int = 1
) -> RunPlan:
    """replay's `RunPlan` for the sweep's steps (rate and duration set per step).

    Raises ValueError with replay's one-line message for a corpus it cannot use."""
    try:
        return make_plan(
            corpus,
            rate=1.0,
            duration_ns=NS,
            workers=workers,
            max_inflight=max_inflight,
            timeout_ns=timeout_ns,
            seed=seed,
            progress=False,
            command_line="planner sweep",
        )
    except InputError as exc:
        raise ValueError(str(exc)) from None


class ReplayStepper:
    """`Measure` through replay: ``stepper(rate)`` runs one step and returns it."""

    def __init__(self, target: RunTarget, plan: RunPlan, *, warmup_s: int, step_s: int) -> None:
        if step_s < 1 or warmup_s < 0:
            raise ValueError("a step lasts at least 1 s, after a warm-up of 0 s or more")
        self.target = target
        self.plan = plan
        self.warmup_s = warmup_s
        self.step_s = step_s

    def __call__(self, rate: float) -> Measurement:
        plan = replace(
            self.plan,
            model="rate",
            rate=float(rate),
            duration_ns=(self.warmup_s + self.step_s) * NS,
            progress=False,
            out=None,
        )
        stderr = io.StringIO()
        coordinator = Coordinator(plan, self.target, stdout=io.StringIO(), stderr=stderr)
        try:
            code = coordinator.run()
        except RunFailed as exc:
            if exc.code == EXIT_INTERRUPTED:
                raise StepInterrupted() from None
            raise StepFailed(f"replay: {exc}", exc.code) from None
        if code == EXIT_INTERRUPTED:
            raise StepInterrupted()
        if coordinator.failure:
            raise StepFailed(f"replay: {coordinator.failure}", coordinator.failure_code)
        return measure_window(coordinator.aggregate, rate, self.warmup_s, self.step_s)


def measure_window(aggregate: RunAggregate, rate: float, warmup_s: int, step_s: int) -> Measurement:
    """The step from seconds [warmup_s, warmup_s + step_s) of a replay `RunAggregate`."""
    window = aggregate.window(warmup_s, warmup_s + step_s)
    requests, ok, dropped = window.requests(), window.ok(), window.dropped()
    latency = window.histogram("latency")
    p50 = p95 = p99 = None
    if latency.count:
        p50, p95, p99 = (float(v) for v in latency.percentiles([50.0, 95.0, 99.0]))
    lag = window.histogram("send_lag")
    lag_p99 = float(lag.percentiles([99.0])[0]) if lag.count else None
    reasons = generator_limit_reasons(dropped, window.offered, lag_p99)
    note = None
    if reasons:
        note = "load generator limited: " + "; ".join(r.fact for r in reasons)
    step = Step(
        offered_rps=float(rate),
        achieved_rps=ok / step_s,
        p50_ms=p50,
        p95_ms=p95,
        p99_ms=p99,
        errors=requests - ok,
        dropped=dropped,
        requests=requests,
        duration_s=float(step_s),
    )
    return Measurement(step, note)


def open_user_target(url: str, api_key: str | None, project_id: str | None) -> RunTarget:
    """replay's `RunTarget` for ``url`` after one TCP connect; ValueError if it refuses."""
    try:
        return open_target(url, api_key, project_id)
    except TargetError as exc:
        raise ValueError(str(exc)) from None
