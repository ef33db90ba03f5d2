"""The spans of a JSON body in one regex pass: the first way capture/spans.py's
`body_spans` tries, ahead of keyscan's and the token walk's.

In valid JSON where no key holds an escape, a quote followed by a name, a quote and a colon
can only open that key; so one search over the raw bytes finds every "name": "plain value"
(and every "container key": { or [) where it is, with the value's own test in the pattern:
not empty, no escape, a timestamp of exactly 24 bytes of ISO time. The kind of a value under
any key but "id" is its key's. The kind of an id depends on the keys above it. Two ways:

    by value     capture/idkinds.py reads from the parsed document which value sits at
                 each place an id is marked, and when every "id" key is at one of them and
                 no value names two kinds, an id found in the bytes takes its value's kind
                 (the first way; strings may hold brackets)
    by brackets  the keys above come from bracket counts, which hold when no string holds a
                 bracket (behind the first way):

      depth   the openers minus the closers before the id (1 is the document's own object)
      marks   for each bracket in order, the depth it opens (0 for a closer): the container
              at depth v around a place is the last bracket marked v before it, its key the
              container key just before that bracket, its index in an array the count of
              brackets marked v since the array's own

which is all span finding reads: a trace body's id at depth 1 (TRACE) and at depth 3 under
"observations" (OBSERVATION), a batch event's id at depth 3 and its body's at depth 4. Then
what the reference walk does with them, over bytes: ids replay cannot mint dropped with
every reference to an unmintable defined id, the trace, the further occurrences of each
defined trace id, GraphQL project ids, the first of overlapping spans.

`spans` says None where this cannot answer exactly (a key spelt with an escape, a NUL byte
from a UTF-16 or UTF-32 body; by brackets also a string holding a bracket, containers
nested past 255); the caller then asks keyscan or walks every token.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections.abc import Iterable, Mapping

from capture.corpus import IdKind, IdSpan
from capture.idkinds import IdKinds
from capture.keyscan import ESCAPED_KEY, NOT_STRUCTURE, bracket_marks

BatchKinds = Mapping[int, tuple[int, int]]
"""For each batch event index: the kind of its body's id, and of its event id."""

_BRACKETS_TO_1 = bytes.maketrans(b"{}[]", b"\x01\x01\x01\x01")  # never in valid JSON
_ISO24 = rb"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z"
GQL_PROJECT = re.compile(rb'projectId\s*:\s*\\"([A-Za-z0-9_.:-]+)\\"')
_NO_EVENT = (None, None)
_INSERTED = 32  # trace references put in one by one before one sort is cheaper

_TRACE, _TRACE_REF = int(IdKind.TRACE), int(IdKind.TRACE_REF)
_OBSERVATION, _OBSERVATION_REF = int(IdKind.OBSERVATION), int(IdKind.OBSERVATION_REF)
_TIMESTAMP, _PROJECT = int(IdKind.TIMESTAMP), int(IdKind.PROJECT)
_ID_KINDS = (_TRACE, _TRACE_REF, _OBSERVATION, _OBSERVATION_REF)
_AN_ID, _UNMINTABLE_ID, _A_CONTAINER, _UNMINTABLE_REF = -1, -2, -3, -4  # what a group
# holds, besides a kind; in the spans, an id's stands for its kind until the keys above it
# are known, and an id not marked then stays _AN_ID
_NOT_AN_ID = -5  # a value capture/idkinds.py did not find at an id's place
_Found = tuple[list[IdSpan], list[tuple[int, int]], tuple[int, int] | None]


