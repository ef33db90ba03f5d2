"""`replay merge A.json B.json [...] [-o C.json]`: runs side by side, merged exactly.

Only parses and delegates: ``results.merge_results`` does the work (bucket counts add,
timelines align by second, thresholds are judged again on the merged data), and the merged
run's summary is printed. Exit status 0, 99 when a threshold fails on the merged data, and
2 with one line on stderr for bad input (a missing file, not JSON, not replay-results/1).
"""

from __future__ import annotations

from pathlib import Path

import click

from capture.cli_errors import InputError, OneLineCommand
from capture.errors import EXIT_THRESHOLD_FAILED
from replay.cli_types import THRESHOLD
from replay.merge import merge_results
from replay.results import ResultsError, write_results
from replay.results_read import read_results
from replay.summary import render_summary
from replay.thresholds import Threshold


@click.command("merge", cls=OneLineCommand)
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=True, path_type=Path))
@click.option(
    "-o",
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the merged results (replay-results/1) here.",
)
@click.option(
    "--threshold",
    "thresholds",
    type=THRESHOLD,
    multiple=True,
    help="Also judge this threshold on the merged data (repeatable).",
)
@click.pass_context
def merge(
    ctx: click.Context, files: tuple[Path, ...], out: Path | None, thresholds: tuple[Threshold, ...]
) -> None:
    """Merge results files of runs made side by side into one, exactly.

    Percentiles of the merged file are those of one histogram holding every request of every
    input; per-second timelines add up by second index. Thresholds of the inputs, and any
    given here, are judged again on the merged data: exit status 99 if one fails.
    """
    try:
        inputs = [read_results(path) for path in files]
        merged = merge_results(inputs, [str(p) for p in files], thresholds)
    except ResultsError as exc:
        raise InputError(str(exc)) from None
    if out is not None:
        if not out.parent.is_dir():
            raise InputError(f"{out}: directory {out.parent} does not exist")
        try:
            write_results(out, merged)
        except OSError as exc:
            raise InputError(f"{out}: cannot write ({exc.strerror or exc})") from None
    click.echo(render_summary(merged), nl=False)
    failed = any(not verdict["ok"] for verdict in merged["thresholds"])
    ctx.exit(EXIT_THRESHOLD_FAILED if failed else 0)
