"""One line and exit status 2 for every bad input, in every command of the project.

click prints usage errors as a usage block plus the error; an SRE at 2 a.m. wants the one
line that says what is wrong and where. `run_cli` runs a click command in non-standalone
mode and turns usage errors, corpus errors and bad files into `prog: error: ...` on stderr
with exit status 2. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import NoReturn

import click

from capture.corpus import CorpusError

EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130


class InputError(Exception):
    """Bad input found past argument parsing: a file, a value inside a file, a target."""


def fail(message: str) -> NoReturn:
    raise InputError(message)


def run_cli(command: click.Command, prog: str, args: Sequence[str] | None = None) -> NoReturn:
    """Run `command` as `prog` and exit with its status; bad input is one line, status 2."""
    try:
        result = command.main(args=args, prog_name=prog, standalone_mode=False)
    except click.exceptions.Abort:
        click.echo(f"{prog}: interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.UsageError as exc:
        where = f"{exc.ctx.command_path}: " if exc.ctx is not None else f"{prog}: "
        click.echo(f"{where}error: {_one_line(exc.format_message())}", err=True)
        sys.exit(EXIT_BAD_INPUT)
    except click.ClickException as exc:
        click.echo(f"{prog}: error: {_one_line(exc.format_message())}", err=True)
        sys.exit(exc.exit_code if exc.exit_code else EXIT_BAD_INPUT)
    except (CorpusError, InputError) as exc:
        click.echo(f"{prog}: error: {_one_line(str(exc))}", err=True)
        sys.exit(EXIT_BAD_INPUT)
    except KeyboardInterrupt:
        click.echo(f"{prog}: interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)
    sys.exit(result if isinstance(result, int) else 0)


def _one_line(message: str) -> str:
    return " ".join(part.strip() for part in message.splitlines() if part.strip())


def entry_point(command: click.Command, prog: str) -> Callable[[], NoReturn]:
    """A console-script entry point for `command`."""

    def main() -> NoReturn:
        run_cli(command, prog)

    return main
