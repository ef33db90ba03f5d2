"""The OpenAPI 3.0 description of the sandbox's REST API, served at ``GET /openapi.json``.

It describes what the sandbox answers, not only what it accepts: every status a route may
give (400 for a bad body or query, 401, 404, 405, 413, 429, 503 with ``Retry-After``, ...)
with the shape of its body, so a client generator or a schema-driven fuzzer (the test suite
runs schemathesis against a live sandbox) can hold each answer to it. This module holds
the paths and assembles the document; the bodies' schemas are in :mod:`sandbox.openapi_schemas`.
"""

from __future__ import annotations

import json
from typing import Any

from sandbox.openapi_schemas import SCHEMAS, TIMESTAMP, ref


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_RETRY = {"Retry-After": {"schema": {"type": "string"}, "description": "Seconds to wait."}}


def _error(description: str, retry: bool = False) -> dict[str, Any]:
    answer = _json(ref("Error"), description)
    if retry:
        answer["headers"] = _RETRY
    return answer


_COMMON = {
    "400": _error("Malformed HTTP, JSON, field or query parameter (the message names it)."),
    "401": _error("Missing or unknown key."),
    "405": _error("Method not allowed on this route (see Allow)."),
    "408": _error("The request's head and body took longer than --request-timeout."),
    "413": _error("Body above --max-body."),
    "429": _error("Rate limit exceeded (--rate-limit).", retry=True),
    "431": _error("Request head above 64 KiB."),
    "503": _error(
        "Emulated capacity shed the request, the store cannot write, the queue is "
        "unreachable or the connection limit is reached.",
        retry=True,
    ),
}


def _answers(ok: dict[str, dict[str, Any]], *extra: str) -> dict[str, Any]:
    out = dict(ok)
    for code in ("400", "401", "405", "408", "413", "429", "431", "503", *extra):
        out.setdefault(code, _COMMON.get(code, _error("See the message.")))
    return out


def _body(name: str) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": ref(name)}}}


_API: list[dict[str, list[str]]] = [{"apiKey": []}]
_ADMIN: list[dict[str, list[str]]] = [{"adminToken": []}]
_NONE: list[dict[str, list[str]]] = []
_QUERY = [
    ("limit", {"type": "integer", "minimum": 1, "maximum": 100, "default": 50}),
    ("page", {"type": "integer", "minimum": 1, "maximum": 1_000_000, "default": 1}),
    ("search", {"type": "string"}),
    ("name", {"type": "string"}),
    ("fromTimestamp", TIMESTAMP),
    ("toTimestamp", TIMESTAMP),
]


def _path_id(description: str) -> list[dict[str, Any]]:
    return [
        {
            "name": "id",
            "in": "path",
            "required": True,
            "description": description,
            "schema": {"type": "string", "minLength": 1},
        }
    ]


