"""Where the ids and timestamps of an AgentTrace request are, found by key name.

synth knows its spans because it writes the body; a recorded or imported body is found by
walking its JSON tokens in place (a regex tokenizer over the raw bytes, so every span is a
byte offset into exactly the bytes replay will send) and naming each string value by the
keys above it:

    trace body (POST /api/public/traces)   id -> TRACE; observations[i].id -> OBSERVATION
    batch (POST /api/public/ingestion)     batch[i].id -> OBSERVATION (an event id, minted
                                           like one); batch[i].body.id -> TRACE for
                                           trace-create, OBSERVATION for *-create, and the
                                           REF kinds for *-update
    anywhere                               trace_id/traceId -> TRACE_REF,
                                           parent_observation_id/parentObservationId ->
                                           OBSERVATION_REF, projectId/project_id -> PROJECT,
                                           a 24-byte ISO time under a time key -> TIMESTAMP
    after that                             every other occurrence of a defined trace id in
                                           the body (a name like "load-test-trace-<id>") ->
                                           TRACE_REF, as synth marks it
    path                                   /api/public/traces/<id> -> TRACE_REF,
                                           /api/projects/<id> and projectId=<id> -> PROJECT

An id replay could not mint uniquely (shorter than 16 ASCII characters, or not ending in 12
letters or digits: replay.rewrite's rule) is left unmarked together with every reference to
it, so such a record replays with its recorded ids instead of being refused. Strings holding
a JSON escape are never marked: their bytes are not their value; nor is anything in a
UTF-16 or UTF-32 body (replay splices ASCII ids into bytes).

That walk (`walked_body_spans`) is the reference. `body_spans` asks faster ways first, each
giving exactly its answer or none: the same walk compiled (capture/_spanwalk.c, when it was
built), then one regex search (capture/spanscan.py), then keyscan's (capture/keyscan.py).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from functools import lru_cache
from typing import Any, NamedTuple

from capture.corpus import IdKind, IdSpan
from capture.idkinds import id_kinds
from capture.json_body import NOT_JSON, parsed
from capture.keyscan import KeyScanner
from capture.spanscan import GQL_PROJECT, SpanScanner, disjoint, occurrences

try:
    from capture import _spanwalk
except ImportError:  # not built (no C compiler at install): the Python ways answer alone
    _spanwalk = None  # type: ignore[assignment]

_TOKEN = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|[{}\[\]:,]')
_ALNUM = re.compile(r"[A-Za-z0-9]")
_ISO24 = re.compile(rb"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z\Z")

TRACE_REF_KEYS = frozenset({"trace_id", "traceId"})
OBSERVATION_REF_KEYS = frozenset({"parent_observation_id", "parentObservationId"})
PROJECT_KEYS = frozenset({"project_id", "projectId"})
TIME_KEYS = frozenset(
    {
        "timestamp",
        "start_time",
        "startTime",
        "end_time",
        "endTime",
        "completion_start_time",
        "completionStartTime",
    }
)
TRACES_PATH = "/api/public/traces"
PROJECTS_PATH = "/api/projects/"
MIN_ID_LENGTH = 16  # replay.rewrite.MIN_ID_LENGTH: worker, nonce and a 12-digit tag
TAG_DIGITS = 12

Key = str | int
_AS_JSON = ("utf-8", "surrogatepass")  # how json.loads decodes UTF-8 (capture/json_body.py)


class Spans(NamedTuple):
    """The spans of one request, sorted and disjoint, and the trace it belongs to."""

    body_ids: tuple[IdSpan, ...]
    path_ids: tuple[IdSpan, ...]
    trace: str | None


def mintable(value: str) -> bool:
    """Whether replay can mint a unique fresh id of this one's shape (replay.rewrite.check_id)."""
    if len(value) < MIN_ID_LENGTH or not value.isascii() or not value[-TAG_DIGITS:].isalnum():
        return False
    if '"' in value or "\\" in value:  # what JSON would escape: its bytes are not its value
        return False
    if value[:4].isalnum():  # four of them already, before the tag
        return True
    return len(_ALNUM.findall(value, 0, len(value) - TAG_DIGITS)) >= 4


def json_strings(body: bytes) -> Iterator[tuple[tuple[Key, ...], int, int]]:
    """(keys above it, start, end) of every string value of a valid JSON document, in order;
    start and end bound the bytes between its quotes. Object keys are not values."""
    objects: list[bool] = []  # for each open container: whether it is an object
    keys: list[Any] = []  # for each open container: its current key or index
    expect_key = False
    for match in _TOKEN.finditer(body):
        first = body[match.start()]
        if first == 0x22:  # '"'
            if expect_key and objects and objects[-1]:
                raw = match.group()
                keys[-1] = json.loads(raw) if b"\\" in raw else raw[1:-1].decode(*_AS_JSON)
                continue
            yield tuple(keys), match.start() + 1, match.end() - 1
        elif first == 0x7B:  # '{'
            objects.append(True)
            keys.append(None)
            expect_key = True
        elif first == 0x5B:  # '['
            objects.append(False)
            keys.append(0)
        elif first in (0x7D, 0x5D):  # '}' ']'
            if objects:
                objects.pop()
                keys.pop()
        elif first == 0x3A:  # ':'
            expect_key = False
        elif objects:  # ','
            if objects[-1]:
                expect_key = True
            else:
                keys[-1] += 1
    return


