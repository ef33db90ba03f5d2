"""Text from a file, made safe to print: no control characters reach a terminal.

A results file's target, a corpus's metadata or a threshold's text is data someone else may
have written. Printed as is, an escape sequence in it could retitle the terminal, move the
cursor over real output or hide lines; a newline could forge a line of the summary. Every
value read from a file passes through `printable` before it is printed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

# C0 and C1 controls, DEL, and Unicode's line separators and bidirectional overrides.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_CONTROL_KEEP_NL = re.compile(
    "[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]"
)


def printable(text: object) -> str:
    """`text` as one line: every control character removed (newlines and tabs too)."""
    return _CONTROL.sub("", str(text))


def printable_lines(text: str) -> str:
    """`text` with every control character but the newline removed."""
    return _CONTROL_KEEP_NL.sub("", text)


def printable_tree(value: Any, skip: frozenset[str] = frozenset()) -> Any:
    """A copy of a JSON value with `printable` applied to every string and key; the
    values of keys in `skip` (at any depth) are kept as they are."""
    if isinstance(value, str):
        return printable(value)
    if isinstance(value, Mapping):
        return {printable(k): v if k in skip else printable_tree(v, skip) for k, v in value.items()}
    if isinstance(value, list):
        return [printable_tree(v, skip) for v in value]
    return value
