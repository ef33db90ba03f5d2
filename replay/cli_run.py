"""`replay run`: parse the arguments into a RunPlan, open the target, hand over to the
coordinator. Every bad input is one line on stderr and exit status 2."""

from __future__ import annotations

import os
import shlex
import sys
from typing import Any, NoReturn

import click

from capture.cli_errors import InputError, OneLineCommand, one_line
from capture.cli_units import DURATION, FACTOR, RATE, ParsedType
from capture.errors import EXIT_INTERRUPTED
from capture.units import NS, parse_duration_ns, parse_rate
from replay.config import ARRIVALS
from replay.coordinator import Coordinator, RunFailed
from replay.live import parse_listen
from replay.open_files import warn_open_files
from replay.plan import RunPlan, make_plan, scrape_urls
from replay.prespawn import Prespawned
from replay.results_stdout import StdoutResults
from replay.rewrite import MAX_WORKERS
from replay.segments import (
    MAX_SEGMENTS,
    ExecutionSegment,
    parse_segment,
    parse_start_at,
    segment_from_env,
)
from replay.signals import Stops, sigterm_as_interrupt
from replay.target import TargetError, open_target


def _parse_stage(text: str) -> tuple[int, float]:
    duration, sep, rate = text.partition(":")
    if not sep:
        raise ValueError(f"{text!r} is not a stage: write DURATION:RATE, e.g. 30s:200")
    ns = parse_duration_ns(duration)
    if ns <= 0:
        raise ValueError(f"{text!r}: a stage must last longer than zero")
    return ns, parse_rate(rate, allow_zero=True)


