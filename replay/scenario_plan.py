"""A run of a scenario file: its RunPlan (every scenario checked and time-scaled) and each
worker's lanes (the scenarios' WorkerConfigs, split by segment and worker as any run is).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from capture.corpus import CorpusError, CorpusReader
from capture.errors import InputError
from replay import pacing
from replay.config import WorkerConfig
from replay.plan import RunPlan, checked_spool_dir, corpus_path, parse_thresholds
from replay.scenario_file import Scenario, ScenarioFile
from replay.segments import WHOLE_RUN, ExecutionSegment, share
from replay.thresholds import Threshold
from replay.vu_schedule import part, steps

NS = 1_000_000_000


def make_scenario_plan(
    file: ScenarioFile,
    *,
    time_scale: float = 1.0,
    workers: int = 1,
    max_inflight: int = 1000,
    timeout_ns: int = 10 * NS,
    seed: int = 1,
    thresholds: Sequence[str | Threshold] = (),
    abort_on_fail: bool = False,
    out: str | None = None,
    spool_dir: str | None = None,
    build_first: bool = False,
    progress: bool = True,
    command_line: str = "",
    segment: ExecutionSegment | None = None,
    start_at_ns: int | None = None,
    max_start_skew_ns: int = NS,
    metrics_listen: tuple[str, int] | None = None,
) -> RunPlan:
    """The plan of running every scenario of `file` at once (InputError naming the file and
    scenario at fault). `max_inflight` is the default of open scenarios that set none (the
    plan's is their total). The run lasts until the last scenario's end, plus its graceful stop
    for VU scenarios (workers end earlier once every iteration has)."""
    if not time_scale > 0:
        raise InputError(f"--time-scale {time_scale}: must be more than zero")
    scenarios = []
    for s in file.scaled(time_scale).scenarios:
        path = corpus_path(s.corpus)
        try:
            with CorpusReader(path) as reader:
                header = reader.header
        except CorpusError as exc:
            raise InputError(f"{file.source}: scenario {s.name}: corpus: {exc}") from None
        if header.records == 0:
            raise InputError(f"{file.source}: scenario {s.name}: corpus: {path} holds no records")
        if s.executor == "corpus-timeline" and not s.duration_ns:
            last = header.chunks[-1].last_ns if header.chunks else 0
            period = pacing.loop_period(header.duration_ns, last, header.records)
            s = replace(s, duration_ns=max(round(period / s.speed * time_scale), 1))
        if not s.closed:
            s = replace(s, max_inflight=s.max_inflight or max_inflight)
        scenarios.append(replace(s, corpus=str(path)))
    ends = [s.start_ns + s.length_ns + (s.graceful_stop_ns if s.closed else 0) for s in scenarios]
    parsed = tuple(parse_thresholds([*file.thresholds, *thresholds]))
    names = {s.name for s in scenarios}
    for t in parsed:
        if t.scenario is not None and t.scenario not in names:
            raise InputError(
                f"--threshold {t}: no scenario {t.scenario!r} in {file.source} "
                f"({', '.join(sorted(names))})"
            )
    if abort_on_fail and not parsed:
        raise InputError("--abort-on-fail needs at least one threshold")
    return RunPlan(
        corpus=scenarios[0].corpus,
        corpus_label=file.source,
        model="scenarios",
        duration_ns=max(ends),
        workers=int(workers or 1),
        max_inflight=sum(s.max_inflight or 0 for s in scenarios) or int(max_inflight or 1000),
        timeout_ns=int(timeout_ns or 10 * NS),
        seed=int(seed),
        thresholds=parsed,
        abort_on_fail=abort_on_fail,
        out=out,
        command_line=command_line,
        spool_dir=checked_spool_dir(spool_dir),
        build_first=build_first,
        progress=progress,
        segment=segment or WHOLE_RUN,
        start_at_ns=start_at_ns,
        max_start_skew_ns=int(max_start_skew_ns),
        metrics_listen=metrics_listen,
        scenarios=tuple(scenarios),
    )


def with_lanes(cfg: WorkerConfig, plan: RunPlan) -> WorkerConfig:
    """Worker `cfg.worker`'s config for a scenario run: one lane per scenario."""
    seg, segs, w, n = cfg.segment, cfg.segments, cfg.worker, cfg.workers
    lanes = [_lane(s, cfg, plan, seg, segs, w, n).to_wire() for s in plan.scenarios]
    return replace(cfg, model="scenarios", scenarios=lanes)


def _lane(
    s: Scenario, cfg: WorkerConfig, plan: RunPlan, seg: int, segs: int, w: int, n: int
) -> WorkerConfig:
    lane: dict[str, Any] = {"name": s.name, "start_ns": s.start_ns}
    model: dict[str, Any] = {"model": s.executor, "duration_ns": s.length_ns}
    if s.closed:
        if s.executor == "constant-vus":
            total = steps(s.vus, [(s.duration_ns, float(s.vus))])
        else:
            total = steps(s.start_vus, s.stages)
        mine = part(total, lambda v: share(v, seg, segs, w, n))
        lane.update(
            steps=[list(step) for step in mine],
            flow=[list(step) for step in s.flow],
            graceful_stop_ns=s.graceful_stop_ns,
            graceful_ramp_down_ns=s.graceful_ramp_down_ns,
        )
        lane["endpoints"] = sorted({e for e, _ in s.flow}) if s.flow else list(s.endpoints)
        model.update(vus=max(v for _t, v in mine), think_ns=s.think_ns)
    else:
        lane["endpoints"] = list(s.endpoints)
        inflight = s.max_inflight or plan.max_inflight
        model.update(max_inflight=max(1, share(inflight, seg, segs, w, n)), arrival=s.arrival)
        if s.executor == "constant-arrival-rate":
            model.update(rate=s.rate)
        elif s.executor == "ramping-arrival-rate":
            model.update(rate=s.start_rate, stages=list(s.stages))
        else:
            model.update(scale=s.scale, speed=s.speed)
    return replace(cfg, corpus=s.corpus, lane=lane, scenarios=[], **model)
