"""`replay run`: parse the arguments into a RunPlan, open the target, hand over to the
coordinator. Every bad input is one line on stderr and exit status 2."""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path
from typing import Any, NoReturn

import click

from capture.cli_errors import InputError, OneLineCommand, one_line
from capture.units import DURATION, FACTOR, RATE, ParsedType, parse_duration_ns, parse_rate
from replay.config import ARRIVALS
from replay.rewrite import MAX_WORKERS

NS = 1_000_000_000


def _parse_stage(text: str) -> tuple[int, float]:
    duration, sep, rate = text.partition(":")
    if not sep:
        raise ValueError(f"{text!r} is not a stage: write DURATION:RATE, e.g. 30s:200")
    ns = parse_duration_ns(duration)
    if ns <= 0:
        raise ValueError(f"{text!r}: a stage must last longer than zero")
    return ns, parse_rate(rate)


STAGE = ParsedType("duration:rate", _parse_stage)
THINK_TIME = ParsedType("duration", parse_duration_ns)  # zero allowed: no pause


@click.command("run", cls=OneLineCommand)
@click.argument("corpus", required=False, default="ingestion")
@click.option("--target", metavar="URL", help="Base URL; without it, the embedded sandbox.")
@click.option("--api-key", envvar="API_KEY", metavar="KEY", help="Bearer key [env API_KEY].")
@click.option(
    "--project-id", envvar="PROJECT_ID", metavar="ID", help="Target's project [env PROJECT_ID]."
)
@click.option("--scale", type=FACTOR, help="Offered rate multiplier for the corpus: 5x, 2.5x.")
@click.option("--speed", type=FACTOR, help="Play the corpus timeline faster (2x) or slower.")
@click.option("--rate", type=RATE, help="Arrival-rate model: requests per second.")
@click.option("--arrival", type=click.Choice(ARRIVALS), default="uniform", help="With --rate.")
@click.option(
    "--stage",
    "stages",
    type=STAGE,
    multiple=True,
    help="Ramp to RATE over DURATION (repeat; from --rate or 0).",
)
@click.option("--vus", type=click.IntRange(min=1), help="Closed model: virtual users.")
@click.option("--think-time", type=THINK_TIME, help="Closed model: pause per VU.")
@click.option("--duration", type=DURATION, help="Run length [default: the corpus's].")
@click.option(
    "--workers",
    type=click.IntRange(1, MAX_WORKERS),
    default=lambda: os.cpu_count() or 1,
    show_default="cores",
    help="Worker processes.",
)
@click.option(
    "--max-inflight",
    type=click.IntRange(min=1),
    default=1000,
    help="Open models: requests in flight, over all workers; beyond it requests are dropped.",
)
@click.option("--timeout", type=DURATION, default="10s", help="Per request, from its send.")
@click.option(
    "--threshold",
    "thresholds",
    multiple=True,
    metavar="EXPR",
    help="k6 syntax, e.g. 'http_req_duration{endpoint:ingest}: p(99)<100', "
    "'http_req_failed: rate<0.01 [window=10s]'; exit 99 when one fails.",
)
@click.option("--abort-on-fail", is_flag=True, help="Stop at the first failed threshold.")
@click.option("--out", type=click.Path(dir_okay=False), help="Write results JSON here.")
@click.option("--seed", type=click.IntRange(min=0), default=1, help="Poisson arrivals' seed.")
@click.option(
    "--spool-dir",
    metavar="DIR",
    help="Where workers spool the templates of a corpus too large for memory [$TMPDIR].",
)
@click.option("-q", "--quiet", is_flag=True, help="No progress lines on stderr.")
@click.pass_context
def run(ctx: click.Context, corpus: str, **options: Any) -> NoReturn:
    """Replay CORPUS (a bundled name: ingestion, query, mixed; or a file) against a target.

    \b
    Load models (one of):
      corpus timeline  the default: records at their recorded times (--speed, --scale)
      arrival rate     --rate R [--arrival poisson], --stage DURATION:RATE ... (k6 ramps)
      closed           --vus N [--think-time T]
    Latency is measured from each request's intended time (coordinated omission
    corrected) and from its actual send; requests the generator could not send are
    counted as dropped. Exit status: 0 ok, 1 run failed, 2 bad input or target,
    99 a threshold failed, 130 interrupted (Ctrl-C or SIGTERM: partial results are written).
    """
    from replay.signals import sigterm_as_interrupt

    with sigterm_as_interrupt():
        code = _run(corpus, options)
    ctx.exit(code)