def _event_kinds(doc: Any) -> dict[int, tuple[int, int]]:
    """For each batch event index: the kind of its body's id, and of its event id."""
    kinds: dict[int, tuple[int, int]] = {}
    batch = doc.get("batch") if isinstance(doc, dict) else None
    if not isinstance(batch, list):
        return kinds
    for i, event in enumerate(batch):
        kind = event.get("type") if isinstance(event, dict) else None
        if not isinstance(kind, str):
            continue
        update = kind.endswith("-update")
        if kind.startswith("trace-"):
            body_kind = IdKind.TRACE_REF if update else IdKind.TRACE
        else:
            body_kind = IdKind.OBSERVATION_REF if update else IdKind.OBSERVATION
        kinds[i] = (int(body_kind), int(IdKind.OBSERVATION))
    return kinds


def _id_kind(keys: tuple[Key, ...], batch: dict[int, tuple[int, int]] | None) -> int | None:
    """The kind of a value under an "id" key, `keys` the keys above it (the last "id")."""
    if batch is None:  # a trace body
        if len(keys) == 1:
            return int(IdKind.TRACE)
        if len(keys) == 3 and keys[0] == "observations":
            return int(IdKind.OBSERVATION)
        return None
    if len(keys) == 3 and keys[0] == "batch" and isinstance(keys[1], int):
        return batch.get(keys[1], (None, None))[1]
    if len(keys) == 4 and keys[0] == "batch" and keys[2] == "body" and isinstance(keys[1], int):
        return batch.get(keys[1], (None, None))[0]
    return None


def body_spans(body: bytes, doc: Any = None) -> tuple[tuple[IdSpan, ...], str | None]:
    """The spans of a JSON body (parsed as `doc` when the caller has it) and its trace id."""
    return _body_spans(body, doc, fast=True)


def walked_body_spans(body: bytes, doc: Any = None) -> tuple[tuple[IdSpan, ...], str | None]:
    """`body_spans` by the reference walk over every JSON token (`json_strings`), never by
    keyscan's fast path: the two give the same spans."""
    return _body_spans(body, doc, fast=False)


def _body_spans(body: bytes, doc: Any, fast: bool) -> tuple[tuple[IdSpan, ...], str | None]:
    if fast:
        compiled = compiled_body_spans(body)
        if compiled is not None:
            return compiled
    if b"\x00" in body:  # UTF-16 or UTF-32 (JSON in UTF-8 holds no NUL): no span is its text
        return (), None
    if doc is None:
        doc = parsed(body)
        if doc is NOT_JSON:
            return (), None
    batch = _event_kinds(doc) if isinstance(doc, dict) and "batch" in doc else None
    strings = None
    if fast and (batch is None or _batch_scannable(body, doc)):
        quick = _SPAN_SCANNER.spans(body, batch, id_kinds(body, doc, batch))
        if quick is not None:
            return quick
        strings = _SCANNER.scan(body)
    found: list[tuple[int, int, int, str]] = []
    for keys, start, end in json_strings(body) if strings is None else strings:
        key = keys[-1] if keys else None
        kind = _id_kind(keys, batch) if key == "id" else _KIND_OF_KEY.get(key)
        if kind is None:
            continue
        raw = body[start:end]
        if b"\\" in raw or not raw:
            continue
        if kind == IdKind.TIMESTAMP and not _ISO24.match(raw):
            continue
        found.append((start, end - start, kind, raw.decode("utf-8", "replace")))
    mints = {v: mintable(v) for _s, _n, k, v in found if k in _ID_KINDS}
    defined = {v for _s, _n, k, v in found if k in (IdKind.TRACE, IdKind.OBSERVATION)}
    unmintable = {v for v in defined if not mints[v]}
    spans: list[IdSpan] = []
    trace: str | None = None
    for start, length, kind, value in found:
        if kind in _ID_KINDS and (value in unmintable or not mints[value]):
            continue
        if kind == IdKind.TRACE and trace is None:
            trace = value
        spans.append((start, length, kind))
    if trace is None:
        trace = next((v for _s, _n, k, v in found if k == IdKind.TRACE_REF and v), None)
    own = {v.encode("ascii") for _s, _n, k, v in found if k == IdKind.TRACE and mintable(v)}
    spans += occurrences(body, spans, own)  # further occurrences of its own trace ids
    if b"projectId" in body and b'\\"' in body:  # a GraphQL document naming a project
        spans += [
            (m.start(1), m.end(1) - m.start(1), int(IdKind.PROJECT))
            for m in GQL_PROJECT.finditer(body)
        ]
    return tuple(disjoint(spans)), trace


