"""Where the ids and timestamps of a real AgentTrace request are, found from its bytes.

Synthesis knows its spans by construction (capture/synth.py); recorded and imported traffic
does not, so `find_spans(body, path, method)` finds them, and gives the same spans synth
writes for the same bytes (tests/capture/test_spans.py checks every synthetic record).

Two steps. The *roles* of values come from the JSON structure, by key name:

    POST /api/public/traces      the trace's ``id`` defines a trace (TRACE); each entry of
                                 ``observations`` defines an observation by its ``id``
                                 (OBSERVATION), names its trace by ``trace_id``/``traceId``
                                 (TRACE_REF) and its parent by ``parent_observation_id``/
                                 ``parentObservationId`` (OBSERVATION_REF)
    POST /api/public/ingestion   each event of ``batch``: the event ``id`` is minted fresh like
                                 an observation's (OBSERVATION); its ``body`` defines a trace
                                 (``trace-create``) or an observation (``span-``,
                                 ``generation-``, ``event-create``) by ``id``; an ``-update``
                                 refers to one (TRACE_REF, OBSERVATION_REF)
    GET /api/public/traces/{id}  the id in the path (TRACE_REF: a read of a trace)
    GET /api/projects/{id}       the project in the path (PROJECT)
    POST /graphql                ``projectId`` in the query text or in ``variables`` (PROJECT)

and timestamps are the values of ``timestamp``, ``start_time``, ``end_time`` and
``completion_start_time`` (either spelling) in the form replay moves (24 characters,
``YYYY-MM-DDTHH:MM:SS.mmmZ``). Then every *occurrence* of those values in the raw bytes gets a
span: an id where it is the value of an ``id`` key is the defining kind, anywhere else (a
``trace_id`` field, a name such as ``load-test-trace-<id>``) a reference; a timestamp
wherever it is a whole JSON string.

Ids that replay could not mint uniquely (fewer than 16 ASCII characters, or the last 12 not
letters or digits: the rule of replay/rewrite.py) are left unmarked and so replayed as
recorded; so are bodies that are not JSON, and paths outside AgentTrace's API.
"""

from __future__ import annotations

import json
import re
from typing import Any, NamedTuple
from urllib.parse import unquote

from capture.corpus import IdKind, IdSpan

TRACE, TRACE_REF = int(IdKind.TRACE), int(IdKind.TRACE_REF)
OBSERVATION, OBSERVATION_REF = int(IdKind.OBSERVATION), int(IdKind.OBSERVATION_REF)
TIMESTAMP, PROJECT = int(IdKind.TIMESTAMP), int(IdKind.PROJECT)

TRACES = "/api/public/traces"
INGESTION = "/api/public/ingestion"
METRICS = "/api/public/metrics/"
GRAPHQL = "/graphql"
PROJECTS = "/api/projects/"

