"""One line and exit status 2 for every bad input, in every command of the project.

click prints a usage error as a usage block plus the error; an SRE at 2 a.m. wants the one
line that says what is wrong and where. Every command and group of the project is a
`OneLineCommand` or a `OneLineGroup`: in standalone mode (a console script, or click's test
runner) they turn usage errors, `InputError` (bad files, bad values inside them, an
unreachable target) and corpus errors into `command path: error: ...` on stderr with exit
status 2, and Ctrl-C into `interrupted` with 130. Anything else is a bug and keeps its
traceback. The packages' own bad-input errors subclass `capture.errors.InputError`.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any, NoReturn

import click

from capture.errors import EXIT_BAD_INPUT, EXIT_INTERRUPTED, InputError

__all__ = [
    "EXIT_BAD_INPUT",
    "EXIT_INTERRUPTED",
    "InputError",
    "OneLineCommand",
    "OneLineGroup",
    "one_line",
]


def one_line(message: str) -> str:
    """The message as one line, without control characters (it may quote a file)."""
    from capture.termsafe import printable

    return printable(" ".join(part.strip() for part in message.splitlines() if part.strip()))


class _OneLineMain:
    """The standalone `main` of a click command, with bad input as one line."""

    name: str | None

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        run = super().main  # type: ignore[misc]
        if not standalone_mode:
            return run(args, prog_name, complete_var, standalone_mode=False, **extra)
        prog = prog_name or self.name or "command"
        try:
            result = run(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.exceptions.Exit as exc:
            sys.exit(exc.exit_code)
        except (click.exceptions.Abort, KeyboardInterrupt):
            _fail(f"{prog}: interrupted", EXIT_INTERRUPTED)
        except click.UsageError as exc:
            where = exc.ctx.command_path if exc.ctx is not None else prog
            _fail(f"{where}: error: {one_line(exc.format_message())}", EXIT_BAD_INPUT)
        except click.ClickException as exc:
            _fail(
                f"{prog}: error: {one_line(exc.format_message())}", exc.exit_code or EXIT_BAD_INPUT
            )
        except InputError as exc:  # CorpusError is one
            where = getattr(exc, "command_path", prog)
            _fail(f"{where}: error: {one_line(str(exc))}", EXIT_BAD_INPUT)
        sys.exit(result if isinstance(result, int) else 0)


def _fail(line: str, status: int) -> NoReturn:
    click.echo(line, err=True)
    sys.exit(status)


class OneLineCommand(_OneLineMain, click.Command):
    """A click command whose bad input is one line on stderr and exit status 2."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except InputError as exc:
            # Name the command the error came from (`replay run: error: ...`), not the group.
            if not hasattr(exc, "command_path"):
                exc.command_path = ctx.command_path  # type: ignore[attr-defined]
            raise


class OneLineGroup(_OneLineMain, click.Group):
    """A click group whose subcommands' bad input is one line on stderr and exit status 2."""

    command_class = OneLineCommand
