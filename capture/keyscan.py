"""The string values of a JSON document under a few key names, found without visiting
every token: the fast path of capture/spans.py's span finding.

One regular expression steps over everything span finding never looks at (text values,
other keys with scalar values, numbers, commas, whitespace) inside the regex engine and
stops only at what it needs:

    { [ } ]                     the nesting, so the keys above a value are known
    "key": followed by { or [   the key of the container that follows
    "name": "plain string"      a key of interest with a string value holding no escape

and gives those values as (keys above it, start, end), like `spans.json_strings`, whose
token-by-token walk stays the reference. Two things differ and are said where they matter:
strings under other keys, in arrays, or holding an escape are not given (span finding
skips them anyway), and an array's index counts only the containers in it (an element that
is a string or number is stepped over, unseen).

The matches must tile the document from its first byte: in valid JSON a quote with no
backslash before it always opens or closes a string, so a key name is only ever matched
where a key is. Where the tiling breaks (a key name holding an escape, a NUL byte from a
UTF-16 or UTF-32 body, a document that is not an object or array) `scan` says None and
the caller walks every token instead.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

Key = str | int
Found = list[tuple[tuple[Key, ...], int, int]]


class KeyScanner:
    """Finds the plain string values under `names` in a valid JSON document."""

    def __init__(self, names: Iterable[str]) -> None:
        alternatives = b"|".join(re.escape(n.encode()) for n in sorted(set(names)))
        named = rb'"(?:' + alternatives + rb')"\s*:\s*"[^"\\]*"'
        self._pattern = re.compile(
            rb"""
            (?:                                         # stepped over:
                [^"{}\[\]]++                            #   between strings and brackets
              | "[^"\\]*+(?:\\.[^"\\]*+)*+"(?!\s*:)     #   a string value
              | (?!"""
            + named
            + rb""")                 #   a key, unless a named one with
                "[^"\\]*+"\s*+:\s*+(?![{\[])            #   a plain string value, and not
            )*+                                         #   before a container
            (?:
                ([{\[])                                 # 1: a container opens
              | ([}\]])                                 # 2: it closes
              | "([^"\\]*+)"\s*+:\s*+(?=[{\[])          # 3: the key of the next container
              | "("""
            + alternatives
            + rb""")"\s*+:\s*+"([^"\\]*+)"   # 4, 5: a named value
              | (.)                                     # 6: none of these: give up
            )
            """,
            re.VERBOSE | re.DOTALL,
        )

    def scan(self, body: bytes) -> Found | None:
        """(keys above it, start, end) of each plain string value under a named key, in
        document order; None where the document cannot be stepped through this way."""
        if b"\x00" in body:
            return None
        found: Found = []
        keys: list[Key | None] = []  # for each open container: its current key or index
        pos = 0
        for match in self._pattern.finditer(body):
            if match.start() != pos:
                return None
            pos = match.end()
            token = match.lastindex
            if token == 6:
                return None
            if token == 1:
                if keys:
                    current = keys[-1]
                    if isinstance(current, int):  # a container in an array: its index
                        keys[-1] = current + 1
                keys.append(None if match.group(1) == b"{" else -1)
            elif token == 2:
                if not keys:
                    return None
                keys.pop()
            elif token == 3:
                if not keys or isinstance(keys[-1], int):
                    return None
                keys[-1] = match.group(3).decode("utf-8")
            else:
                if not keys or isinstance(keys[-1], int):
                    return None
                keys[-1] = match.group(4).decode("utf-8")
                found.append((tuple(keys), match.start(5), match.end(5)))  # type: ignore[arg-type]
        if keys or body[pos:].strip(b" \t\r\n"):
            return None
        return found
