"""The click types of every CLI in the project, over capture.units' parsers: a value the
parser refuses becomes click's usage error, one line with exit status 2."""

from __future__ import annotations

from typing import Any

import click

from capture.units import (
    parse_delay_s,
    parse_factor,
    parse_positive_duration_ns,
    parse_rate,
    parse_size,
)


class ParsedType(click.ParamType):
    """A click type over a parse function that raises ValueError with the user's message."""

    def __init__(self, name: str, parse: Any) -> None:
        self.name = name
        self._parse = parse

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if not isinstance(value, str):
            return value
        try:
            return self._parse(value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


DURATION = ParsedType("duration", parse_positive_duration_ns)
"""A positive duration, converted to integer nanoseconds."""
DELAY = ParsedType("duration", parse_delay_s)
"""A duration that may be zero, converted to seconds (float)."""
RATE = ParsedType("rate", parse_rate)
"""A positive rate, converted to requests per second (float)."""
FACTOR = ParsedType("factor", parse_factor)
"""A positive multiplier such as 5x, converted to float."""
SIZE = ParsedType("size", parse_size)
"""A positive size in bytes: 4.5MB, 512KiB."""
