"""Redaction: free text replaced by filler of the same length and class, structure kept.

A redacted body is the same JSON document, byte for byte the same length, with the same
keys, numbers, booleans, nulls, ids, timestamps, model names and types; only the characters
of free-text string values change. Each character is replaced by one of its own class,
chosen by its position in the string (never by what it was, so nothing of the original can
be recovered by guessing and hashing):

    a-z -> a-z   A-Z -> A-Z   0-9 -> 0-9   other ASCII (space, punctuation) kept
    non-ASCII letter or digit -> a letter of the same UTF-8 length (é-like, CJK, math letter)
    other non-ASCII (symbols, emoji) -> a symbol of the same UTF-8 length (· • 😀)
    JSON escapes: \\n \\t \\" \\\\ \\/ \\b \\f \\r kept; \\uXXXX -> \\uXXXX of a filler of the
    same class (a surrogate pair -> the escaped 😀)

Kept verbatim: object keys; values under the keys in KEEP_KEYS (ids and references, types,
roles, levels, model names, units); 24-byte ISO timestamps; anything inside an id or
timestamp span (capture.spans), such as the trace id in "load-test-trace-<id>"; a top-level
GraphQL "query" document. Everything else that is a string is free text: input, output,
names, message contents, metadata values, tags, status messages, user ids.

A body that is not JSON is redacted as one text (UTF-8), or, when not UTF-8, every byte
replaced by "*". Paths: the values of query parameters other than those in KEEP_PARAMS.
"""

from __future__ import annotations

import functools
import re
from urllib.parse import quote, unquote

import numpy as np

from capture.json_body import NOT_JSON, parsed
from capture.spans import body_spans, json_strings

KEEP_KEYS = frozenset(
    {
        "id",
        "trace_id",
        "traceId",
        "parent_observation_id",
        "parentObservationId",
        "project_id",
        "projectId",
        "session_id",
        "sessionId",
        "type",
        "role",
        "level",
        "model",
        "unit",
    }
)
KEEP_PARAMS = frozenset(
    {"limit", "page", "period", "fromTimestamp", "toTimestamp", "projectId", "orderBy"}
)

_LOWER = "etaoinshrdlucmfwypvbgkqjxz"
_UPPER = _LOWER.upper()
_DIGITS = "3141592653"
_LETTERS = {2: "éàüöñçèâ", 3: "一丁七万丈三上下", 4: "𝐚𝐛𝐜𝐝𝐞𝐟𝐠𝐡"}
_SYMBOLS = {2: "·", 3: "•", 4: "😀"}
_SIMPLE_ESCAPES = frozenset(b'"\\/bfnrt')
_ISO24 = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z\Z")


def filler_char(c: str, i: int) -> str:
    """The filler for character `c` at position `i` of its string: same class, same UTF-8 length."""
    if c.isascii():
        if "a" <= c <= "z":
            return _LOWER[i % 26]
        if "A" <= c <= "Z":
            return _UPPER[i % 26]
        if "0" <= c <= "9":
            return _DIGITS[i % 10]
        return c
    size = len(c.encode("utf-8"))
    if c.isalnum():
        letters = _LETTERS[size]
        return letters[i % len(letters)]
    return _SYMBOLS[size]


_CYCLES = {
    (0x61, 0x7A): np.array([ord(c) for c in _LOWER], dtype=np.uint32),
    (0x41, 0x5A): np.array([ord(c) for c in _UPPER], dtype=np.uint32),
    (0x30, 0x39): np.array([ord(c) for c in _DIGITS], dtype=np.uint32),
}
_ESCAPE = re.compile(r"\\(u[0-9a-fA-F]{4}|.)", re.DOTALL)


def redact_text(text: str) -> str:
    """Free text replaced character by character (same length in characters and bytes):
    vectorised over the code points, one class mask at a time."""
    if not text:
        return text
    cps = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32).copy()
    index = np.arange(cps.size)
    for (low, high), cycle in _CYCLES.items():
        mask = (cps >= low) & (cps <= high)
        cps[mask] = cycle[index[mask] % cycle.size]
    wide = cps >= 0x80
    if wide.any():
        for code in np.unique(cps[wide]).tolist():
            mask = cps == code
            positions = index[mask]
            cps[mask] = [ord(filler_char(chr(code), int(i))) for i in positions.tolist()]
    return cps.tobytes().decode("utf-32-le")


@functools.lru_cache(maxsize=4096)
def _escaped_filler(code: int, i: int) -> str:
    if 0xD800 <= code < 0xDC00:
        return "ud83d"  # a surrogate pair becomes the escaped 😀
    if 0xDC00 <= code < 0xE000:
        return "ude00"
    c = chr(code)
    if code < 0x80:
        return f"u{ord(filler_char(c, i)):04x}"
    filler = ("é" if code < 0x800 else "一") if c.isalnum() else ("·" if code < 0x800 else "•")
    return f"u{ord(filler):04x}"


def redact_json_string(raw: bytes) -> bytes:
    """The bytes between a JSON string's quotes, redacted (escapes handled, same length)."""
    text = raw.decode("utf-8")
    redacted = redact_text(text)
    if "\\" not in text:
        return redacted.encode("utf-8")
    out: list[str] = []
    pos = 0
    for match in _ESCAPE.finditer(text):
        start, end = match.span()
        body = match.group(1)
        out.append(redacted[pos:start])
        if len(body) == 1:
            out.append(text[start:end])
        else:
            code = int(body[1:], 16)
            out.append("\\" + _escaped_filler(code, start % 26 if code < 0x80 else 0))
        pos = end
    out.append(redacted[pos:])
    return "".join(out).encode("utf-8")


def _kept(keys: tuple[str | int, ...], value: bytes) -> bool:
    key = keys[-1] if keys else None
    if isinstance(key, str) and key in KEEP_KEYS:
        return True
    if keys == ("query",) and value.lstrip()[:1] in (b"{", b"q", b"m"):  # a GraphQL document
        return True
    return bool(_ISO24.match(value.decode("utf-8", "replace")))


def redact_body(body: bytes) -> bytes:
    """The body with its free text replaced: see the module docstring for what is kept."""
    doc = parsed(body)
    if doc is NOT_JSON:
        return _redact_opaque(body)
    spans, _trace = body_spans(body, doc)
    protected = sorted((start, start + length) for start, length, _kind in spans)
    out = bytearray(body)
    for keys, start, end in json_strings(body):
        raw = body[start:end]
        if _kept(keys, raw):
            continue
        inside = [(max(a, start), min(b, end)) for a, b in protected if a < end and b > start]
        pos = start
        for a, b in [*inside, (end, end)]:
            if a > pos:
                out[pos:a] = redact_json_string(body[pos:a])
            pos = max(pos, b)
    assert len(out) == len(body)
    return bytes(out)


def _redact_opaque(body: bytes) -> bytes:
    try:
        return redact_text(body.decode("utf-8")).encode("utf-8")
    except UnicodeDecodeError:
        return b"*" * len(body)


def redact_path(path: str) -> str:
    """A request target with the values of its free-text query parameters redacted."""
    route, sep, query = path.partition("?")
    if not sep:
        return path
    pairs = []
    for pair in query.split("&"):
        name, eq, value = pair.partition("=")
        if eq and unquote(name) not in KEEP_PARAMS:
            value = quote(redact_text(unquote(value.replace("+", " "))), safe="")
        pairs.append(f"{name}{eq}{value}")
    return f"{route}?{'&'.join(pairs)}"
