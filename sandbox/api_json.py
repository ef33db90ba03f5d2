"""JSON in and out of the sandbox's API: request bodies, query parameters, answers.

Every parser here raises :class:`~sandbox.payload.PayloadError` naming the field at fault,
which the app turns into a 400 ``{"error", "message", "field"}`` answer (:func:`error`).
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs

from sandbox import strict_json
from sandbox.payload import PayloadError, format_timestamp_ms, parse_timestamp_ms
from sandbox.wire import Request, Response

JSON_TYPE = "application/json"


def answer(status: int, payload: Any) -> Response:
    """A compact JSON answer."""
    return Response(status, json.dumps(payload, separators=(",", ":")).encode(), JSON_TYPE)


def error(
    status: int,
    code: str,
    message: str,
    graphql: bool = False,
    *,
    field: str | None = None,
    route: str = "",
) -> Response:
    """An error answer: ``{"error", "message"[, "field"]}``, or GraphQL's ``errors`` list."""
    if graphql:
        payload: dict[str, Any] = {"errors": [{"message": message, "extensions": {"code": code}}]}
    else:
        payload = {"error": code, "message": message}
        if field is not None:
            payload["field"] = field
    response = answer(status, payload)
    response.route = route
    return response


def iso(ms: int) -> str | None:
    return format_timestamp_ms(ms)


def body(request: Request) -> Any:
    """The request's body parsed as strict JSON (no duplicate keys, no NaN)."""
    if not request.body.strip():
        raise PayloadError("body", "expected a JSON object, got an empty body")
    try:
        return strict_json.loads(request.body)
    except strict_json.NotStorable as exc:
        raise PayloadError(exc.field, exc.message) from None
    except RecursionError:
        raise PayloadError("body", "JSON nested too deeply") from None
    except ValueError as exc:
        raise PayloadError("body", f"malformed JSON ({exc})") from None


def query(request: Request) -> dict[str, str]:
    """The query string's parameters (the last value of a repeated one)."""
    try:
        parsed = parse_qs(request.query, keep_blank_values=True, max_num_fields=100)
    except ValueError as exc:
        raise PayloadError("query", str(exc)) from None
    return {key: values[-1] for key, values in parsed.items()}


def int_param(params: dict[str, str], name: str, default: int, low: int, high: int) -> int:
    text = params.get(name)
    if text is None or text == "":
        return default
    try:
        value = int(text)
    except ValueError:
        raise PayloadError(name, f"must be an integer from {low} to {high}") from None
    if not low <= value <= high:
        raise PayloadError(name, f"must be an integer from {low} to {high}, got {value}")
    return value


def time_param(params: dict[str, str], name: str) -> int | None:
    text = params.get(name)
    if text is None or text == "":
        return None
    return parse_timestamp_ms(text, name)


def number(fields: dict[str, Any], name: str, default: float, low: float, high: float) -> float:
    value = fields.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PayloadError(name, "expected a number")
    if not low <= value <= high:
        raise PayloadError(name, f"must be from {low:g} to {high:g}")
    return float(value)
