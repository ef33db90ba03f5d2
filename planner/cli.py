"""`planner`: the command line over the planner library. Subcommands only parse and delegate.

Bad input (a missing file, a wrong CSV header, a non-number, an invalid sweep file) is one
line on stderr naming the file and the line or field, and exit status 2; never a traceback.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click

from capture.cli_errors import OneLineGroup
from capture.cli_units import DURATION, RATE
from planner.capacity import MIN_POINTS_FOR_FIT, fit_usl, loo_compare, plan
from planner.caveats import fit_caveats
from planner.errors import InputError
from planner.limits import rate_problem
from planner.points import gather, read_csv
from planner.render import headline, render_html, render_markdown
from planner.report import fit_dict, report_dict, to_json
from planner.sweep_cli import FRACTION, PODS, SECONDS, SLO_P99
from planner.types import Caveat

_OUT = click.Path(dir_okay=False, path_type=Path)


def _write(path: Path, text: str) -> None:
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot write it ({exc.strerror or exc})", path=path) from None
    click.echo(f"wrote {path}")


def _echo_caveats(found: list[Caveat] | tuple[Caveat, ...]) -> None:
    if found:
        click.echo("\nWarnings:")
        for c in found:
            click.echo(f"  [{c.code}] {c.message}")


@click.group(
    name="planner",
    cls=OneLineGroup,
    context_settings={"help_option_names": ["-h", "--help"], "show_default": True},
)
@click.version_option(package_name="agenttrace-loadtools")
def main() -> None:
    """Capacity planning: fit the Universal Scalability Law to measured throughput and
    project the pods a target rate needs, with intervals and honest warnings."""


@main.command()
@click.option(
    "--csv",
    "csv_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Measured points: a header with 'pods' (or 'concurrency') and 'throughput'.",
)
@click.option("--json", "json_out", type=_OUT, help="Write the fit as JSON (planner-fit/1).")
def fit(csv_path: Path, json_out: Path | None) -> None:
    """Fit the USL to points measured elsewhere and print σ, κ, λ, the peak and warnings."""
    points = read_csv(csv_path)
    n = [p.pods for p in points]
    x = [p.capacity for p in points if p.capacity is not None]
    distinct = len(set(n))
    if distinct < MIN_POINTS_FOR_FIT:
        result = None
        loo = None
        found = fit_caveats(n, x, None, None)
        best = max(zip(n, x, strict=True), key=lambda p: p[0])
        click.echo(
            f"Cannot fit: {distinct} distinct pod count(s), and the USL's three coefficients "
            f"(λ, σ, κ) need at least {MIN_POINTS_FOR_FIT}; σ and κ cannot be determined. "
            f"Per pod, {best[0]} pods delivered {best[1] / best[0]:,.1f}/s: more pods deliver "
            "at most that much each. For a lower bound on the pods a rate needs: "
            f"planner report --csv {csv_path} --target-rate RATE"
        )
    else:
        result = fit_usl(n, x)
        loo = loo_compare(n, x)
        found = fit_caveats(n, x, result, loo)
        p = result.params
        click.echo(f"{len(n)} points at {distinct} pod counts from {csv_path}")
        click.echo(f"  σ (contention) = {p.sigma:.6g}  ± {result.se[0]:.3g}")
        click.echo(f"  κ (coherency)  = {p.kappa:.6g}  ± {result.se[1]:.3g}")
        click.echo(f"  λ (one pod)    = {p.lam:,.4f}/s  ± {result.se[2]:,.3g}")
        if p.n_peak is not None:
            click.echo(f"  peak: n_peak = {p.n_peak} (N* = {p.n_star:.2f}), X = {p.x_peak:,.1f}/s")
        else:
            click.echo(f"  no peak (κ = 0): X approaches {p.x_peak:,.1f}/s")
        click.echo(f"  R² = {result.r2:.5f}, RMSE = {result.rmse:,.1f}/s")
        if loo.usl_rmse is not None and loo.linear_rmse is not None:
            click.echo(
                f"  leave-one-out RMSE: USL {loo.usl_rmse:,.1f}/s, "
                f"linear scaling {loo.linear_rmse:,.1f}/s"
            )
    _echo_caveats(found)
    if json_out is not None:
        _write(json_out, to_json(fit_dict(result, loo, n, x, found, str(csv_path))))


@main.command()
@click.argument("sweeps", nargs=-1, type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--csv",
    "csv_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Points measured elsewhere (pods or concurrency, throughput), pooled with the sweeps.",
)
@click.option(
    "--target-rate", type=RATE, required=True, help="The rate to plan for: 10000, 10k, 600k/m."
)
@click.option(
    "--headroom",
    type=click.FloatRange(0, 1, min_open=True),
    default=0.7,
    help="Highest utilisation per pod at the target rate.",
)
@click.option("--redundancy", type=click.IntRange(min=0), default=1, help="Spare pods added (N+k).")
@click.option("--resamples", type=click.IntRange(min=0), default=1000, help="Bootstrap resamples.")
@click.option("--seed", type=int, default=0, help="Bootstrap seed (the report is reproducible).")
@click.option("--json", "json_out", type=_OUT, help="Write the report as JSON (planner-report/1).")
@click.option("--md", "md_out", type=_OUT, help="Write the report as Markdown.")
@click.option("--html", "html_out", type=_OUT, help="Write the report as self-contained HTML.")
def report(
    sweeps: tuple[Path, ...],
    csv_path: Path | None,
    target_rate: float,
    headroom: float,
    redundancy: int,
    resamples: int,
    seed: int,
    json_out: Path | None,
    md_out: Path | None,
    html_out: Path | None,
) -> None:
    """Fit the USL to sweep files (and/or a CSV) and project the pods for --target-rate."""
    if not sweeps and csv_path is None:
        raise click.UsageError("give at least one sweep file, or --csv")
    if rate_problem(target_rate, "--target-rate"):
        raise click.BadParameter(str(rate_problem(target_rate)), param_hint="--target-rate")
    measured = gather(sweeps, csv_path)
    n, x = measured.capacity_series()
    if not n:
        raise InputError(
            "no pod count met the SLO at any offered rate: there is no capacity to plan from",
            path=", ".join(str(s) for s in sweeps),
        )
    n_max, x_max = measured.x_max_series()
    result = plan(
        n,
        x,
        target_rate,
        headroom=headroom,
        redundancy=redundancy,
        x_max=(n_max, x_max) if n_max else None,
        resamples=resamples,
        seed=seed,
        notes=measured.caveats,
    )
    for line in headline(result):
        click.echo(line)
    if result.explanation:
        click.echo("\n" + result.explanation)
    _echo_caveats([c for c in result.caveats if c.code != "undetermined"])
    if json_out is not None:
        _write(json_out, to_json(report_dict(result, measured)))
    if md_out is not None:
        _write(md_out, render_markdown(result, measured))
    if html_out is not None:
        _write(html_out, render_html(result, measured))


# ----------------------------------------------------------------------------- sweep


_SWEEP_EPILOG = """\b
Examples:
  planner sweep --sandbox --pods 1,2,3,4,6,8 --out sweep.json
  planner sweep --target https://api.staging.example.com --api-key KEY \\
      --scale-cmd 'kubectl scale deploy/api --replicas={pods}' \\
      --ready-url https://api.staging.example.com/health --out sweep.json
  planner sweep ... --out sweep.json --resume      # after Ctrl-C or a failure

