"""`replay`: the command line over the replay library. Subcommands only parse and delegate."""

from __future__ import annotations

import click
from sandbox.cli import command as sandbox_command

from replay.cli_run import run


@click.group(context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.version_option(package_name="agenttrace-loadtools")
def main() -> None:
    """Replay AgentTrace corpora at scaled rates and measure honestly."""


main.add_command(sandbox_command, name="sandbox")
main.add_command(run)
