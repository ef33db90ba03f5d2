"""The component schemas of the sandbox's OpenAPI description (:mod:`sandbox.openapi`).

One schema per body the sandbox accepts or answers, with the limits it enforces (id length,
batch size, pod model bounds) taken from the modules that enforce them. Trace bodies are
described as the guide sends them; unknown fields are allowed (the sandbox keeps them).
"""

from __future__ import annotations

from typing import Any

from sandbox.app import MAX_BATCH_EVENTS
from sandbox.capacity import MAX_POD_RATE, MAX_PODS, MAX_QUEUE_DEPTH
from sandbox.payload import EVENT_TYPES, MAX_ID_LENGTH, OBSERVATION_TYPES


def ref(name: str) -> dict[str, str]:
    """A reference to the component schema ``name``."""
    return {"$ref": "#/components/schemas/" + name}


TIMESTAMP = {"type": "string", "description": "ISO 8601, years 0001 to 9999 in UTC."}
_NULLABLE_TIME = {"type": "string", "nullable": True}
_ID = {"type": "string", "minLength": 1, "maxLength": MAX_ID_LENGTH}
_ANY: dict[str, Any] = {"nullable": True}

SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error", "message"],
        "properties": {
            "error": {"type": "string"},
            "message": {"type": "string"},
            "field": {"type": "string"},
        },
    },
    "ObservationIn": {
        "type": "object",
        "required": ["id", "type"],
        "properties": {
            "id": _ID,
            "type": {"type": "string", "enum": list(OBSERVATION_TYPES)},
            "traceId": {"type": "string", "minLength": 1},
            "name": {"type": "string"},
            "startTime": TIMESTAMP,
            "endTime": TIMESTAMP,
            "model": {"type": "string"},
            "usage": {"type": "object"},
            "input": _ANY,
            "output": _ANY,
            "metadata": _ANY,
        },
    },
    "TraceIn": {
        "type": "object",
        "required": ["id"],
        "properties": {
            "id": _ID,
            "name": {"type": "string"},
            "timestamp": TIMESTAMP,
            "input": _ANY,
            "output": _ANY,
            "metadata": _ANY,
            "userId": {"type": "string"},
            "sessionId": {"type": "string"},
            "tags": {"type": "array", "items": {"type": "string"}},
            "observations": {"type": "array", "items": ref("ObservationIn")},
        },
    },
    "Accepted": {
        "type": "object",
        "required": ["id", "status"],
        "properties": {
            "id": {"type": "string"},
            "status": {"type": "string", "enum": ["accepted"]},
        },
    },
    "Event": {
        "type": "object",
        "required": ["id", "type", "body"],
        "properties": {
            "id": {"type": "string"},
            "type": {"type": "string", "enum": list(EVENT_TYPES)},
            "timestamp": TIMESTAMP,
            "body": {"type": "object"},
        },
    },
    "Batch": {
        "type": "object",
        "required": ["batch"],
        "properties": {
            "batch": {"type": "array", "items": ref("Event"), "maxItems": MAX_BATCH_EVENTS}
        },
    },
    "BatchResult": {
        "type": "object",
        "required": ["successes", "errors"],
        "properties": {
            "successes": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["id", "status"],
                    "properties": {"id": {"type": "string"}, "status": {"type": "integer"}},
                },
            },
            "errors": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["status", "message", "error"],
                    "properties": {
                        "id": {"type": "string", "nullable": True},
                        "status": {"type": "integer"},
                        "message": {"type": "string"},
                        "error": {"type": "string"},
                    },
                },
            },
        },
    },
    "Observation": {
        "type": "object",
        "required": ["id", "projectId", "type", "startTime"],
        "properties": {
            "id": {"type": "string"},
            "projectId": {"type": "string"},
            "traceId": {"type": "string", "nullable": True},
            "type": {"type": "string"},
            "name": {"type": "string", "nullable": True},
            "startTime": _NULLABLE_TIME,
            "endTime": _NULLABLE_TIME,
            "completionStartTime": _NULLABLE_TIME,
        },
    },
    "Trace": {
        "type": "object",
        "required": ["id", "projectId", "timestamp", "tags", "observations"],
        "properties": {
            "id": {"type": "string"},
            "projectId": {"type": "string"},
            "name": {"type": "string", "nullable": True},
            "timestamp": _NULLABLE_TIME,
            "tags": {"type": "array"},
            "durationMs": {"type": "number", "nullable": True},
            "observations": {
                "type": "array",
                "description": "Observation ids in a list; whole observations for one trace.",
            },
        },
    },
    "TraceDetail": {
        "allOf": [
            ref("Trace"),
            {
                "type": "object",
                "properties": {"observations": {"type": "array", "items": ref("Observation")}},
            },
        ]
    },
    "TraceList": {
        "type": "object",
        "required": ["data", "meta"],
        "properties": {
            "data": {"type": "array", "items": ref("Trace")},
            "meta": {
                "type": "object",
                "required": ["page", "limit", "totalItems", "totalPages"],
                "properties": {
                    "page": {"type": "integer", "minimum": 1},
                    "limit": {"type": "integer", "minimum": 1, "maximum": 100},
                    "totalItems": {"type": "integer", "minimum": 0},
                    "totalPages": {"type": "integer", "minimum": 0},
                },
            },
        },
    },
    "TraceMetrics": {
        "type": "object",
        "required": ["data", "meta"],
        "properties": {
            "data": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["bucket", "count", "avgDurationMs"],
                    "properties": {
                        "bucket": _NULLABLE_TIME,
                        "count": {"type": "integer"},
                        "avgDurationMs": {"type": "number", "nullable": True},
                    },
                },
            },
            "meta": {"type": "object", "required": ["period"]},
        },
    },
    "GraphQLRequest": {
        "type": "object",
        "required": ["query"],
        "properties": {
            "query": {"type": "string"},
            "variables": {"type": "object", "nullable": True},
            "operationName": {"type": "string", "nullable": True},
        },
    },
    "GraphQLResponse": {
        "type": "object",
        "properties": {
            "data": {"type": "object", "nullable": True},
            "errors": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["message"],
                    "properties": {"message": {"type": "string"}},
                },
            },
        },
    },
    "Project": {
        "type": "object",
        "required": ["id", "name"],
        "properties": {"id": {"type": "string"}, "name": {"type": "string"}},
    },
    "Status": {
        "type": "object",
        "required": ["status"],
        "properties": {"status": {"type": "string"}},
    },
    "PodsUpdate": {
        "type": "object",
        "required": ["pods"],
        "additionalProperties": False,
        "properties": {
            "pods": {"type": "integer", "minimum": 1, "maximum": MAX_PODS},
            "podRate": {
                "type": "number",
                "exclusiveMinimum": True,
                "minimum": 0,
                "maximum": MAX_POD_RATE,
            },
            "sigma": {"type": "number", "minimum": 0, "maximum": 1},
            "kappa": {"type": "number", "minimum": 0, "maximum": 1},
            "serviceCv": {"type": "number", "minimum": 0, "maximum": 4},
            "queueDepth": {"type": "integer", "minimum": 0, "maximum": MAX_QUEUE_DEPTH},
        },
    },
    "Pods": {
        "type": "object",
        "required": ["pods", "podRate", "sigma", "kappa", "serviceCv", "queueDepth", "enabled"],
        "properties": {
            "pods": {"type": "integer"},
            "podRate": {"type": "number"},
            "sigma": {"type": "number"},
            "kappa": {"type": "number"},
            "serviceCv": {"type": "number"},
            "queueDepth": {"type": "integer"},
            "capacity": {"type": "number"},
            "enabled": {"type": "boolean"},
            "admitted": {"type": "integer"},
            "shed": {"type": "integer"},
        },
    },
    "Flush": {
        "type": "object",
        "properties": {"timeout": {"type": "number", "minimum": 0, "maximum": 600}},
    },
}
