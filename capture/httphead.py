"""What a request head may hold, so that a corpus stays data and never becomes protocol.

A record's method, path and headers are written verbatim into an HTTP/1.1 request head by
replay. Anything that could end a line or a field there (CR, LF, NUL, a space in the
request target, a non-token header name) would let a corpus inject headers or whole
requests, so the corpus writer refuses such a record and every reader treats one as damage.
The grammar is RFC 9110's: a method and a header name are tokens; a field value is visible
ASCII, obs-text, space and tab; a request target is printable ASCII without space.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
_TARGET = re.compile(rb"/[\x21-\x7e]*\Z")
_VALUE = re.compile(rb"[\t\x20-\x7e\x80-\xff]*\Z")

MAX_METHOD = 32
MAX_PATH = 64 * 1024
MAX_HEADER_NAME = 256
MAX_HEADER_VALUE = 16 * 1024


def _latin1(text: object) -> bytes | None:
    if not isinstance(text, str):
        return None
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:
        return None


def method_problem(method: object) -> str | None:
    """Why `method` cannot start a request line, or None when it can."""
    raw = _latin1(method)
    if raw is None or not raw or len(raw) > MAX_METHOD or not _TOKEN.match(raw):
        return f"method {method!r} is not an HTTP token"
    return None


def path_problem(path: object) -> str | None:
    """Why `path` cannot be a request target (origin form), or None when it can."""
    raw = _latin1(path)
    if raw is None or not _TARGET.match(raw):
        return f"path {_shown(path)} is not printable ASCII starting with '/' without spaces"
    if len(raw) > MAX_PATH:
        return f"path of {len(raw)} bytes is longer than {MAX_PATH}"
    return None


def header_problem(name: object, value: object) -> str | None:
    """Why a header line `name: value` is not a single valid field line, or None."""
    raw_name = _latin1(name)
    if raw_name is None or not raw_name or len(raw_name) > MAX_HEADER_NAME:
        return f"header name {_shown(name)} is not an HTTP token"
    if not _TOKEN.match(raw_name):
        return f"header name {_shown(name)} is not an HTTP token"
    raw_value = _latin1(value)
    if raw_value is None or not _VALUE.match(raw_value):
        return f"header {name}: value {_shown(value)} holds a control character (CR, LF or NUL)"
    if len(raw_value) > MAX_HEADER_VALUE:
        return f"header {name}: value of {len(raw_value)} bytes is longer than {MAX_HEADER_VALUE}"
    return None


def head_problem(method: object, path: object, headers: Iterable[object]) -> str | None:
    """The first reason this request head could not go onto the wire as is, or None."""
    problem = method_problem(method) or path_problem(path)
    if problem:
        return problem
    for header in headers:
        if not isinstance(header, (tuple, list)) or len(header) != 2:
            return f"header {_shown(header)} is not a (name, value) pair"
        problem = header_problem(header[0], header[1])
        if problem:
            return problem
    return None


def _shown(value: object, limit: int = 60) -> str:
    """A value as it may be printed: escaped, so nothing read from a file reaches a terminal."""
    text = ascii(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
