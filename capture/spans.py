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
``YYYY-MM-DDTHH:MM:SS.mmmZ``). Then the raw bytes are searched once (one regular expression
for every ``"key": "value"`` pair with one of those keys): an id that is the value of an
``id`` key gets its defining kind, of any other key its reference kind; a trace id also gets
a reference span wherever else it stands as a whole token (a name such as
``load-test-trace-<id>``).

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

_PLAIN_ID = re.compile(r"[A-Za-z0-9_.:-]+\Z")  # needs no JSON escaping, so found verbatim
# Every "key": "value" pair whose key names an id or a timestamp (the lookahead skips most
# quotes at once: a third faster than the plain alternation).
_PAIR = re.compile(
    rb'"(?=[ipstce])(id|t(?:race_id|raceId|imestamp)|parent(?:_observation_id|ObservationId)|'
    rb'start(?:_time|Time)|end(?:_time|Time)|completion(?:_start_time|StartTime))"\s*:\s*"'
    rb'([^"\\]*)"'
)
_STAMP_KEYS_RAW = frozenset(key.encode("ascii") for key in TIMESTAMP_KEYS)
_STAMP_RAW = re.compile(rb"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z")
_PROJECT_IN_QUERY = re.compile(rb'projectId\s*:\s*\\"([A-Za-z0-9_.:-]+)\\"')
_PROJECT_IN_VARIABLES = re.compile(rb'"projectId"\s*:\s*"([A-Za-z0-9_.:-]+)"')
_ALNUM = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
_ALNUM_BYTES = frozenset(bytes([c]) for c in _ALNUM)

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


_NEVER = -1  # (TRACE is 0, the smallest kind): a value that is not a mintable id


class _Roles:
    """The ids of a body by role, collected from its parsed JSON: for each raw id, the kind
    of its span where it is the value of an ``id`` key and the kind everywhere else."""

    def __init__(self) -> None:
        self.kinds: dict[bytes, tuple[int, int]] = {}
        self._seen: dict[str, int] = {}  # the defining kind of each value seen so far
        self._defined: str | None = None
        self._referenced: str | None = None

    def _add(self, value: object, defining: int, ref: int) -> None:
        if not isinstance(value, str):
            return
        seen = self._seen.get(value)
        if seen is not None and seen <= defining:  # known already (or not an id at all)
            return
        if _MINTABLE.match(value) is None:
            self._seen[value] = _NEVER
            return
        self._seen[value] = defining  # a definition wins over a reference
        self.kinds[value.encode("ascii")] = (defining, ref)
        if defining == TRACE and self._defined is None:
            self._defined = value
        elif ref == TRACE_REF and self._referenced is None:
            self._referenced = value

    @property
    def first_trace(self) -> str | None:
        """The trace the request belongs to: the first it defines, else the first it names."""
        return self._defined if self._defined is not None else self._referenced

    def trace(self, obj: Any) -> None:
        """The guide's trace payload: a trace with its observations."""
        if not isinstance(obj, dict):
            return
        self._add(obj.get("id"), TRACE, TRACE_REF)
        observations = obj.get("observations")
        if isinstance(observations, list):
            for observation in observations:
                self.observation(observation, defines=True)

    def observation(self, obj: Any, *, defines: bool) -> None:
        if not isinstance(obj, dict):
            return
        if defines:
            self._add(obj.get("id"), OBSERVATION, OBSERVATION_REF)
        else:
            self._add(obj.get("id"), OBSERVATION_REF, OBSERVATION_REF)
        for key in _TRACE_KEYS:
            self._add(obj.get(key), TRACE_REF, TRACE_REF)
        for key in _PARENT_KEYS:
            self._add(obj.get(key), OBSERVATION_REF, OBSERVATION_REF)

    def batch(self, obj: Any) -> None:
        """An ingestion batch: events, each wrapping a trace or an observation."""
        events = obj.get("batch") if isinstance(obj, dict) else None
        if not isinstance(events, list):
            return
        for event in events:
            if not isinstance(event, dict):
                continue
            self._add(event.get("id"), OBSERVATION, OBSERVATION_REF)
            kind, body = event.get("type"), event.get("body")
            if not isinstance(kind, str) or not isinstance(body, dict):
                continue
            update = kind.endswith("-update")
            if kind.startswith("trace-"):
                self._add(body.get("id"), TRACE_REF if update else TRACE, TRACE_REF)
            elif kind.startswith(_OBSERVATION_EVENTS):
                self.observation(body, defines=not update)

    def locate(self, body: bytes) -> tuple[IdSpan, ...]:
        """Spans, in order and none overlapping: every id where it is the value of a key
        that names one, every trace id anywhere else as a whole token, every timestamp."""
        kinds = self.kinds
        found: list[IdSpan] = []
        append = found.append
        for match in _PAIR.finditer(body):
            key, value = match.group(1, 2)
            if key in _STAMP_KEYS_RAW:
                if len(value) == 24 and _STAMP_RAW.match(value):
                    append((match.start(2), 24, TIMESTAMP))
                continue
            role = kinds.get(value)
            if role is not None:
                append((match.start(2), len(value), role[0] if key == b"id" else role[1]))
        for raw, (_defining, ref) in kinds.items():
            if ref != TRACE_REF:
                continue
            size = len(raw)
            at = body.find(raw)
            while at >= 0:
                end = at + size
                if (at == 0 or body[at - 1] not in _ALNUM) and body[
                    end : end + 1
                ] not in _ALNUM_BYTES:
                    append((at, size, TRACE_REF))
                at = body.find(raw, end)
        found.sort()
        spans: list[IdSpan] = []
        end = 0
        for span in found:
            if span[0] >= end:
                spans.append(span)
                end = span[0] + span[1]
        return tuple(spans)


def _graphql_spans(body: bytes) -> tuple[IdSpan, ...]:
    spans = [
        (match.start(1), match.end(1) - match.start(1), PROJECT)
        for pattern in (_PROJECT_IN_QUERY, _PROJECT_IN_VARIABLES)
        for match in pattern.finditer(body)
    ]
    return tuple(sorted(spans))