TIMESTAMP_KEYS = frozenset(
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
_TRACE_KEYS = ("trace_id", "traceId")
_PARENT_KEYS = ("parent_observation_id", "parentObservationId")
_OBSERVATION_EVENTS = ("span-", "generation-", "event-")

_STAMP = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z\Z")
_PLAIN_ID = re.compile(r"[A-Za-z0-9_.:-]+\Z")  # needs no JSON escaping, so found verbatim
_ID_KEY_BEFORE = re.compile(rb'"id"\s*:\s*"\Z')
_PROJECT_IN_QUERY = re.compile(rb'projectId\s*:\s*\\"([A-Za-z0-9_.:-]+)\\"')
_PROJECT_IN_VARIABLES = re.compile(rb'"projectId"\s*:\s*"([A-Za-z0-9_.:-]+)"')
_ALNUM = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")

# replay/rewrite.py's rule: 4 letters or digits (worker and nonce), then a tag of 12.
_MINTABLE = re.compile(r"(?:[_.:-]*[A-Za-z0-9]){4}[A-Za-z0-9_.:-]*?[A-Za-z0-9]{12}\Z")


class FoundSpans(NamedTuple):
    """What a request is (its endpoint tag, None outside AgentTrace's API) and where its ids
    and timestamps are, as Record wants them."""

    endpoint: str | None
    body_ids: tuple[IdSpan, ...]
    path_ids: tuple[IdSpan, ...]
    trace: str | None


def endpoint_of(method: str, path: str) -> str | None:
    """The corpus endpoint tag of an AgentTrace API request, or None for any other request."""
    route, _, query = path.partition("?")
    if route == TRACES or route == TRACES + "/":
        if method == "POST":
            return "ingest"
        if method == "GET":
            return "search" if _has_param(query, "search") else "list"
        return None
    if route.startswith(TRACES + "/"):
        return "get" if method == "GET" and "/" not in route[len(TRACES) + 1 :] else None
    if route == INGESTION:
        return "batch" if method == "POST" else None
    if route.startswith(METRICS) and len(route) > len(METRICS):
        return "metrics" if method == "GET" else None
    if route == GRAPHQL:
        return "graphql" if method == "POST" else None
    if route.startswith(PROJECTS) and len(route) > len(PROJECTS):
        return "project" if method == "GET" and "/" not in route[len(PROJECTS) :] else None
    return None


def _has_param(query: str, name: str) -> bool:
    return any(part.partition("=")[0] == name for part in query.split("&"))


def mintable(value: str) -> bool:
    """Whether replay can mint a unique id of this shape (replay/rewrite.py's check_id): at
    least 16 characters needing no JSON escaping, the last 12 letters or digits, and 4
    letters or digits before them."""
    return _MINTABLE.match(value) is not None


def find_spans(body: bytes, path: str, method: str | None = None) -> FoundSpans:
    """The endpoint, body spans, path spans and trace of one request (see the module doc).

    `method` defaults to POST for a request with a body and GET for one without.
    """
    if method is None:
        method = "POST" if body else "GET"
    endpoint = endpoint_of(method, path)
    if endpoint is None:
        return FoundSpans(None, (), (), None)
    path_ids: tuple[IdSpan, ...] = ()
    trace: str | None = None
    if endpoint in ("get", "project"):
        prefix = TRACES + "/" if endpoint == "get" else PROJECTS
        route = path.partition("?")[0]
        value = unquote(route[len(prefix) :])
        if endpoint == "get" and mintable(value) and value == route[len(prefix) :]:
            path_ids = ((len(prefix), len(value), TRACE_REF),)
            trace = value
        elif endpoint == "project" and value and _PLAIN_ID.match(value):
            path_ids = ((len(prefix), len(value), PROJECT),)
    if not body:
        return FoundSpans(endpoint, (), path_ids, trace)
    if endpoint == "graphql":
        return FoundSpans(endpoint, _graphql_spans(body), path_ids, trace)
    if endpoint not in ("ingest", "batch"):
        return FoundSpans(endpoint, (), path_ids, trace)
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return FoundSpans(endpoint, (), path_ids, trace)
    roles = _Roles()
    if endpoint == "ingest":
        roles.trace(doc)
    else:
        roles.batch(doc)
    return FoundSpans(endpoint, roles.locate(body), path_ids, roles.first_trace)


class _Roles:
    """Id and timestamp values by role, collected from the parsed body."""

    def __init__(self) -> None:
        self.traces: dict[str, None] = {}  # defined here (ordered: the first is the record's)
        self.observations: set[str] = set()
        self.trace_refs: dict[str, None] = {}
        self.observation_refs: set[str] = set()
        self.stamps: set[str] = set()

    @property
    def first_trace(self) -> str | None:
        for trace in (*self.traces, *self.trace_refs):
            return trace
        return None

    def _id(self, obj: dict[str, Any], key: str, into: dict[str, None] | set[str]) -> None:
        value = obj.get(key)
        if isinstance(value, str) and mintable(value):
            if isinstance(into, dict):
                into.setdefault(value, None)
            else:
                into.add(value)

    def _stamps(self, obj: dict[str, Any]) -> None:
        for key in TIMESTAMP_KEYS.intersection(obj):
            value = obj[key]
            if isinstance(value, str) and _STAMP.match(value):
                self.stamps.add(value)

    def trace(self, obj: Any) -> None:
        """The guide's trace payload: a trace with its observations."""
        if not isinstance(obj, dict):
            return
        self._id(obj, "id", self.traces)
        self._stamps(obj)
        observations = obj.get("observations")
        if isinstance(observations, list):
            for observation in observations:
                self.observation(observation, defines=True)

    def observation(self, obj: Any, *, defines: bool) -> None:
        if not isinstance(obj, dict):
            return
        self._id(obj, "id", self.observations if defines else self.observation_refs)
        for key in _TRACE_KEYS:
            self._id(obj, key, self.trace_refs)
        for key in _PARENT_KEYS:
            self._id(obj, key, self.observation_refs)
        self._stamps(obj)

    def batch(self, obj: Any) -> None:
        """An ingestion batch: events, each wrapping a trace or an observation."""
        events = obj.get("batch") if isinstance(obj, dict) else None
        if not isinstance(events, list):
            return
        for event in events:
            if not isinstance(event, dict):
                continue
            self._id(event, "id", self.observations)
            self._stamps(event)
            kind, body = event.get("type"), event.get("body")
            if not isinstance(kind, str) or not isinstance(body, dict):
                continue
            update = kind.endswith("-update")
            if kind.startswith("trace-"):
                self._id(body, "id", self.trace_refs if update else self.traces)
                self._stamps(body)
            elif kind.startswith(_OBSERVATION_EVENTS):
                self.observation(body, defines=not update)

    def locate(self, body: bytes) -> tuple[IdSpan, ...]:
        """Spans for every occurrence of the collected values, in order, none overlapping."""
        found: list[IdSpan] = []
        for value in self.traces:
            _occurrences(body, value, TRACE, TRACE_REF, found)
        for value in self.observations:
            _occurrences(body, value, OBSERVATION, OBSERVATION_REF, found)
        for value in self.trace_refs:
            if value not in self.traces:
                _occurrences(body, value, TRACE_REF, TRACE_REF, found)
        for value in self.observation_refs:
            if value not in self.observations:
                _occurrences(body, value, OBSERVATION_REF, OBSERVATION_REF, found)
        for value in self.stamps:
            quoted = b'"' + value.encode("ascii") + b'"'
            at = body.find(quoted)
            while at >= 0:
                found.append((at + 1, len(quoted) - 2, TIMESTAMP))
                at = body.find(quoted, at + len(quoted))
        found.sort()
        spans: list[IdSpan] = []
        end = 0
        for span in found:
            if span[0] >= end:
                spans.append(span)
                end = span[0] + span[1]
        return tuple(spans)


def _occurrences(body: bytes, value: str, defining: int, ref: int, out: list[IdSpan]) -> None:
    """Every whole-token occurrence of id `value`: `defining` where it is an ``id`` value."""
    raw = value.encode("ascii")
    at = body.find(raw)
    while at >= 0:
        end = at + len(raw)
        if (at == 0 or body[at - 1] not in _ALNUM) and (
            end == len(body) or body[end] not in _ALNUM
        ):
            kind = ref
            if body[at - 6 : at] == b'"id":"' or (
                body[at - 2 : at] != b':"' and _ID_KEY_BEFORE.search(body, max(0, at - 32), at)
            ):
                kind = defining
            out.append((at, len(raw), kind))
        at = body.find(raw, end)


def _graphql_spans(body: bytes) -> tuple[IdSpan, ...]:
    spans = [
        (match.start(1), match.end(1) - match.start(1), PROJECT)
        for pattern in (_PROJECT_IN_QUERY, _PROJECT_IN_VARIABLES)
        for match in pattern.finditer(body)
    ]
    return tuple(sorted(spans))
