"""Request bodies in, normalised records out: the guide's trace payload and batch events.

Validation is strict where the guide is (a trace needs a string ``id``; ``observations`` is a
list; each observation needs ``id`` and ``type``) and lenient elsewhere: unknown fields are
kept in ``extra``, both ``snake_case`` and ``camelCase`` spellings are accepted. Every
problem raises :class:`PayloadError` naming the field, which the API turns into a 400.

Records are flat dicts whose keys are the store's column names, so the queue and the
store never re-validate. A record's ``ts_ms``/``start_ms`` is ``None`` when the body gave no
time; the store then keeps the time it already had or falls back to ``received_ms``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

TRACE = "t"
OBSERVATION = "o"
OBSERVATION_TYPES = ("SPAN", "GENERATION", "EVENT")
MAX_ID_LENGTH = 512
MIN_TIMESTAMP_MS = -62_135_596_800_000
"""0001-01-01T00:00:00.000Z: the earliest instant a timestamp may name (datetime's range)."""
MAX_TIMESTAMP_MS = 253_402_300_799_999
"""9999-12-31T23:59:59.999Z: the latest, so every stored time can be written back as ISO 8601."""

Record = dict[str, Any]
Item = tuple[str, Record]
"""One unit of work for the queue: (TRACE or OBSERVATION, record)."""


class PayloadError(ValueError):
    """A body the API rejects with 400; ``field`` is a path such as ``observations[2].type``."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


# Accepted spellings of each known field, mapped to the column name.
_TRACE_FIELDS = {
    "id": "id",
    "name": "name",
    "timestamp": "timestamp",
    "input": "input",
    "output": "output",
    "metadata": "metadata",
    "user_id": "user_id",
    "userId": "user_id",
    "session_id": "session_id",
    "sessionId": "session_id",
    "release": "release",
    "version": "version",
    "tags": "tags",
    "observations": "observations",
}
_OBSERVATION_FIELDS = {
    "id": "id",
    "type": "type",
    "name": "name",
    "trace_id": "trace_id",
    "traceId": "trace_id",
    "parent_observation_id": "parent_observation_id",
    "parentObservationId": "parent_observation_id",
    "start_time": "start_time",
    "startTime": "start_time",
    "end_time": "end_time",
    "endTime": "end_time",
    "completion_start_time": "completion_start_time",
    "completionStartTime": "completion_start_time",
    "model": "model",
    "model_parameters": "model_parameters",
    "modelParameters": "model_parameters",
    "input": "input",
    "output": "output",
    "usage": "usage",
    "metadata": "metadata",
    "level": "level",
    "status_message": "status_message",
    "statusMessage": "status_message",
    "version": "version",
}
_TRACE_STRINGS = ("name", "user_id", "session_id", "release", "version")
_OBSERVATION_STRINGS = (
    "name",
    "parent_observation_id",
    "model",
    "level",
    "status_message",
    "version",
)
_TRACE_JSON = ("input", "output", "metadata")
_OBSERVATION_JSON = ("input", "output", "metadata")

# Batch event types: event type -> (observation type or None for a trace, is an update)
EVENT_TYPES: dict[str, tuple[str | None, bool]] = {
    "trace-create": (None, False),
    "trace-update": (None, True),
    "span-create": ("SPAN", False),
    "span-update": ("SPAN", True),
    "generation-create": ("GENERATION", False),
    "generation-update": ("GENERATION", True),
    "event-create": ("EVENT", False),
    "event-update": ("EVENT", True),
}


def parse_timestamp_ms(value: Any, field: str) -> int:
    """An ISO 8601 string (``2026-01-01T00:00:01.234Z``) to integer ms since the epoch (UTC)."""
    if not isinstance(value, str):
        raise PayloadError(field, f"expected an ISO 8601 timestamp string, got {_kind(value)}")
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise PayloadError(field, f"{value[:64]!r} is not an ISO 8601 timestamp") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    ms = round(moment.timestamp() * 1000)
    if not MIN_TIMESTAMP_MS <= ms <= MAX_TIMESTAMP_MS:
        raise PayloadError(
            field,
            f"{value[:64]!r} is outside 0001-01-01T00:00:00Z to 9999-12-31T23:59:59.999Z in UTC",
        )
    return ms


def format_timestamp_ms(ms: int | float | None) -> str | None:
    """Integer ms since the epoch to ``YYYY-MM-DDTHH:MM:SS.mmmZ``; None for no time or for a
    value no ISO 8601 timestamp can name (a row stored before ingestion checked ranges)."""
    if ms is None or isinstance(ms, bool) or not isinstance(ms, int | float):
        return None
    if ms != ms or not MIN_TIMESTAMP_MS <= ms <= MAX_TIMESTAMP_MS:
        return None
    moment = datetime.fromtimestamp(int(ms) // 1000, tz=UTC)
    return f"{moment.year:04d}-" + moment.strftime("%m-%dT%H:%M:%S.") + f"{int(ms) % 1000:03d}Z"


def parse_trace(body: Any, received_ms: int, path: str = "body") -> list[Item]:
    """The guide's trace payload: one trace record then one record per observation."""
    fields = _fields(body, _TRACE_FIELDS, path)
    trace_id = _required_id(fields, "id", path)
    record: Record = {"id": trace_id, "received_ms": received_ms}
    for key in _TRACE_STRINGS:
        record[key] = _optional_string(fields, key, path)
    for key in _TRACE_JSON:
        record[key] = fields.get(key)
    stamp = fields.get("timestamp")
    record["ts_ms"] = None if stamp is None else parse_timestamp_ms(stamp, f"{path}.timestamp")
    record["tags"] = _optional_tags(fields, path)
    record["extra"] = fields.get("_extra")
    items: list[Item] = [(TRACE, record)]
    observations = fields.get("observations")
    if observations is None:
        return items
    if not isinstance(observations, list):
        raise PayloadError(f"{path}.observations", f"expected a list, got {_kind(observations)}")
    for i, raw in enumerate(observations):
        obs_path = f"{path}.observations[{i}]"
        obs = parse_observation(raw, received_ms, obs_path)
        if obs["trace_id"] is None:
            obs["trace_id"] = trace_id
        elif obs["trace_id"] != trace_id:
            raise PayloadError(
                f"{obs_path}.trace_id",
                f"{obs['trace_id']!r} does not match the trace's id {trace_id!r}",
            )
        items.append((OBSERVATION, obs))
    return items


def parse_observation(
    body: Any,
    received_ms: int,
    path: str,
    *,
    forced_type: str | None = None,
) -> Record:
    """One observation. In a trace payload ``type`` is required; a batch event supplies it."""
    fields = _fields(body, _OBSERVATION_FIELDS, path)
    record: Record = {"id": _required_id(fields, "id", path), "received_ms": received_ms}
    raw_type = forced_type or fields.get("type")
    if raw_type is None:
        raise PayloadError(f"{path}.type", "required (one of SPAN, GENERATION, EVENT)")
    if not isinstance(raw_type, str) or raw_type.upper() not in OBSERVATION_TYPES:
        raise PayloadError(
            f"{path}.type", f"must be one of SPAN, GENERATION, EVENT, got {raw_type!r}"
        )
    record["type"] = raw_type.upper()
    trace_id = fields.get("trace_id")
    if trace_id is not None and (not isinstance(trace_id, str) or not trace_id):
        raise PayloadError(
            f"{path}.trace_id", f"expected a non-empty string, got {_kind(trace_id)}"
        )
    record["trace_id"] = trace_id
    for key in _OBSERVATION_STRINGS:
        record[key] = _optional_string(fields, key, path)
    for key in _OBSERVATION_JSON:
        record[key] = fields.get(key)
    for key in ("usage", "model_parameters"):
        value = fields.get(key)
        if value is not None and not isinstance(value, dict):
            raise PayloadError(f"{path}.{key}", f"expected an object, got {_kind(value)}")
        record[key] = value
    for key, column in (
        ("start_time", "start_ms"),
        ("end_time", "end_ms"),
        ("completion_start_time", "completion_start_ms"),
    ):
        value = fields.get(key)
        record[column] = None if value is None else parse_timestamp_ms(value, f"{path}.{key}")
    record["extra"] = fields.get("_extra")
    return record


def parse_event(event: Any, received_ms: int) -> list[Item]:
    """One event of a ``POST /api/public/ingestion`` batch; raises PayloadError for this event."""
    if not isinstance(event, dict):
        raise PayloadError("event", f"expected an object, got {_kind(event)}")
    event_type = event.get("type")
    if not isinstance(event_type, str):
        raise PayloadError("type", f"required string, got {_kind(event_type)}")
    if event_type not in EVENT_TYPES:
        known = ", ".join(EVENT_TYPES)
        raise PayloadError("type", f"unsupported event type {event_type!r} (supported: {known})")
    body = event.get("body")
    if not isinstance(body, dict):
        raise PayloadError("body", f"expected an object, got {_kind(body)}")
    stamp = event.get("timestamp")
    event_ms = received_ms if stamp is None else parse_timestamp_ms(stamp, "timestamp")
    obs_type, update = EVENT_TYPES[event_type]
    if obs_type is None:
        return parse_trace(body, received_ms, path="body")
    record = parse_observation(body, received_ms, "body", forced_type=obs_type)
    if not update:
        if record["trace_id"] is None:
            raise PayloadError("body.traceId", "required string for a create event")
        if record["start_ms"] is None:
            record["start_ms"] = event_ms
    return [(OBSERVATION, record)]


def event_id(event: Any) -> str | None:
    """The id a 207 answer reports an event under (None when the event has no usable id)."""
    if isinstance(event, dict):
        value = event.get("id")
        if isinstance(value, str | int) and not isinstance(value, bool):
            return str(value)
    return None


def _fields(body: Any, known: dict[str, str], path: str) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise PayloadError(path, f"expected a JSON object, got {_kind(body)}")
    fields: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for key, value in body.items():
        column = known.get(key)
        if column is None:
            extra[key] = value
        elif value is not None:
            fields[column] = value
    if extra:
        fields["_extra"] = extra
    return fields


def _required_id(fields: dict[str, Any], key: str, path: str) -> str:
    value = fields.get(key)
    if value is None:
        raise PayloadError(f"{path}.{key}", "required string")
    if not isinstance(value, str):
        raise PayloadError(f"{path}.{key}", f"expected a string, got {_kind(value)}")
    if not value or len(value) > MAX_ID_LENGTH:
        raise PayloadError(f"{path}.{key}", f"must be 1 to {MAX_ID_LENGTH} characters")
    return value


def _optional_string(fields: dict[str, Any], key: str, path: str) -> str | None:
    value = fields.get(key)
    if value is not None and not isinstance(value, str):
        raise PayloadError(f"{path}.{key}", f"expected a string, got {_kind(value)}")
    return value


def _optional_tags(fields: dict[str, Any], path: str) -> list[str] | None:
    tags = fields.get("tags")
    if tags is None:
        return None
    if not isinstance(tags, list) or not all(isinstance(tag, str) for tag in tags):
        raise PayloadError(f"{path}.tags", "expected a list of strings")
    return tags


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__