_PATHS: dict[str, Any] = {
    "/api/public/traces": {
        "post": {
            "summary": "Ingest one trace with its observations (idempotent upsert by id).",
            "security": _API,
            "requestBody": _body("TraceIn"),
            "responses": _answers({"200": _json(ref("Accepted"), "Accepted.")}),
        },
        "get": {
            "summary": "List the project's traces, newest first.",
            "security": _API,
            "parameters": [
                {"name": n, "in": "query", "required": False, "schema": s} for n, s in _QUERY
            ],
            "responses": _answers({"200": _json(ref("TraceList"), "A page of traces.")}),
        },
    },
    "/api/public/ingestion": {
        "post": {
            "summary": "A batch of events; each one stored or reported on its own.",
            "security": _API,
            "requestBody": _body("Batch"),
            "responses": _answers({"207": _json(ref("BatchResult"), "Per-event results.")}),
        }
    },
    "/api/public/traces/{id}": {
        "get": {
            "summary": "One trace with its observations (404 until the worker wrote it).",
            "security": _API,
            "parameters": _path_id("The trace's id."),
            "responses": _answers(
                {"200": _json(ref("TraceDetail"), "The trace."), "404": _error("Not found.")}
            ),
        }
    },
    "/api/public/metrics/traces": {
        "get": {
            "summary": "Trace count and mean duration per hour or day, last 30 days.",
            "security": _API,
            "parameters": [
                {
                    "name": "period",
                    "in": "query",
                    "required": False,
                    "schema": {"type": "string", "enum": ["hour", "day"], "default": "day"},
                }
            ],
            "responses": _answers({"200": _json(ref("TraceMetrics"), "Buckets.")}),
        }
    },
    "/api/projects/{id}": {
        "get": {
            "summary": "The key's own project (any other id: 404).",
            "security": _API,
            "parameters": _path_id("The project's id."),
            "responses": _answers(
                {"200": _json(ref("Project"), "The project."), "404": _error("Not found.")}
            ),
        }
    },
    "/graphql": {
        "post": {
            "summary": "GraphQL: traces, trace, project (read-only).",
            "security": _API,
            "requestBody": _body("GraphQLRequest"),
            "responses": {
                "200": _json(ref("GraphQLResponse"), "Executed (errors possible)."),
                "400": _json(ref("GraphQLResponse"), "Syntax or validation error."),
                "401": _json(ref("GraphQLResponse"), "Missing or unknown key."),
                "405": _error("Method not allowed."),
                "408": _COMMON["408"],
                "413": _COMMON["413"],
                "429": _json(ref("GraphQLResponse"), "Rate limited."),
                "431": _COMMON["431"],
                "503": _json(ref("GraphQLResponse"), "Unavailable."),
            },
        }
    },
    "/health": {
        "get": {
            "summary": "Liveness.",
            "security": _NONE,
            "responses": {"200": _json(ref("Status"), "Alive.")},
        }
    },
    "/ready": {
        "get": {
            "summary": "Readiness: 503 while draining, without the queue, or the store "
            "cannot write.",
            "security": _NONE,
            "responses": {
                "200": _json(ref("Status"), "Ready."),
                "503": _json(ref("Status"), "Not ready."),
            },
        }
    },
    "/metrics": {
        "get": {
            "summary": "Prometheus metrics of the whole sandbox.",
            "security": _NONE,
            "responses": {
                "200": {
                    "description": "Prometheus text format.",
                    "content": {"text/plain": {"schema": {"type": "string"}}},
                }
            },
        }
    },
    "/openapi.json": {
        "get": {
            "summary": "This description.",
            "security": _NONE,
            "responses": {"200": _json({"type": "object"}, "OpenAPI 3.0.")},
        }
    },
    "/admin/pods": {
        "get": {
            "summary": "The emulated deployment.",
            "security": _ADMIN,
            "responses": _answers({"200": _json(ref("Pods"), "The model.")}),
        },
        "post": {
            "summary": "Change the emulated deployment (turns emulation on).",
            "security": _ADMIN,
            "requestBody": _body("PodsUpdate"),
            "responses": _answers({"200": _json(ref("Pods"), "The new model.")}),
        },
    },
    "/admin/flush": {
        "post": {
            "summary": "Answer once every trace acknowledged before is readable.",
            "security": _ADMIN,
            "requestBody": {
                "required": False,
                "content": {"application/json": {"schema": ref("Flush")}},
            },
            "responses": _answers(
                {
                    "200": _json(
                        {"type": "object", "properties": {"flushed": {"type": "boolean"}}},
                        "Flushed.",
                    ),
                    "504": _error("Not flushed within the timeout."),
                }
            ),
        }
    },
}


def document() -> dict[str, Any]:
    """The OpenAPI 3.0.3 document (servers: the address the client used is the one)."""
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "AgentTrace sandbox",
            "version": "1",
            "description": "The AgentTrace-compatible API of the embedded sandbox "
            "(docs/sandbox.md). Every /api route and /graphql take 'Authorization: Bearer "
            "<API key>'; /admin routes take the admin token.",
        },
        "paths": _PATHS,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {
                "apiKey": {"type": "http", "scheme": "bearer", "description": "An API key."},
                "adminToken": {"type": "http", "scheme": "bearer", "description": "Admin."},
            },
        },
    }


DOCUMENT_BYTES = json.dumps(document(), separators=(",", ":")).encode()
"""The document as served (built once)."""