class SpanScanner:
    """Finds the id and timestamp spans of a valid JSON body by one search.

    `kind_of_key` gives the kind of a value under each key but "id"; `containers` are the
    keys whose containers an id's kind depends on ("observations", "batch", "body");
    `mintable` is spans.mintable as a pattern over a value's bytes (an id or a reference
    replay cannot mint is never marked, but the first trace reference names the trace when
    the body defines none)."""

    def __init__(
        self, kind_of_key: Mapping[str, int], containers: Iterable[str], mintable: bytes
    ) -> None:
        by_kind: dict[int, list[str]] = {}
        for key, kind in kind_of_key.items():
            by_kind.setdefault(kind, []).append(key)
        minted = b"(" + mintable + b')"'
        alternatives = [rb'id"\s*:\s*"(?:' + minted + rb'|([^"\\]+)")']
        self._group_kinds = [0, _AN_ID, _UNMINTABLE_ID]  # group -> what it holds
        for kind, keys in sorted(by_kind.items()):
            names = b"|".join(re.escape(k.encode()) for k in sorted(keys))
            if kind == _TIMESTAMP:
                values, holds = b"(" + _ISO24 + b')"', [kind]
            elif kind == _TRACE_REF:
                values, holds = b"(?:" + minted + rb'|([^"\\]+)")', [kind, _UNMINTABLE_REF]
            elif kind in _ID_KINDS:
                values, holds = minted, [kind]
            else:
                values, holds = rb'([^"\\]+)"', [kind]
            alternatives.append(b"(?:" + names + rb')"\s*:\s*"' + values)
            self._group_kinds += holds
        self._values = _search(alternatives, [*kind_of_key, "id"])  # ids kinded by value
        keyed = b"|".join(re.escape(k.encode()) for k in sorted(containers))
        alternatives.append(b"(" + keyed + rb')"\s*:\s*(?=[{\[])')
        self._group_kinds.append(_A_CONTAINER)
        self._named = _search(alternatives, [*kind_of_key, *containers, "id"])

    def spans(
        self, body: bytes, batch: BatchKinds | None, kinds: IdKinds | None = None
    ) -> tuple[tuple[IdSpan, ...], str | None] | None:
        """The spans of `body` (valid JSON) and its trace, as spans.walked_body_spans gives
        them; `batch` the event kinds of an ingestion batch whose events are all objects,
        None for a trace body; `kinds` the kind of each id value when capture/idkinds.py
        could tell them (the brackets are not counted then). None where this way cannot
        answer."""
        if b"\x00" in body:
            return None
        escaped = b"\\" in body
        if escaped and ESCAPED_KEY.search(body):
            return None
        found = None if kinds is None else self._by_values(body, kinds)
        if found is None:
            found = self._by_brackets(body, batch, escaped)
            if found is None:
                return None
        spans, traces, reference = found
        defined = {body[slice(*at)] for at in traces}
        if escaped and b'\\"' in body and b"projectId" in body:  # GraphQL naming a project
            projects = [
                (m.start(1), m.end(1) - m.start(1), _PROJECT) for m in GQL_PROJECT.finditer(body)
            ]
            spans = disjoint([*spans, *occurrences(body, spans, defined), *projects])
        elif defined:
            spans = _with_trace_refs(body, spans, defined)
        named = traces[0] if traces else reference
        return tuple(spans), None if named is None else body[slice(*named)].decode(
            "utf-8", "replace"
        )

    def _by_values(self, body: bytes, kinds: IdKinds) -> _Found | None:
        """The spans, the trace ids and the first trace reference, each id's kind that of
        its value in `kinds` (or of the id in its place, when `kinds` is in order)."""
        group_kinds = self._group_kinds
        spans: list[IdSpan] = []
        traces: list[tuple[int, int]] = []
        reference: tuple[int, int] | None = None  # the first trace reference
        by_value = kinds if isinstance(kinds, dict) else None
        in_order = kinds if isinstance(kinds, list) else []
        ids = 0  # how many ids so far
        for match in self._values.finditer(body):
            group = match.lastindex or 0
            kind = group_kinds[group]
            start, end = match.span(group)
            if kind >= 0:
                spans.append((start, end - start, kind))
                if kind == _TRACE_REF and reference is None:
                    reference = start, end
            elif kind == _UNMINTABLE_REF:
                if reference is None:
                    reference = start, end
            else:  # an id
                if by_value is not None:
                    named = by_value.get(body[start:end], _NOT_AN_ID)
                elif ids < len(in_order) and in_order[ids][0] == body[start:end]:
                    named = in_order[ids][1]
                else:
                    named = _NOT_AN_ID
                ids += 1
                if named == _NOT_AN_ID:
                    return None
                if named == _TRACE_REF and reference is None:
                    reference = start, end
                if named is None or kind == _UNMINTABLE_ID:
                    continue
                spans.append((start, end - start, named))
                if named == _TRACE:
                    traces.append((start, end))
        if by_value is None and ids != len(in_order):  # a place without its id found
            return None
        return spans, traces, reference

    def _by_brackets(self, body: bytes, batch: BatchKinds | None, escaped: bool) -> _Found | None:
        """The spans, the trace ids and the first trace reference, each id's kind from the
        keys above it (the brackets counted)."""
        group_kinds = self._group_kinds
        spans: list[IdSpan] = []
        places: list[tuple[int, int]] = []  # (where, index in spans or -1 - container's)
        containers: list[bytes] = []
        reference: tuple[int, int] | None = None  # the first trace reference
        for match in self._named.finditer(body):
            group = match.lastindex or 0
            kind = group_kinds[group]
            if kind >= 0:
                start, end = match.span(group)
                spans.append((start, end - start, kind))
                if kind == _TRACE_REF and reference is None:
                    reference = start, end
            elif kind in (_AN_ID, _UNMINTABLE_ID):
                places.append((match.start(), len(spans)))
                start, end = match.span(group)
                spans.append((start, end - start, kind))
            elif kind == _A_CONTAINER:
                places.append((match.start(), -1 - len(containers)))
                containers.append(match.group(group))
            elif reference is None:  # _UNMINTABLE_REF
                reference = match.span(group)
        traces: list[tuple[int, int]] = []
        if len(places) > len(containers):  # an id: its kind from the keys above it
            flat = body.replace(b"\\\\", b"").replace(b'\\"', b"") if escaped else body
            brackets = flat.translate(None, NOT_STRUCTURE).replace(b'""', b"")
            if b'"' in brackets:  # a string holding a bracket: the counts would be wrong
                return None
            marked = _mark_ids(body, brackets, spans, places, containers, batch)
            if marked is None:
                return None
            traces, id_reference, unmarked = marked
            if id_reference is not None and (reference is None or id_reference < reference):
                reference = id_reference
            if unmarked:
                spans = [span for span in spans if span[2] >= 0]
        return spans, traces, reference


