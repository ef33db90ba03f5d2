"""A body parsed as JSON, or found not to be: one rule for every reader of recorded bodies.

`json.loads` raises ValueError for text that is not JSON, UnicodeDecodeError for bytes that
are not UTF-8, and RecursionError for arrays or objects nested deeper than the interpreter
follows (about a thousand levels). Each of the three makes a body opaque: kept and replayed
as it is, counted, never parsed; so no body, however it is built, stops a recording, an
import or a fit.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

NOT_JSON_ERRORS = (ValueError, UnicodeDecodeError, RecursionError)
"""What `json.loads` raises for a body that is not JSON it can read."""


class NotJson:
    """The type of NOT_JSON."""


NOT_JSON = NotJson()
"""What `parsed` gives for a body that is empty or not JSON it can read."""


def parsed(body: bytes | str) -> Any:
    """`body` as JSON, or NOT_JSON when it is empty or not JSON `json.loads` can read."""
    if type(body) is bytes and body[:1] in _OPENERS and body[1:2] not in (b"", b"\x00"):
        return _parsed_utf8(body)
    if not body.strip():
        return NOT_JSON
    try:
        return json.loads(body)
    except NOT_JSON_ERRORS:
        return NOT_JSON


_OPENERS = (b"{", b"[")
_SCAN: Callable[[str, int], tuple[Any, int]] = (  # what json.loads runs, without its wrappers
    json.JSONDecoder().scan_once  # type: ignore[attr-defined]
)


def _parsed_utf8(body: bytes) -> Any:
    """`parsed` of bytes that open an object or array and whose second byte is not NUL:
    UTF-8 (json.detect_encoding's answer for them), read as json.loads reads it."""
    try:
        text = body.decode("utf-8", "surrogatepass")
        doc, end = _SCAN(text, 0)
    except (StopIteration, *NOT_JSON_ERRORS):
        return NOT_JSON
    if end != len(text) and text[end:].strip(" \t\n\r"):  # json's whitespace only after it
        return NOT_JSON
    return doc


def parsed_or_none(body: bytes | str) -> Any:
    """`parsed`, with None for NOT_JSON (for readers to whom a JSON null is no different)."""
    doc = parsed(body)
    return None if doc is NOT_JSON else doc


def string_lengths(value: Any) -> list[int]:
    """The length of every string in a parsed document, depth first (iterative: a document
    as deep as `json.loads` reads is no deeper for this)."""
    out: list[int] = []
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            out.append(len(item))
        elif isinstance(item, dict):
            stack.extend(reversed(list(item.values())))
        elif isinstance(item, list):
            stack.extend(reversed(item))
    return out