_KIND_OF_KEY: dict[Key | None, int] = {
    **dict.fromkeys(TIME_KEYS, int(IdKind.TIMESTAMP)),
    **dict.fromkeys(TRACE_REF_KEYS, int(IdKind.TRACE_REF)),
    **dict.fromkeys(OBSERVATION_REF_KEYS, int(IdKind.OBSERVATION_REF)),
    **dict.fromkeys(PROJECT_KEYS, int(IdKind.PROJECT)),
}  # the kind of a value under any key but "id" (`_id_kind`)
_SCANNER = KeyScanner(
    TIME_KEYS | TRACE_REF_KEYS | OBSERVATION_REF_KEYS | PROJECT_KEYS | {"id"},
    paths={"id"},
    containers={"observations", "batch", "body"},
)

_MINTABLE = (  # `mintable` as a pattern over a value's bytes, up to the end of the value:
    # four letters or digits, then a tag's length or more (and the whole id's), the tag
    # read backwards from the end: no backtracking
    rb"(?:[^A-Za-z0-9\"\\\x80-\xff]*+[A-Za-z0-9]){4}(?=[^\"\\\x80-\xff]{%d})"
    rb"[^\"\\\x80-\xff]*+(?<=[A-Za-z0-9]{%d})" % (max(TAG_DIGITS, MIN_ID_LENGTH - 4), TAG_DIGITS)
)
_NAMED_KINDS = {k: v for k, v in _KIND_OF_KEY.items() if isinstance(k, str)}
if _spanwalk is not None:
    _spanwalk.configure([(key.encode(), kind) for key, kind in _NAMED_KINDS.items()])
COMPILED = _spanwalk is not None
"""Whether capture/_spanwalk.c was built: span finding in one compiled pass."""


def compiled_body_spans(body: bytes) -> tuple[tuple[IdSpan, ...], str | None] | None:
    """`walked_body_spans(body)` from the compiled walk, or None where it is not built or
    cannot answer exactly (a body that is not plain JSON, a key holding an escape, ...)."""
    if _spanwalk is None:
        return None
    found = _spanwalk.body_spans(body)
    if found is None:
        return None
    spans, start, end = found
    return spans, None if start < 0 else body[start:end].decode("utf-8", "replace")


_SPAN_SCANNER = SpanScanner(
    _NAMED_KINDS,
    containers={"observations", "batch", "body"},
    mintable=_MINTABLE,
)


def _batch_scannable(body: bytes, doc: Any) -> bool:
    """Whether keyscan's array indexes are the batch's: one "batch" in the body, holding
    objects only (keyscan counts only the containers in an array)."""
    batch = doc["batch"]
    return (
        body.count(b'"batch"') == 1
        and isinstance(batch, list)
        and all(isinstance(event, dict) for event in batch)
    )


_ID_KINDS = (IdKind.TRACE, IdKind.TRACE_REF, IdKind.OBSERVATION, IdKind.OBSERVATION_REF)


def path_spans(path: str) -> tuple[tuple[IdSpan, ...], str | None]:
    """The spans of a request target (byte offsets into its UTF-8) and the trace it names.
    A recording repeats its targets (one for every ingestion): the last 4,096 short ones
    are remembered (at most a few MB, however long the targets a client sends)."""
    if len(path) <= _REMEMBERED_PATH:
        return _remembered_path_spans(path)
    return _path_spans(path)


def _path_spans(path: str) -> tuple[tuple[IdSpan, ...], str | None]:
    raw = path.encode("utf-8")
    route, _, query = raw.partition(b"?")
    spans: list[IdSpan] = []
    trace: str | None = None
    prefix = (TRACES_PATH + "/").encode()
    if route.startswith(prefix) and len(route) > len(prefix) and b"/" not in route[len(prefix) :]:
        spans.append((len(prefix), len(route) - len(prefix), int(IdKind.TRACE_REF)))
        trace = route[len(prefix) :].decode("utf-8", "replace")
    project = PROJECTS_PATH.encode()
    if route.startswith(project) and len(route) > len(project):
        rest = route[len(project) :].split(b"/", 1)[0]
        spans.append((len(project), len(rest), int(IdKind.PROJECT)))
    at = len(route) + 1
    for pair in query.split(b"&") if query else ():
        name, eq, value = pair.partition(b"=")
        if eq and value and name.decode("latin-1") in PROJECT_KEYS:
            spans.append((at + len(name) + 1, len(value), int(IdKind.PROJECT)))
        at += len(pair) + 1
    return tuple(spans), trace


_REMEMBERED_PATH = 512  # characters
_remembered_path_spans = lru_cache(maxsize=4096)(_path_spans)


def find_spans(body: bytes, path: str) -> Spans:
    """The id and timestamp spans of a request's body and path, and the trace it belongs to
    (the trace a body defines, else one it references, else the one its path reads)."""
    body_ids, body_trace = body_spans(body) if body.strip() else ((), None)
    path_ids, path_trace = path_spans(path)
    return Spans(body_ids, path_ids, body_trace or path_trace)