def _run(corpus: str, options: dict[str, Any]) -> int:
    from replay.coordinator import Coordinator, RunFailed
    from replay.target import TargetError, open_target

    plan = make_plan(corpus, options, command_line=_command_line())
    try:
        target = open_target(options["target"], options["api_key"], options["project_id"])
    except TargetError as exc:
        raise InputError(str(exc)) from None
    except KeyboardInterrupt:
        click.echo("replay run: interrupted", err=True)
        return 130
    try:
        code = Coordinator(plan, target).run()
    except RunFailed as exc:
        click.echo(f"replay run: error: {one_line(str(exc))}", err=True)
        code = exc.code
    except KeyboardInterrupt:
        click.echo("replay run: interrupted", err=True)
        code = 130
    finally:
        target.stop()
    return code


def _command_line() -> str:
    """The command as typed, credentials replaced by *** (`replay run ...`, also when run as
    python -m replay.cli_run)."""
    from replay.redact import redact_argv

    argv = sys.argv[1:]
    if argv[:1] == ["run"]:
        argv = argv[1:]
    return shlex.join(["replay", "run", *redact_argv(argv)])


def make_plan(corpus: str, o: dict[str, Any], command_line: str = "") -> Any:
    """Check the combination of options and the corpus; the RunPlan, or InputError."""
    from capture.corpus import CorpusError, CorpusReader
    from replay import pacing
    from replay.coordinator import RunPlan

    path = _corpus_path(corpus)
    try:
        with CorpusReader(path) as reader:
            header = reader.header
    except CorpusError as exc:
        raise InputError(str(exc)) from None
    if header.records == 0:
        raise InputError(f"{path}: the corpus holds no records")
    last = header.chunks[-1].last_ns if header.chunks else 0
    period = pacing.loop_period(header.duration_ns, last, header.records)

    rate, stages, vus = o.get("rate"), tuple(o.get("stages") or ()), o.get("vus")
    scale, speed = o.get("scale"), o.get("speed")
    model = "closed" if vus else "rate" if (rate or stages) else "timeline"
    if vus and (rate or stages):
        raise InputError("--vus (closed model) cannot be combined with --rate or --stage")
    if model != "timeline" and (scale or speed):
        raise InputError("--scale and --speed apply to the corpus timeline, not --rate/--vus")
    if model != "rate" and o.get("arrival") == "poisson":
        raise InputError("--arrival poisson needs --rate or --stage")
    if model != "closed" and o.get("think_time"):
        raise InputError("--think-time needs --vus")
    if stages and o.get("duration"):
        raise InputError("with --stage the run lasts as long as its stages: drop --duration")
    speed = speed or 1.0
    if stages:
        duration = sum(ns for ns, _ in stages)
    elif o.get("duration"):
        duration = int(o["duration"])
    elif model == "timeline":
        duration = int(period / speed)
    else:
        duration = period
    spool_dir = _spool_dir(o.get("spool_dir"))
    thresholds = tuple(_parse_thresholds(o.get("thresholds") or ()))
    if o.get("abort_on_fail") and not thresholds:
        raise InputError("--abort-on-fail needs at least one --threshold")
    return RunPlan(
        corpus=str(path),
        corpus_label=corpus,
        model=model,
        duration_ns=duration,
        workers=int(o.get("workers") or 1),
        max_inflight=int(o.get("max_inflight") or 1000),
        timeout_ns=int(o.get("timeout") or 10 * NS),
        scale=float(scale or 1.0),
        speed=float(speed),
        rate=float(rate or 0.0),
        arrival=str(o.get("arrival") or "uniform"),
        stages=stages,
        vus=int(vus or 0),
        think_ns=int(o.get("think_time") or 0),
        seed=int(o.get("seed") or 0),
        thresholds=thresholds,
        abort_on_fail=bool(o.get("abort_on_fail")),
        out=o.get("out"),
        command_line=command_line,
        progress=not o.get("quiet"),
        spool_dir=spool_dir,
    )


def _spool_dir(given: str | None) -> str | None:
    """--spool-dir, checked now (a worker finding it unusable after minutes of loading
    could only fall back): an existing directory a file can be created in."""
    if given is None:
        return None
    from replay.spool import TemplateSpool

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


def _parse_thresholds(texts: Any) -> list[Any]:
    if not texts:
        return []
    from replay.thresholds import parse_threshold

    out = []
    for text in texts:
        try:
            out.append(parse_threshold(text))
        except ValueError as exc:
            raise InputError(f"--threshold: {exc}") from None
    return out


def _corpus_path(corpus: str) -> Path:
    path = Path(corpus)
    if path.exists() or os.sep in corpus or corpus.endswith(".atc"):
        return path
    from corpora import BUNDLED, bundled_path

    if corpus in BUNDLED:
        return bundled_path(corpus)
    raise InputError(
        f"{corpus}: no such file, and not a bundled corpus ({', '.join(sorted(BUNDLED))})"
    )


if __name__ == "__main__":  # `python -m replay.cli_run ...` is `replay run ...`
    run.main(prog_name="replay run")
