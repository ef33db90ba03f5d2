"""A run's plan: everything `replay run` decides before the workers start, made from typed
arguments by `make_plan` (which checks their combination and the corpus), or `InputError`.

`replay run` parses its options into `make_plan`'s arguments; planner's sweep makes one plan
and `dataclasses.replace`s the rate and duration per step.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from capture.corpus import CorpusError, CorpusReader
from capture.errors import InputError
from capture.units import NS
from corpora import BUNDLED, bundled_path
from replay import pacing
from replay.config import ARRIVALS, MODELS
from replay.scrape import check_scrape_url
from replay.segments import WHOLE_RUN, ExecutionSegment
from replay.spool import TemplateSpool
from replay.thresholds import Threshold, parse_threshold


@dataclass(frozen=True)
class RunPlan:
    """Everything `replay run` decided from its arguments."""

    corpus: str  # a path
    corpus_label: str  # as the user named it (a bundled name or a path)
    model: str  # timeline, rate or closed
    duration_ns: int
    workers: int
    max_inflight: int
    timeout_ns: int
    scale: float = 1.0
    speed: float = 1.0
    rate: float = 0.0
    arrival: str = "uniform"
    stages: tuple[tuple[int, float], ...] = ()
    vus: int = 0
    think_ns: int = 0
    seed: int = 1
    thresholds: tuple[Threshold, ...] = ()
    abort_on_fail: bool = False
    out: str | None = None
    command_line: str = ""
    spool_dir: str | None = None  # None: the temporary directory ($TMPDIR)
    build_first: bool = False  # spool all a worker can reach before sending (replay.shard)
    progress: bool = True
    segment: ExecutionSegment = WHOLE_RUN  # this machine's part of the run
    start_at_ns: int | None = None  # wall clock (unix ns): start then, not when ready
    max_start_skew_ns: int = NS  # ready later than start_at + this: refuse to run
    metrics_listen: tuple[str, int] | None = None  # serve live Prometheus metrics there
    scrape: tuple[str, ...] = ()  # the target's Prometheus endpoints, read during the run
    scrape_metrics: tuple[str, ...] = ()  # metrics kept beside memory and CPU
    scrape_interval_s: float = 10.0
    visibility_probe: float = 0.0  # fraction of acknowledged ingestions polled until readable
    visibility_timeout_ns: int = 300 * NS
    scenarios: tuple[Any, ...] = ()  # a scenario file's Scenarios (replay.scenario_plan)


def make_plan(
    corpus: str,
    *,
    model: str | None = None,
    rate: float | None = None,
    stages: Sequence[tuple[int, float]] = (),
    arrival: str = "uniform",
    vus: int | None = None,
    think_ns: int | None = None,
    scale: float | None = None,
    speed: float | None = None,
    duration_ns: int | None = None,
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
    scrape: Sequence[str] = (),
    scrape_metrics: Sequence[str] = (),
    scrape_interval_s: float = 10.0,
    visibility_probe: float = 0.0,
    visibility_timeout_ns: int = 300 * NS,
) -> RunPlan:
    """Check the combination of arguments and the corpus (a bundled name or a path); the
    RunPlan, or InputError naming the option at fault. Without `model` the load model
    follows from the arguments: closed with `vus`, rate with `rate` or `stages`, else the
    corpus timeline; a `model` given must agree with them."""
    path = corpus_path(corpus)
    try:
        with CorpusReader(path) as reader:
            header = reader.header
    except CorpusError as exc:
        raise InputError(str(exc)) from None
    if header.records == 0:
        raise InputError(f"{path}: the corpus holds no records")
    last = header.chunks[-1].last_ns if header.chunks else 0
    period = pacing.loop_period(header.duration_ns, last, header.records)

    stages = tuple(stages)
    inferred = "closed" if vus else "rate" if (rate or stages) else "timeline"
    if model is not None and model != inferred:
        if model not in MODELS:
            raise InputError(f"unknown load model {model!r} (one of {', '.join(MODELS)})")
        needs = {"closed": "--vus", "rate": "--rate or --stage", "timeline": "none of them"}
        raise InputError(f"the {model} model needs {needs[model]}")
    model = inferred
    if vus and (rate or stages):
        raise InputError("--vus (closed model) cannot be combined with --rate or --stage")
    if model != "timeline" and (scale or speed):
        raise InputError("--scale and --speed apply to the corpus timeline, not --rate/--vus")
    if arrival not in ARRIVALS:
        raise InputError(f"--arrival {arrival}: one of {', '.join(ARRIVALS)}")
    if model != "rate" and arrival == "poisson":
        raise InputError("--arrival poisson needs --rate or --stage")
    if model != "closed" and think_ns:
        raise InputError("--think-time needs --vus")
    if stages and duration_ns:
        raise InputError("with --stage the run lasts as long as its stages: drop --duration")
    speed = speed or 1.0
    if stages:
        duration = sum(ns for ns, _ in stages)
    elif duration_ns:
        duration = int(duration_ns)
    elif model == "timeline":
        duration = int(period / speed)
    else:
        duration = period
    spool = checked_spool_dir(spool_dir)
    parsed = tuple(parse_thresholds(thresholds))
    if abort_on_fail and not parsed:
        raise InputError("--abort-on-fail needs at least one --threshold")
    segment = segment or ExecutionSegment()
    if max_start_skew_ns < 0:
        raise InputError("--max-start-skew cannot be negative")
    return RunPlan(
        corpus=str(path),
        corpus_label=corpus,
        model=model,
        duration_ns=duration,
        workers=int(workers or 1),
        max_inflight=int(max_inflight or 1000),
        timeout_ns=int(timeout_ns or 10 * NS),
        scale=float(scale or 1.0),
        speed=float(speed),
        rate=float(rate or 0.0),
        arrival=arrival,
        stages=stages,
        vus=int(vus or 0),
        think_ns=int(think_ns or 0),
        seed=int(seed),
        thresholds=parsed,
        abort_on_fail=abort_on_fail,
        out=out,
        command_line=command_line,
        progress=progress,
        spool_dir=spool,
        build_first=build_first,
        segment=segment,
        start_at_ns=start_at_ns,
        max_start_skew_ns=int(max_start_skew_ns),
        metrics_listen=metrics_listen,
        scrape=scrape_urls(scrape),
        scrape_metrics=tuple(scrape_metrics),
        scrape_interval_s=float(scrape_interval_s),
        visibility_probe=_fraction(visibility_probe),
        visibility_timeout_ns=int(visibility_timeout_ns),
    )


def checked_spool_dir(given: str | None) -> str | None:
    """--spool-dir, checked now (a worker finding it unusable after minutes of loading
    could only fall back): an existing directory a file can be created in."""
    if given is None:
        return None
    path = Path(given)
    if not path.is_dir():
        why = "not a directory" if path.exists() else "no such directory"
        raise InputError(f"--spool-dir {given}: {why}")
    try:
        TemplateSpool(str(path)).close()  # what a worker will do there
    except OSError as exc:
        why = exc.strerror or str(exc)
        raise InputError(f"--spool-dir {given}: cannot create a file there: {why}") from None
    return str(path.resolve())


def _fraction(value: float) -> float:
    if not 0.0 <= value <= 1.0:
        raise InputError(f"--visibility-probe {value:g}: give a fraction between 0 and 1")
    return float(value)


def scrape_urls(urls: Sequence[str]) -> tuple[str, ...]:
    out = []
    for url in urls:
        try:
            out.append(check_scrape_url(url))
        except ValueError as exc:
            raise InputError(f"--scrape: {exc}") from None
    return tuple(out)


def parse_thresholds(texts: Sequence[str | Threshold]) -> list[Threshold]:
    out = []
    for text in texts:
        if isinstance(text, Threshold):
            out.append(text)
            continue
        try:
            out.append(parse_threshold(text))
        except ValueError as exc:
            raise InputError(f"--threshold: {exc}") from None
    return out


def corpus_path(corpus: str) -> Path:
    path = Path(corpus)
    if path.exists() or os.sep in corpus or corpus.endswith(".atc"):
        return path
    if corpus in BUNDLED:
        return bundled_path(corpus)
    raise InputError(
        f"{corpus}: no such file, and not a bundled corpus ({', '.join(sorted(BUNDLED))})"
    )