def _search(alternatives: list[bytes], names: Iterable[str]) -> re.Pattern[bytes]:
    """One search for the `alternatives` after a quote, `names` the keys they begin with (a
    quote before another letter is passed over at once)."""
    firsts = "".join(sorted({name[0] for name in names}))
    return re.compile(
        b'"(?=[' + re.escape(firsts.encode()) + b"])(?:" + b"|".join(alternatives) + b")"
    )


def _mark_ids(
    body: bytes,
    brackets: bytes,
    spans: list[IdSpan],
    places: list[tuple[int, int]],
    containers: list[bytes],
    batch: BatchKinds | None,
) -> tuple[list[tuple[int, int]], tuple[int, int] | None, bool] | None:
    """Each mintable id's kind in `spans` from the brackets before it; where the trace ids
    are, where the first id that is a trace reference is, and whether an id is left that
    span finding does not mark (with a negative kind). None when containers nest deeper than
    `marks` counts."""
    marked = bracket_marks(brackets)
    if marked is None:
        return None
    depths, marks = marked
    ones = body.translate(_BRACKETS_TO_1)
    keyed: dict[int, bytes] = {}  # bracket index of a container's opener -> its key
    traces: list[tuple[int, int]] = []
    reference: tuple[int, int] | None = None
    unmarked = False
    at = count = 0
    for where, index in places:
        count += ones.count(1, at, where)
        at = where
        if index < 0:
            keyed[count] = containers[-1 - index]
            continue
        depth = depths[count - 1] if count else 0
        kind: int | None = None
        if batch is None:
            if depth == 1:
                kind = _TRACE
            elif depth == 3 and keyed.get(marks.rfind(2, 0, count)) == b"observations":
                kind = _OBSERVATION
        elif depth == 3 or depth == 4:
            array = marks.rfind(2, 0, count)
            if brackets[array] == 0x5B and keyed.get(array) == b"batch":  # [
                event = marks.count(3, array, count) - 1
                if depth == 3:
                    kind = batch.get(event, _NO_EVENT)[1]
                elif keyed.get(marks.rfind(4, 0, count)) == b"body":
                    kind = batch.get(event, _NO_EVENT)[0]
        start, length, which = spans[index]
        if kind is None or which == _UNMINTABLE_ID:
            unmarked = True
        else:
            spans[index] = (start, length, kind)
            if kind == _TRACE:
                traces.append((start, start + length))
        if kind == _TRACE_REF and reference is None:
            reference = (start, start + length)
    return traces, reference, unmarked


def _with_trace_refs(body: bytes, spans: list[IdSpan], traces: set[bytes]) -> list[IdSpan]:
    """`spans` (sorted, disjoint) with the further occurrences of the body's trace ids: each
    not where a span starts nor after a backslash, the first of overlapping ones kept. A
    few go in by bisection; overlapping ones, or many, by one sort of them all."""
    out = spans
    for needle in traces:
        at = body.find(needle)
        while at >= 0:
            j = bisect_left(spans, (at,))
            if (j == len(spans) or spans[j][0] != at) and body[at - 1 : at] != b"\\":
                i = bisect_left(out, (at,)) if out is not spans else j
                if (
                    (i and sum(out[i - 1][:2]) > at)  # overlapping: the first in order is kept
                    or (i < len(out) and at + len(needle) > out[i][0])
                    or len(out) - len(spans) >= _INSERTED
                ):
                    return disjoint([*spans, *occurrences(body, spans, traces)])
                if out is spans:
                    out = list(spans)
                out.insert(i, (at, len(needle), _TRACE_REF))
            at = body.find(needle, at + len(needle))
    return out


def occurrences(body: bytes, spans: list[IdSpan], traces: set[bytes]) -> list[IdSpan]:
    """Every further occurrence of the trace ids: not where a span starts, not escaped."""
    taken = {start for start, _n, _k in spans}
    refs: list[IdSpan] = []
    for needle in traces:
        at = body.find(needle)
        while at >= 0:
            if at not in taken and body[at - 1 : at] != b"\\":
                refs.append((at, len(needle), _TRACE_REF))
            at = body.find(needle, at + len(needle))
    return refs


def disjoint(spans: list[IdSpan]) -> list[IdSpan]:
    """`spans` sorted, the first of overlapping ones kept."""
    out: list[IdSpan] = []
    end = -1
    for span in sorted(spans):
        if span[0] >= end:
            out.append(span)
            end = span[0] + span[1]
    return out
