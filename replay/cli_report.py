"""`replay report RESULTS.json... [--html F] [--md F] [--json F] [--phases ...]`.

Only parses and delegates: replay/report.py builds the report (phases, recovery, drift,
the guide's verdicts, per-second series), replay/report_plots.py draws its figures and
replay/report_render.py writes it. Prints the headline; exit status 0, or 2 with one line
on stderr for bad input (a missing or damaged results file, a bad --phases).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from capture.cli_errors import InputError, OneLineCommand


def _compact(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def dumps_report(doc: dict[str, Any]) -> str:
    """Indented JSON, except that each per-second column is one line."""
    body = {k: v for k, v in doc.items() if k != "series"}
    text = json.dumps(body, ensure_ascii=False, allow_nan=False, indent=2)
    columns = ",\n".join(f"    {json.dumps(k)}: {_compact(v)}" for k, v in doc["series"].items())
    return text[: text.rfind("}")].rstrip() + f',\n  "series": {{\n{columns}\n  }}\n}}\n'


def _write(path: Path, text: str) -> None:
    if not path.parent.is_dir():
        raise InputError(f"{path}: directory {path.parent} does not exist")
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise InputError(f"{path}: cannot write ({exc.strerror or exc})") from None


@click.command("report", cls=OneLineCommand)
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--html",
    "html_out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the report as one self-contained HTML page with figures.",
)
@click.option(
    "--md",
    "md_out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the report as Markdown.",
)
@click.option(
    "--json",
    "json_out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the report as JSON (replay-report/1).",
)
@click.option(
    "--phases",
    metavar="NAME=START-END,...",
    help="Name the phases by hand, e.g. baseline=0-60,spike=90s-3m30s "
    "[default: from the run's stages].",
)
def report(
    files: tuple[Path, ...],
    html_out: Path | None,
    md_out: Path | None,
    json_out: Path | None,
    phases: str | None,
) -> None:
    """Report on a run: phases, recovery after a spike, drift over a soak, the guide's
    targets, and per-second figures.

    Several FILES are runs made side by side (as `replay merge` takes them): their seconds
    add up. Without --html, --md or --json only the headline is printed.
    """
    from replay.report import build_report
    from replay.report_render import headline, render_html, render_markdown

    built = build_report([str(f) for f in files], phases)
    doc = built.document
    if json_out is not None:
        _write(json_out, dumps_report(doc))
    if md_out is not None:
        _write(md_out, render_markdown(doc))
    if html_out is not None:
        from replay.report_plots import figures

        _write(html_out, render_html(doc, figures(built)))
    for line in headline(doc):
        click.echo(line)
    for path in (html_out, md_out, json_out):
        if path is not None:
            click.echo(f"wrote {path}")
