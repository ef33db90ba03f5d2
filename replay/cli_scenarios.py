"""`replay scenarios` (list the presets, show one), `replay check` (judge thresholds on a
results file), and `replay run --scenario`'s options into a plan. Only parsing."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import click

from capture.cli_errors import InputError, OneLineCommand, OneLineGroup
from capture.errors import EXIT_THRESHOLD_FAILED
from replay.cli_types import THRESHOLD
from replay.merge import aggregate_from_results
from replay.plan import RunPlan
from replay.results import ResultsError
from replay.results_read import read_results, validate_results
from replay.scenario_file import load_scenarios, parse_scenarios, preset_names, preset_text
from replay.scenario_plan import make_scenario_plan
from replay.thresholds import Threshold, evaluate

# Options of `replay run` that a scenario file decides for itself.
NOT_WITH_SCENARIO = (
    "rate",
    "stages",
    "vus",
    "think_time",
    "scale",
    "speed",
    "duration",
)


@click.group("scenarios", cls=OneLineGroup, invoke_without_command=True)
@click.pass_context
def scenarios(ctx: click.Context) -> None:
    """The bundled scenario presets (the guide's five tests and open-model twins): one line
    each. `replay scenarios show NAME` prints one to copy and edit; `replay run --scenario
    NAME|FILE` runs it."""
    if ctx.invoked_subcommand is not None:
        return
    names = preset_names()
    width = max(len(n) for n in names)
    for name in names:
        parsed = parse_scenarios(preset_text(name), name)
        click.echo(f"{name:<{width}}  {parsed.description}")


@scenarios.command("show", cls=OneLineCommand)
@click.argument("name")
def show(name: str) -> None:
    """Print preset NAME's TOML."""
    click.echo(preset_text(name), nl=False)


@click.command("check", cls=OneLineCommand)
@click.argument("results_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--threshold",
    "thresholds",
    type=THRESHOLD,
    multiple=True,
    help="Judge this threshold (repeatable); without any, the file's own.",
)
@click.pass_context
def check(ctx: click.Context, results_file: Path, thresholds: tuple[Threshold, ...]) -> None:
    """Judge thresholds on a results file already written (replay-results/1): one line per
    threshold; exit status 99 when one fails, 0 otherwise."""
    from replay.merge import thresholds_of
    from replay.scenario_results import merged_scenarios

    try:
        results = read_results(results_file)
        validate_results(results, str(results_file))
        aggregate = aggregate_from_results(results, name=str(results_file))
        aggregate.set_duration(max(float(results["totals"]["duration_s"]), 0.001))
        scen = merged_scenarios([results], [str(results_file)])
        wanted = list(thresholds) or thresholds_of(results, str(results_file))
    except ResultsError as exc:
        raise InputError(str(exc)) from None
    if scen is not None:
        scen.set_durations(aggregate.duration_s)
    verdicts = evaluate(wanted, aggregate, scen.aggregates if scen is not None else None)
    for verdict in verdicts:
        click.echo(f"{'ok  ' if verdict.ok else 'FAIL'}  {verdict}")
    ctx.exit(0 if all(v.ok for v in verdicts) else EXIT_THRESHOLD_FAILED)


def scenario_plan_from_options(
    ctx: click.Context, o: dict[str, Any], command_line: str = ""
) -> RunPlan:
    """`replay run --scenario NAME|FILE`'s plan; the options a scenario decides refused."""
    from replay.cli_run import shared_plan_options, watch_options

    for name in NOT_WITH_SCENARIO:
        if o.get(name):
            flag = "--" + name.replace("_", "-").replace("stages", "stage")
            raise InputError(f"{flag} cannot be combined with --scenario (the file decides it)")
    if ctx.get_parameter_source("corpus") not in (None, click.core.ParameterSource.DEFAULT):
        raise InputError("give either a CORPUS or --scenario (its scenarios name theirs)")
    file = load_scenarios(str(o["scenario"]))
    plan = make_scenario_plan(
        file,
        time_scale=float(o.get("time_scale") or 1.0),
        **shared_plan_options(o, command_line),
    )
    return dataclasses.replace(plan, **watch_options(o))
