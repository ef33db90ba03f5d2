"""The sandbox's API held to its own OpenAPI description: schemathesis generates requests
from /openapi.json (and GraphQL queries from the live schema) against a live sandbox on
127.0.0.1, a bounded number per operation, and every answer must be no 5xx, a documented
status, the documented content type and a body matching its schema."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import checks

from sandbox.process import SandboxProcess, start_sandbox

from .conftest import ADMIN, KEY_A, KEYS

EXAMPLES = 15  # per operation: the suite stays fast, every operation is still exercised
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
]


@pytest.fixture
def fuzzed() -> Iterator[SandboxProcess]:
    """A sandbox of its own for each test: the fuzzer fills its store and changes its
    emulated pods (a pod rate of 1e-300/s holds every later API request for ages)."""
    with start_sandbox(api_keys=KEYS, admin_token=ADMIN) as sb:
        yield sb


@pytest.fixture
def rest_schema(fuzzed: SandboxProcess) -> Any:
    assert fuzzed.host == "127.0.0.1"  # loopback only
    return schemathesis.openapi.from_url(f"{fuzzed.url}/openapi.json")


@pytest.fixture
def graphql_schema(fuzzed: SandboxProcess) -> Any:
    return schemathesis.graphql.from_url(
        f"{fuzzed.url}/graphql", headers={"Authorization": f"Bearer {KEY_A}"}
    )


_SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
    database=None,
)


def _operations(schema: Any) -> list[Any]:
    return [result.ok() for result in schema.get_all_operations()]


def _run(operation: Any, call: Any) -> None:
    """Drive one operation with generated cases (hypothesis directly, no pytest plugin)."""

    @_SETTINGS
    @given(case=operation.as_strategy())
    def examples(case: Any) -> None:
        call(case)

    examples()


def test_rest_api_matches_its_openapi_description(rest_schema: Any, fuzzed: SandboxProcess) -> None:
    operations = _operations(rest_schema)
    assert len(operations) == 13  # every operation but /openapi.json, the schema itself

    def call(case: Any) -> None:
        token = ADMIN if case.operation.path.startswith("/admin") else KEY_A
        if case.operation.path == "/admin/flush" and isinstance(case.body, dict):
            case.body["timeout"] = 5  # a barrier, not a 10-minute wait
        case.call_and_validate(
            base_url=fuzzed.url,
            headers={"Authorization": f"Bearer {token}"},
            checks=CHECKS,
            timeout=30,
        )

    # changing the emulated deployment comes last, so it holds up no other operation
    operations.sort(key=lambda op: op.label == "POST /admin/pods")
    for operation in operations:
        _run(operation, call)


def test_graphql_answers_every_generated_query(graphql_schema: Any, fuzzed: SandboxProcess) -> None:
    operations = _operations(graphql_schema)
    assert {op.label for op in operations} >= {"Query.traces", "Query.trace", "Query.project"}

    def call(case: Any) -> None:
        case.call_and_validate(
            base_url=fuzzed.url,
            headers={"Authorization": f"Bearer {KEY_A}"},
            checks=[checks.not_a_server_error],
            timeout=30,
        )

    for operation in operations:
        _run(operation, call)


def test_openapi_json_is_served_and_names_every_route(api: Any) -> None:
    reply = api.get("/openapi.json", key=None)
    assert reply.status == 200 and reply.headers["content-type"] == "application/json"
    paths = set(reply.json["paths"])
    # every route of the app, listed independently here
    assert paths == {
        "/api/public/traces",
        "/api/public/ingestion",
        "/api/public/traces/{id}",
        "/api/public/metrics/traces",
        "/api/projects/{id}",
        "/graphql",
        "/health",
        "/ready",
        "/metrics",
        "/openapi.json",
        "/admin/pods",
        "/admin/flush",
    }
