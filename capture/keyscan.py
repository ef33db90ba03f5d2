"""The string values of a JSON document under a few key names, found without visiting
every token: the fast path of capture/spans.py's span finding.

They come as (keys above it, start, end), like `spans.json_strings`, whose token-by-token
walk stays the reference. What differs: strings under other keys, in arrays, or holding an
escape are not given (span finding skips them anyway); an array's index counts only the
containers in it (an element that is a string or number is unseen); and the keys above a
value are whole only for the names in `paths`, with an object's key given as "" unless it
is one of `containers` (the rest is all span finding reads). Two ways, the first that can:

    by brackets  when no key holds an escape and no string a bracket (a search, a
                 `translate` and a `replace` over the bytes say so): in valid JSON a quote
                 with no backslash before it opens or closes a string, so one search finds
                 every "name": "plain value" and "container key": { or [ where they are, and
                 the depth around a value and its containers come from the bracket sequence
    by tiling    one regex steps over everything else (text values, other keys, numbers,
                 commas, whitespace) inside the regex engine and stops only at brackets, the
                 keys of containers and the named values; its matches must tile the document
                 from its first byte

Where neither can (a key spelt with an escape, a NUL byte from a UTF-16 or UTF-32 body, a
document that is not an object or array) `scan` says None and the caller walks every token.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from itertools import accumulate
from operator import mul, sub

Key = str | int
Found = list[tuple[tuple[Key, ...], int, int]]


ESCAPED_KEY = re.compile(rb'\\.[^"\\]*"\s*:')  # a key holding an escape (in valid JSON)
NOT_STRUCTURE = bytes(c for c in range(256) if c not in b'"{}[]')
_OPENING = bytes(1 if c in b"{[" else 0 for c in range(256))  # a bracket that opens -> 1
_CLOSING = bytes(1 if c in b"}]" else 0 for c in range(256))


class KeyScanner:
    """Finds the plain string values under `names` in a valid JSON document.

    `paths` are the names whose every key above is wanted (for the others only the name
    itself is given), and `containers` the keys whose containers are named in those paths
    (an object's other keys are given as "")."""

    def __init__(
        self, names: Iterable[str], paths: Iterable[str] = (), containers: Iterable[str] = ()
    ) -> None:
        self._paths = frozenset(n.encode() for n in paths)
        self._text = {n.encode(): n for n in {*names, *containers}}
        alternatives = b"|".join(re.escape(n.encode()) for n in sorted(set(names)))
        keyed = b"|".join(re.escape(n.encode()) for n in sorted(set(containers))) or b"(?!)"
        self._named = re.compile(
            rb'"(?:(' + alternatives + rb')"\s*:\s*"([^"\\]*)"|(' + keyed + rb')"\s*:\s*(?=[{\[]))'
        )
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
        found = self._by_brackets(body)
        return found if found is not None else self._by_tiling(body)

    def _by_brackets(self, body: bytes) -> Found | None:
        """The fast way, when no key holds an escape and no string a bracket: every named
        value found at once, and the keys above a value from bracket counts."""
        flat = body
        if b"\\" in body:
            if ESCAPED_KEY.search(body):
                return None
            flat = body.replace(b"\\\\", b"").replace(b'\\"', b"")  # escapes out of the way
        skeleton = flat.translate(None, NOT_STRUCTURE)  # quotes and brackets
        if b'"' in skeleton.replace(b'""', b""):  # a string holding a bracket
            return None
        found: Found = []
        deep: list[tuple[int, int]] = []  # (index in found, start of its key)
        keyed: list[tuple[int, str]] = []  # (where its container opens, the key)
        for match in self._named.finditer(body):
            name, _value, container = match.groups()
            if name is None:
                keyed.append((match.end(), self._text[container]))
                continue
            if name in self._paths:
                deep.append((len(found), match.start()))
            found.append(((self._text[name],), match.start(2), match.end(2)))
        if deep:
            return self._with_paths(body, skeleton.replace(b'"', b""), found, deep, keyed)
        return found

    def _with_paths(
        self,
        body: bytes,
        brackets: bytes,
        found: Found,
        deep: list[tuple[int, int]],
        keyed: list[tuple[int, str]],
    ) -> Found | None:
        """`found` with the whole keys above each of its `deep` values, from the bracket
        sequence of the document (every bracket in it is outside strings).

        After bracket i the depth is the openers minus the closers so far; `marks` holds,
        for each opener, the depth it opens (0 for a closer), so the container at depth v
        around a place is the last opener marked v before it, and its index in an array
        the count of openers marked v since the array's own opener."""
        marked = bracket_marks(brackets)
        if marked is None:
            return None
        depths, marks = marked
        if not depths or min(depths) < 0 or depths[-1] != 0:
            return None
        counter = _BracketCounter(body)
        named: dict[int, str] = {}  # opener -> the key of its container, for `containers`
        brackets_before: dict[int, int] = {}  # deep value -> how many brackets before it
        places = [(at, -1, key) for at, key in keyed] + [(at, i, "") for i, at in deep]
        for at, index, key in sorted(places):
            if index < 0:
                named[counter.before(at)] = key
            else:
                brackets_before[index] = counter.before(at)
        for index, _start in deep:
            keys, value_start, value_end = found[index]
            before = brackets_before[index]
            depth = depths[before - 1] if before else 0
            above: list[Key] = []
            outer = marks.rfind(1, 0, before)  # the document's own container
            for level in range(2, depth + 1):
                inner = marks.rfind(level, 0, before)
                if brackets[outer] == 0x5B:  # [
                    above.append(marks.count(level, outer, inner))
                else:
                    above.append(named.get(inner, ""))
                outer = inner
            found[index] = ((*above, *keys), value_start, value_end)
        return found

    def _by_tiling(self, body: bytes) -> Found | None:
        """The careful way: a tiling of the whole document by one regex."""
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


def bracket_marks(brackets: bytes) -> tuple[list[int], bytes] | None:
    """For a document's brackets (every one outside strings, in order): the depth after
    each, openers minus closers so far, and for each opener the depth it opens (0 for a
    closer); None where containers nest deeper than a byte of the marks holds (255)."""
    opening = brackets.translate(_OPENING)
    depths = list(map(sub, accumulate(opening), accumulate(brackets.translate(_CLOSING))))
    if len(brackets) > 2 * 255 and max(depths) > 255:  # (nesting that deep takes that many)
        return None
    return depths, bytes(map(mul, depths, opening))


class _BracketCounter:
    """How many brackets come before a position, for positions in increasing order."""

    def __init__(self, body: bytes) -> None:
        self.body = body
        self.at = 0
        self.count = 0

    def before(self, position: int) -> int:
        body, at = self.body, self.at
        self.count += (
            body.count(b"{", at, position)
            + body.count(b"}", at, position)
            + body.count(b"[", at, position)
            + body.count(b"]", at, position)
        )
        self.at = position
        return self.count