STAGE = ParsedType("duration:rate", _parse_stage)
SEGMENT = ParsedType("I/K", parse_segment)
START_AT = ParsedType("time", parse_start_at)
LISTEN = ParsedType("[host:]port", parse_listen)
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
@click.option(
    "--out", type=click.Path(dir_okay=False), help="Write results JSON here ('-': stdout)."
)
@click.option("--seed", type=click.IntRange(min=0), default=1, help="Poisson arrivals' seed.")
@click.option(
    "--spool-dir",
    metavar="DIR",
    help="Where workers spool the templates of a corpus too large for memory [$TMPDIR].",
)
@click.option(
    "--build-first",
    is_flag=True,
    help="Build every spooled template the run can reach before the first request (a long "
    "corpus: minutes), instead of starting within seconds and building behind the sends.",
)
@click.option(
    "--segment",
    type=SEGMENT,
    help="Run execution segment I of K (0-based, e.g. 0/3): K machines, one run.",
)
@click.option(
    "--segments",
    type=click.IntRange(1, MAX_SEGMENTS),
    help="K segments; this one is $JOB_COMPLETION_INDEX (a Kubernetes Indexed Job).",
)
@click.option(
    "--start-at",
    type=START_AT,
    metavar="TIME",
    help="Start at this wall-clock instant (unix seconds or RFC 3339), not when ready.",
)
@click.option(
    "--max-start-skew",
    type=DURATION,
    default="1s",
    show_default=True,
    help="With --start-at: refuse to start when ready later than it by more than this.",
)
@click.option(
    "--metrics-port",
    type=LISTEN,
    metavar="[HOST:]PORT",
    help="Serve live Prometheus metrics at /metrics during the run (all interfaces).",
)
@click.option(
    "--scrape",
    multiple=True,
    metavar="URL",
    help="The target's Prometheus /metrics, read every --scrape-interval into the results.",
)
@click.option(
    "--scrape-metric",
    "scrape_metrics",
    multiple=True,
    metavar="NAME",
    help="Keep this metric too (beside process memory and CPU).",
)
@click.option("--scrape-interval", type=DURATION, default="10s", show_default=True)
@click.option(
    "--visibility-probe",
    type=click.FloatRange(0, 1),
    default=0.0,
    metavar="FRACTION",
    help="Poll this fraction of acknowledged traces until readable: ingest-to-visible lag.",
)
@click.option(
    "--visibility-timeout",
    type=DURATION,
    default="5m",
    show_default=True,
    help="A probed trace not readable after this counts as a timeout.",
)
@click.option(
    "--keep-logs",
    is_flag=True,
    help="Keep the embedded sandbox's log in $TMPDIR (it never holds a key or token).",
)
@click.option(
    "--scenario",
    metavar="NAME|FILE",
    help="Run a scenario file's scenarios at once, or a preset (replay scenarios).",
)
@click.option(
    "--time-scale",
    type=click.FloatRange(min=0, min_open=True),
    help="With --scenario: every duration times F (0.05: a 6 min test in 18 s).",
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
    with sigterm_as_interrupt() as stops:
        code = _run(ctx, corpus, options, stops)
    ctx.exit(code)


def _run(ctx: click.Context, corpus: str, options: dict[str, Any], stops: Stops) -> int:
    to_stdout = StdoutResults.take(options)  # --out -
    if options.get("scenario"):
        from replay.cli_scenarios import scenario_plan_from_options

        plan = scenario_plan_from_options(ctx, options, command_line=_command_line())
    elif options.get("time_scale") is not None:
        raise InputError("--time-scale applies to --scenario")
    else:
        plan = plan_from_options(corpus, options, command_line=_command_line())
    warn_open_files(plan.max_inflight)
    workers = Prespawned(plan.workers)  # they import while the target starts
    try:
        return _run_against_target(plan, options, to_stdout, workers, stops)
    finally:
        workers.close()  # (unless the coordinator took them)


def _run_against_target(
    plan: RunPlan,
    options: dict[str, Any],
    to_stdout: StdoutResults,
    workers: Prespawned,
    stops: Stops,
) -> int:
    try:
        stops.check()  # (a stop lost while the workers were forked)
        target = open_target(
            options["target"],
            options["api_key"],
            options["project_id"],
            {"keep_logs": True} if options.get("keep_logs") else None,
        )
    except TargetError as exc:
        raise InputError(str(exc)) from None
    except KeyboardInterrupt:
        click.echo("replay run: interrupted", err=True)
        return EXIT_INTERRUPTED
    try:
        stops.check()  # (a stop lost while the sandbox was forked)
        coordinator = Coordinator(plan, target, stdout=to_stdout.summary_stream, prespawned=workers)
        code = coordinator.run()
    except RunFailed as exc:
        click.echo(f"replay run: error: {one_line(str(exc))}", err=True)
        code = exc.code
    except KeyboardInterrupt:
        click.echo("replay run: interrupted", err=True)
        code = EXIT_INTERRUPTED
    finally:
        target.stop()
        to_stdout.finish()
    return code


def plan_from_options(corpus: str, o: dict[str, Any], command_line: str = "") -> RunPlan:
    """The RunPlan of `replay run`'s parsed options (keyed as click names them)."""
    return make_plan(
        corpus,
        rate=o.get("rate"),
        stages=tuple(o.get("stages") or ()),
        arrival=str(o.get("arrival") or "uniform"),
        vus=o.get("vus"),
        think_ns=o.get("think_time"),
        scale=o.get("scale"),
        speed=o.get("speed"),
        duration_ns=o.get("duration"),
        **shared_plan_options(o, command_line),
        **watch_options(o),
    )


def shared_plan_options(o: dict[str, Any], command_line: str) -> dict[str, Any]:
    """The plan arguments a corpus run and a scenario run take alike, from click's options."""
    return {
        "workers": int(o.get("workers") or 1),
        "max_inflight": int(o.get("max_inflight") or 1000),
        "timeout_ns": int(o.get("timeout") or 10 * NS),
        "seed": int(o.get("seed") or 0),
        "thresholds": tuple(o.get("thresholds") or ()),
        "abort_on_fail": bool(o.get("abort_on_fail")),
        "out": o.get("out"),
        "spool_dir": o.get("spool_dir"),
        "build_first": bool(o.get("build_first")),
        "progress": not o.get("quiet"),
        "command_line": command_line,
        "segment": _segment(o.get("segment"), o.get("segments")),
        "start_at_ns": o.get("start_at"),
        "max_start_skew_ns": int(
            o["max_start_skew"] if o.get("max_start_skew") is not None else NS
        ),
        "metrics_listen": o.get("metrics_port"),
    }


def watch_options(o: dict[str, Any]) -> dict[str, Any]:
    """What a run watches besides its own requests: the target's metrics, visibility."""
    return {
        "scrape": scrape_urls(tuple(o.get("scrape") or ())),
        "scrape_metrics": tuple(o.get("scrape_metrics") or ()),
        "scrape_interval_s": (o.get("scrape_interval") or 10 * NS) / NS,
        "visibility_probe": float(o.get("visibility_probe") or 0.0),
        "visibility_timeout_ns": int(o.get("visibility_timeout") or 300 * NS),
    }


def _segment(given: ExecutionSegment | None, count: int | None) -> ExecutionSegment | None:
    """--segment I/K, or --segments K with $JOB_COMPLETION_INDEX; they must agree."""
    if given is not None:
        if count is not None and count != given.count:
            raise InputError(f"--segment {given} and --segments {count} disagree")
        return given
    if count is None:
        return None
    try:
        return segment_from_env(count)
    except ValueError as exc:
        raise InputError(str(exc)) from None


def _command_line() -> str:
    """The command as typed, credentials replaced by *** (`replay run ...`, also when run as
    python -m replay.cli_run)."""
    from replay.redact import redact_argv

    argv = sys.argv[1:]
    if argv[:1] == ["run"]:
        argv = argv[1:]
    return shlex.join(["replay", "run", *redact_argv(argv)])


if __name__ == "__main__":  # `python -m replay.cli_run ...` is `replay run ...`
    run.main(prog_name="replay run")
