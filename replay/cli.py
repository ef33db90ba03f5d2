"""`replay`: the command line over the replay library. Subcommands only parse and delegate."""

from __future__ import annotations

import click

from capture.cli_errors import OneLineGroup
from replay.cli_k8s import k8s
from replay.cli_merge import merge
from replay.cli_report import report
from replay.cli_run import run
from replay.cli_scenarios import check, scenarios
from sandbox.cli import command as sandbox_command


@click.group(
    name="replay",
    cls=OneLineGroup,
    context_settings={"help_option_names": ["-h", "--help"], "show_default": True},
)
@click.version_option(package_name="agenttrace-loadtools")
def main() -> None:
    """Replay AgentTrace corpora at scaled rates and measure honestly."""


main.add_command(sandbox_command, name="sandbox")
main.add_command(run)
main.add_command(merge)
main.add_command(k8s)
main.add_command(report)
main.add_command(scenarios)
main.add_command(check)
