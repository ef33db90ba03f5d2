"""Payload validation: strict where the guide is, lenient for extra fields, errors name the
field."""

from __future__ import annotations

from typing import Any

import pytest

from sandbox.payload import (
    OBSERVATION,
    TRACE,
    PayloadError,
    format_timestamp_ms,
    parse_event,
    parse_timestamp_ms,
    parse_trace,
)

NOW = 1_767_225_600_000  # 2026-01-01T00:00:00Z


def test_guide_payload_becomes_one_trace_and_its_observations() -> None:
    body = {
        "id": "t1",
        "name": "n",
        "timestamp": "2026-01-01T00:00:01.234Z",
        "metadata": {"model": "gpt-4"},
        "observations": [
            {
                "id": "t1-obs-0",
                "trace_id": "t1",
                "type": "SPAN",
                "start_time": "2026-01-01T00:00:01Z",
            },
            {"id": "t1-obs-1", "type": "generation", "parentObservationId": "t1-obs-0"},
        ],
    }
    items = parse_trace(body, NOW)
    assert [kind for kind, _ in items] == [TRACE, OBSERVATION, OBSERVATION]
    trace = items[0][1]
    assert trace["ts_ms"] == NOW + 1234
    assert trace["metadata"] == {"model": "gpt-4"}
    # trace_id filled from the trace; type upper-cased; camelCase accepted
    assert items[2][1]["trace_id"] == "t1"
    assert items[2][1]["type"] == "GENERATION"
    assert items[2][1]["parent_observation_id"] == "t1-obs-0"
    assert items[1][1]["start_ms"] == NOW + 1000


@pytest.mark.parametrize(
    ("body", "field"),
    [
        # not an object at all
        ([1, 2], "body"),
        # id missing, mistyped, empty
        ({"name": "x"}, "body.id"),
        ({"id": 7}, "body.id"),
        ({"id": ""}, "body.id"),
        # observations must be a list of objects with id and type
        ({"id": "t", "observations": {"id": "o"}}, "body.observations"),
        ({"id": "t", "observations": ["o"]}, "body.observations[0]"),
        ({"id": "t", "observations": [{"type": "SPAN"}]}, "body.observations[0].id"),
        ({"id": "t", "observations": [{"id": "o"}]}, "body.observations[0].type"),
        ({"id": "t", "observations": [{"id": "o", "type": "NOPE"}]}, "body.observations[0].type"),
        # an observation of another trace
        ({"id": "t", "observations": [{"id": "o", "type": "SPAN", "trace_id": "u"}]},
         "body.observations[0].trace_id"),
        # mistyped optional fields
        ({"id": "t", "name": 5}, "body.name"),
        ({"id": "t", "timestamp": "yesterday"}, "body.timestamp"),
        ({"id": "t", "timestamp": 12}, "body.timestamp"),
        ({"id": "t", "tags": "a"}, "body.tags"),
        ({"id": "t", "observations": [{"id": "o", "type": "SPAN", "usage": 3}]},
         "body.observations[0].usage"),
        ({"id": "t", "observations": [{"id": "o", "type": "SPAN", "end_time": "x"}]},
         "body.observations[0].end_time"),
    ],
)  # fmt: skip
def test_invalid_payloads_name_the_field(body: Any, field: str) -> None:
    with pytest.raises(PayloadError) as caught:
        parse_trace(body, NOW)
    assert caught.value.field == field
    assert str(caught.value).startswith(field + ": ")


def test_extra_fields_are_kept_not_rejected() -> None:
    items = parse_trace({"id": "t", "environment": "prod", "public": True}, NOW)
    assert items[0][1]["extra"] == {"environment": "prod", "public": True}


def test_null_fields_count_as_absent() -> None:
    items = parse_trace({"id": "t", "name": None, "observations": None}, NOW)
    assert items[0][1]["name"] is None and len(items) == 1


@pytest.mark.parametrize(
    ("event", "field"),
    [
        ({"id": "e", "type": "span-create", "body": {"id": "s"}}, "body.traceId"),
        ({"id": "e", "type": "span-create", "body": "x"}, "body"),
        ({"id": "e", "type": "score-create", "body": {}}, "type"),
        ({"id": "e", "body": {}}, "type"),
        ({"id": "e", "type": "trace-create", "body": {"name": "x"}}, "body.id"),
    ],
)
def test_invalid_events_name_the_field(event: Any, field: str) -> None:
    with pytest.raises(PayloadError) as caught:
        parse_event(event, NOW)
    assert caught.value.field == field


def test_update_event_needs_no_trace_and_forces_its_type() -> None:
    (item,) = parse_event(
        {
            "id": "e",
            "type": "generation-update",
            "body": {"id": "g", "endTime": "2026-01-01T00:00:02Z"},
        },
        NOW,
    )
    kind, record = item
    assert kind == OBSERVATION
    assert record["type"] == "GENERATION" and record["trace_id"] is None
    assert record["end_ms"] == NOW + 2000 and record["start_ms"] is None


def test_create_event_defaults_start_to_the_event_time() -> None:
    (item,) = parse_event(
        {
            "id": "e",
            "type": "event-create",
            "timestamp": "2026-01-01T00:00:05Z",
            "body": {"id": "v", "traceId": "t"},
        },
        NOW,
    )
    assert item[1]["start_ms"] == NOW + 5000 and item[1]["type"] == "EVENT"


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("2026-01-01T00:00:00Z", NOW),  # Z suffix
        ("2026-01-01T00:00:00.5+00:00", NOW + 500),  # offset, one fractional digit
        ("2026-01-01T01:00:00+01:00", NOW),  # another zone
        ("2026-01-01T00:00:00", NOW),  # naive: UTC
    ],
)
def test_timestamps_parse_to_utc_ms(text: str, ms: int) -> None:
    assert parse_timestamp_ms(text, "t") == ms


def test_timestamp_format_round_trips() -> None:
    assert format_timestamp_ms(NOW + 1234) == "2026-01-01T00:00:01.234Z"
    assert parse_timestamp_ms(format_timestamp_ms(NOW + 7) or "", "t") == NOW + 7
