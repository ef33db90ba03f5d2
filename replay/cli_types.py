"""The click types of replay's commands."""

from __future__ import annotations

from typing import Any

import click

from replay.thresholds import Threshold, parse_threshold


class _ThresholdType(click.ParamType):
    """``--threshold 'http_req_failed: rate<0.01'``: parsed once, one clear line when wrong."""

    name = "threshold"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, Threshold):
            return value
        try:
            return parse_threshold(value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


THRESHOLD = _ThresholdType()
"""A click ParamType converting threshold text to a ``Threshold``."""
