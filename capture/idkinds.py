"""The kinds of a body's "id" values read from its parsed document: how span finding names
each id without counting the brackets above it.

The reference walk (capture/spans.py) gives an id its kind from the keys above it: a trace
body's own id is TRACE, the id of each of its observations OBSERVATION; a batch event's id
has the event's kind and the id of its body the body's (`spans._event_kinds`); any other id
is unmarked. The parsed document says which value sits at each of those places. Tying a
value found in the bytes to its place needs two facts:

    every "id" key is at one of those places   an "id" key spelt without escape (a key with
                                                an escape sends span finding another way)
                                                holds `"id"` in the bytes, and no two such
                                                keys overlap; so when `"id"` occurs in the
                                                bytes exactly as often as the document has
                                                ids at those places, every "id" key is one
                                                of them (a second "id" in one object, or a
                                                second "observations", would be one more)
    a value names one kind                     a plain string value's bytes are the UTF-8
                                                of its value; when no two places with
                                                different kinds hold the same value, an id
                                                found in the bytes has the kind of the place
                                                holding its value

When two places of different kinds hold one value (a batch that creates an observation and
updates it), the places are taken in document order instead: json.loads keeps an object's
keys in the order they come, except a repeated key, which keeps its first place and its last
value; so when the keys that order the places ("observations" in a trace body, "body" in an
event) occur once each, and every place holding a non-empty string is found in the bytes
(one found for each, none with an escape), the n-th id found is the n-th such place.

`id_kinds` says None when these fail, and the search (capture/spanscan.py) gives up when
an id it finds is not the next place's value or a place is left without one; span finding
then counts brackets or walks.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from capture.corpus import IdKind

ByValue = dict[bytes, int | None]
"""The kind of each id value (its bytes in the body); None for an id span finding does not
mark (a batch event whose type is not a string)."""
InOrder = list[tuple[bytes, int | None]]
"""Each id value (its bytes) and its kind, in document order, for every place holding a
non-empty string: the n-th id the search finds is the n-th, with that value."""
IdKinds = ByValue | InOrder

_TRACE, _OBSERVATION = int(IdKind.TRACE), int(IdKind.OBSERVATION)
_NO_EVENT: tuple[None, None] = (None, None)


def id_kinds(body: bytes, doc: Any, batch: Mapping[int, tuple[int, int]] | None) -> IdKinds | None:
    """The kind of every id value of `body`, parsed as `doc`: a trace body when `batch` is
    None, else an ingestion batch whose events are all objects, `batch` their kinds (body
    id, event id). By value when no value names two kinds, else in document order; None
    when an id found in the bytes could be at another place than the one given it."""
    places = _trace_ids(doc) if batch is None else _batch_ids(doc, batch)
    if body.count(b'"id"') != len(places):
        return None
    kinds: ByValue = {}
    for value, kind in places:
        if isinstance(value, str):
            raw = value.encode("utf-8", "surrogatepass")  # as json.loads read the bytes
            if kinds.setdefault(raw, kind) != kind:
                return _in_order(body, doc, batch)
    return kinds


def _in_order(body: bytes, doc: Any, batch: Mapping[int, tuple[int, int]] | None) -> InOrder | None:
    """The places holding a non-empty string, in document order (an object's keys as they
    come); None when a repeated key could have moved one."""
    places: list[tuple[Any, int | None]] = []
    if batch is None:
        if body.count(b'"observations"') > 1:
            return None
        for key in doc:
            if key == "id":
                places.append((doc["id"], _TRACE))
            elif key == "observations":
                places += _observation_ids(doc["observations"])
    else:
        events = doc["batch"]
        if body.count(b'"body"') != sum("body" in event for event in events):
            return None
        for index, event in enumerate(events):
            body_kind, event_kind = batch.get(index, _NO_EVENT)
            for key in event:
                if key == "id":
                    places.append((event["id"], event_kind))
                elif key == "body" and isinstance(event["body"], dict) and "id" in event["body"]:
                    places.append((event["body"]["id"], body_kind))
    return [
        (value.encode("utf-8", "surrogatepass"), kind)
        for value, kind in places
        if isinstance(value, str) and value
    ]


def _trace_ids(doc: Any) -> list[tuple[Any, int | None]]:
    """The id of a trace body, and of each of its observations, with its kind."""
    if not isinstance(doc, dict):
        return []
    places: list[tuple[Any, int | None]] = [(doc["id"], _TRACE)] if "id" in doc else []
    return places + _observation_ids(doc.get("observations"))


def _observation_ids(observations: Any) -> list[tuple[Any, int | None]]:
    """The id of each observation of a trace body, with its kind."""
    if isinstance(observations, dict):
        observations = observations.values()
    elif not isinstance(observations, list):
        return []
    return [
        (observation["id"], _OBSERVATION)
        for observation in observations
        if isinstance(observation, dict) and "id" in observation
    ]


def _batch_ids(doc: Any, batch: Mapping[int, tuple[int, int]]) -> list[tuple[Any, int | None]]:
    """The id of each event of a batch, and of its body, with its kind."""
    places: list[tuple[Any, int | None]] = []
    for index, event in enumerate(doc["batch"]):
        body_kind, event_kind = batch.get(index, _NO_EVENT)
        if "id" in event:
            places.append((event["id"], event_kind))
        inner = event.get("body")
        if isinstance(inner, dict) and "id" in inner:
            places.append((inner["id"], body_kind))
    return places
