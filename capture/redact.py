"""Redaction: a body's free text replaced by filler of the same bytes, its structure kept.

`redact_body(body)` rewrites the JSON string values that hold what people and models wrote,
and nothing else, so a redacted corpus loads AgentTrace exactly as the original did:

    replaced  every string inside ``input``, ``output`` and ``metadata`` (message contents,
              prompts, completions, tool arguments, metadata values), and the values of
              ``name``, ``status_message``/``statusMessage``, ``user_id``/``userId`` and
              ``session_id``/``sessionId`` anywhere
    kept      the JSON structure and every key, numbers (token counts, usage, temperatures),
              booleans, ids (``id`` and any key ending in ``id``/``Id``), timestamps, ``type``,
              ``level``, ``model`` and ``role`` values, and the body's length in bytes

Filler keeps each character's class and UTF-8 length: a lowercase ASCII letter becomes one
of a fixed cycle of lowercase letters, uppercase likewise, a digit one of a cycle of digits;
spaces, punctuation and escapes (``\\n``, ``\\"``) stay, so word and line shapes survive; a
non-ASCII character becomes as many ASCII letters as it has bytes (a ``\\uXXXX`` escape, six).
The cycle restarts in every string, so the output depends only on the input's shape: the same
body always redacts to the same bytes, and nothing of the original text can be recovered.
A body that is not JSON is returned unchanged: callers decide whether to keep it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

FREE_TEXT_CONTAINERS = frozenset({"input", "output", "metadata"})
FREE_TEXT_FIELDS = frozenset(
    {"name", "status_message", "statusMessage", "user_id", "userId", "session_id", "sessionId"}
)
KEPT_FIELDS = frozenset({"type", "level", "model", "role", "timestamp"})

_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_LOWER = b"etaoinshrdlucmfwypvbgkjqxz"
_UPPER = _LOWER.upper()
_DIGITS = b"4817290536"


def redact_body(body: bytes) -> bytes:
    """`body` with its free text replaced (see the module doc); as it is when not JSON."""
    try:
        doc = json.loads(body, object_pairs_hook=_Pairs)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return body
    decisions = list(_strings(doc, redact=False))
    tokens = list(_STRING.finditer(body))
    if len(tokens) != len(decisions):  # cannot happen for valid JSON; never guess
        return body
    out = bytearray(body)
    for token, redact in zip(tokens, decisions, strict=True):
        if redact:
            start, end = token.start() + 1, token.end() - 1
            out[start:end] = _filler(body[start:end])
    return bytes(out)


class _Pairs(list[tuple[str, Any]]):
    """A JSON object as its (key, value) pairs, in document order (duplicates kept)."""


def _strings(node: Any, redact: bool) -> Iterator[bool]:
    """For every JSON string of `node` in document order (keys included): redact it?"""
    if isinstance(node, _Pairs):
        for key, value in node:
            yield False  # the key
            yield from _strings(value, _value_redacted(key, value, redact))
    elif isinstance(node, list):
        for item in node:
            yield from _strings(item, redact)
    elif isinstance(node, str):
        yield redact


def _value_redacted(key: str, value: Any, inside: bool) -> bool:
    if key in KEPT_FIELDS or key == "id" or key.endswith(("_id", "Id")):
        return inside and not isinstance(value, str)
    if key in FREE_TEXT_CONTAINERS:
        return True
    if key in FREE_TEXT_FIELDS:
        return True
    return inside


def _filler(raw: bytes) -> bytes:
    """Same length, same classes; escapes kept (a \\uXXXX becomes six letters)."""
    out = bytearray(raw)
    i = k = 0
    while i < len(raw):
        c = raw[i]
        if c == 0x5C:  # a backslash escape
            if raw[i + 1 : i + 2] == b"u":
                out[i : i + 6] = bytes(_LOWER[(k + j) % 26] for j in range(6))
                i += 6
            else:
                i += 2
            k += 1
            continue
        if 0x61 <= c <= 0x7A:
            out[i] = _LOWER[k % 26]
        elif 0x41 <= c <= 0x5A:
            out[i] = _UPPER[k % 26]
        elif 0x30 <= c <= 0x39:
            out[i] = _DIGITS[k % 10]
        elif c >= 0x80:
            out[i] = _LOWER[k % 26]
        i += 1
        k += 1
    return bytes(out)