\b
Each pod count: the scale command (or the sandbox's admin API), readiness, then one
open-model replay per step: --warmup, then --step-duration measured. The ladder of
rates ramps up from --start-rate by 2x (later pod counts start at 85% of linear
scaling from the nearest measured one and ramp by 1.25x) until a step fails the SLO,
then bisects until the last pass and first failure are within --precision.
The file is written after every step. Exit status: 0 done, 1 the load generator
failed, 2 bad input or the scale command / readiness failed, 130 interrupted.
See docs/planner.md.
"""


@main.command(epilog=_SWEEP_EPILOG)
@click.option("--target", metavar="URL", help="Base URL of the service to measure.")
@click.option(
    "--sandbox",
    is_flag=True,
    help="Measure the embedded sandbox with emulated capacity instead (started, scaled "
    "through its admin API and stopped by the sweep).",
)
@click.option(
    "--pods", "pod_counts", type=PODS, default="1,2,3,4,6,8", help="Pod counts, in order."
)
@click.option(
    "--scale-cmd",
    metavar="CMD",
    help="Sets the pod count; {pods} is replaced. Split like a shell would and run "
    "directly, never through a shell unless --shell.",
)
@click.option(
    "--shell",
    is_flag=True,
    help="Run --scale-cmd with /bin/sh -c (for pipes, && and $VARS).",
)
@click.option("--ready-url", metavar="URL", help="After scaling, GET until it answers 2xx.")
@click.option(
    "--ready-timeout",
    type=DURATION,
    default="5m",
    help="How long the scale command and readiness may take, per pod count.",
)
@click.option(
    "--slo",
    "p99_ms",
    type=SLO_P99,
    default="p99<100ms",
    metavar="p99<LIMIT",
    help="A step passes under it.",
)
@click.option(
    "--max-error-rate", type=FRACTION, default="1%", help="... and with at most these errors."
)
@click.option("--corpus", default="ingestion", help="What to replay: a bundled name or a file.")
@click.option("--api-key", envvar="API_KEY", metavar="KEY", help="Bearer key [env API_KEY].")
@click.option(
    "--project-id", envvar="PROJECT_ID", metavar="ID", help="Target's project [env PROJECT_ID]."
)
@click.option(
    "--step-duration", "step_s", type=SECONDS, default="6s", help="Measured part of a step."
)
@click.option("--warmup", "warmup_s", type=SECONDS, default="2s", help="Unmeasured lead-in.")
@click.option("--start-rate", type=RATE, default="50", help="First offered rate (first pod count).")
@click.option("--max-rate", type=RATE, help="Never offer more than this.")
@click.option(
    "--precision", type=FRACTION, default="5%", help="Stop when fail/pass - 1 is within this."
)
@click.option("--max-steps", type=click.IntRange(min=1), default=12, help="Steps per pod count.")
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=lambda: os.cpu_count() or 1,
    show_default="cores",
    help="replay worker processes.",
)
@click.option("--max-inflight", type=click.IntRange(min=1), default=1000, help="As replay run.")
@click.option("--timeout", "timeout_ns", type=DURATION, default="5s", help="Per request.")
@click.option("--pod-rate", type=RATE, help="--sandbox: one emulated pod's rate [100/s].")
@click.option("--sigma", type=click.FloatRange(0, 1), help="--sandbox: USL contention [0.05].")
@click.option("--kappa", type=click.FloatRange(0, 1), help="--sandbox: USL coherency [0.001].")
@click.option(
    "--queue-depth", type=click.IntRange(min=0), help="--sandbox: queue per pod before 503 [16]."
)
@click.option("--out", type=_OUT, required=True, help="The sweep file (planner-sweep/1).")
@click.option("--resume", is_flag=True, help="Continue the sweep in --out.")
@click.option("--overwrite", is_flag=True, help="Replace an existing --out.")
def sweep(**options: Any) -> None:
    """Measure capacity at each pod count: scale, then a ladder of offered rates that
    brackets the knee; writes the sweep file that `planner report` reads."""
    from planner.sweep_cli import SweepSettings, run_sweep_command

    click.get_current_context().exit(run_sweep_command(SweepSettings(**options)))
