"""Ingestion-shaped JSON bodies for span-finding tests (hypothesis strategies): trace
bodies and batches with ids of every shape, values that repeat at other places, nested ids,
ids as plain values, duplicate keys, escapes and brackets in strings, non-ASCII text, and
three layouts."""

from __future__ import annotations

import contextlib
import json
from typing import Any

from hypothesis import strategies as st

A = "0123456789abcdef0123456789abcdef"
B = "6c3c764e-c8e1-4af2-a22b-b22ccd14228d"
pool = st.sampled_from(  # few, so that the same value lands at several places
    [
        A,
        B,
        "short-id",
        "",
        "é0123456789abcdef0123",  # escaped as \u00e9 by an ASCII dump: its bytes differ
        "0123456789abcdef0123",  # plain, the value an escaped id below spells
        'a"quote-0123456789abcdef',
        "x[y]{z}-0123456789abcd",  # brackets in an id
        "id",
    ]
)
texts = st.lists(st.sampled_from([*'ab "\\{}[]:,é', "id", '"id"', A]), max_size=6).map("".join)
scalar = st.none() | st.integers() | pool | texts
nested = st.recursive(
    scalar,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(["id", "x", "traceId", "observations"]), inner, max_size=3
        )
    ),
    max_leaves=8,
)


@st.composite
def observation(draw: Any) -> Any:
    if draw(st.integers(0, 9)) == 0:
        return draw(nested)  # not an object, or one without an id
    obs: dict[str, Any] = {"id": draw(pool | st.integers())}
    if draw(st.booleans()):
        obs["trace_id"] = draw(pool)
    if draw(st.booleans()):
        obs["parent_observation_id"] = draw(pool)
    if draw(st.booleans()):
        obs["input"] = draw(nested)
    return obs


@st.composite
def trace_body(draw: Any) -> Any:
    doc: dict[str, Any] = {}
    for key in draw(st.permutations(["id", "name", "metadata", "observations"])):
        if key == "id" and draw(st.integers(0, 5)):
            doc["id"] = draw(pool)
        elif key == "name":
            doc["name"] = draw(pool | texts)
        elif key == "metadata" and draw(st.booleans()):
            doc["metadata"] = draw(nested)
        elif key == "observations":
            observations = draw(st.lists(observation(), max_size=4))
            if draw(st.integers(0, 5)) == 0:  # observations keyed by name
                doc["observations"] = {f"o{i}": o for i, o in enumerate(observations)}
            else:
                doc["observations"] = observations
    return doc


@st.composite
def batch_body(draw: Any) -> Any:
    kinds = st.sampled_from(["trace-create", "trace-update", "span-create", "span-update", 3])
    events = []
    for _ in range(draw(st.integers(0, 4))):
        event: dict[str, Any] = {"type": draw(kinds)}
        if draw(st.integers(0, 5)):
            event["id"] = draw(pool)
        event["body"] = draw(observation())
        events.append(event)
    doc: dict[str, Any] = {"batch": events}
    if draw(st.booleans()):
        doc["metadata"] = draw(nested)
    return doc


layouts = st.sampled_from([{"separators": (",", ":")}, {"separators": (", ", ": ")}, {"indent": 1}])


@st.composite
def bodies(draw: Any) -> bytes:
    doc = draw(trace_body() | batch_body())
    body = json.dumps(doc, ensure_ascii=draw(st.booleans()), **draw(layouts)).encode()
    if draw(st.integers(0, 4)) == 0:  # a repeated key: the object keeps the last value
        key = draw(st.sampled_from([b'"id"', b'"observations"', b'"body"']))
        value = json.dumps(draw(pool | st.just([{"id": A}]) | st.just({"id": B}))).encode()
        opener = draw(st.sampled_from([i for i, c in enumerate(body) if c == ord("{")]))
        changed = body[: opener + 1] + key + b":" + value + b"," + body[opener + 1 :]
        with contextlib.suppress(ValueError):  # (an opener inside a string, before a close)
            json.loads(changed)
            body = changed
    return body
