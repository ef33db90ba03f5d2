"""Authentication and isolation: no key, a wrong key, and one project never seeing another's
traces, by id, in lists, searches, counts, metrics or GraphQL."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

API_ROUTES = [
    ("POST", "/api/public/traces"),
    ("GET", "/api/public/traces"),
    ("GET", "/api/public/traces/some-id"),
    ("POST", "/api/public/ingestion"),
    ("GET", "/api/public/metrics/traces"),
    ("POST", "/graphql"),
    ("GET", "/api/projects/proj-a"),
]


@pytest.mark.parametrize(("method", "path"), API_ROUTES)
@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer wrong-key", "Basic c2stdGVzdC1hOg==", "Bearer", "sk-test-a"],
)
def test_every_api_route_needs_a_valid_bearer_key(
    api: Any, method: str, path: str, authorization: str | None
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    body = b"{}" if method == "POST" else None
    reply = api.request(method, path, body, key=None, headers=headers)
    assert reply.status == 401
    assert reply.headers["www-authenticate"].startswith("Bearer")


def test_a_key_never_reads_another_projects_traces(api: Any) -> None:
    word = f"secret{uuid.uuid4().hex[:8]}"
    mine = api.trace(name=word)
    theirs_same_id = {**mine, "name": f"b-{word}"}  # same trace and observation ids
    api.ingest(mine, key=api.KEY_A)
    api.ingest(theirs_same_id, key=api.KEY_B)
    only_b = api.trace(name=f"only-b-{word}")
    api.ingest(only_b, key=api.KEY_B)
    api.flush()
    # by id: each project sees its own version of the shared id; B's own trace is 404 for A
    assert api.get(f"/api/public/traces/{mine['id']}").json["name"] == word
    assert api.get(f"/api/public/traces/{mine['id']}", key=api.KEY_B).json["name"] == f"b-{word}"
    assert api.get(f"/api/public/traces/{only_b['id']}").status == 404
    # in searches and counts
    found_a = api.get(f"/api/public/traces?search={word}").json
    assert [t["name"] for t in found_a["data"]] == [word]
    assert found_a["meta"]["totalItems"] == 1
    found_b = api.get(f"/api/public/traces?search={word}", key=api.KEY_B).json
    assert found_b["meta"]["totalItems"] == 2
    assert all(t["projectId"] == api.PROJECT_B for t in found_b["data"])
    # in GraphQL: naming project B with A's key is refused
    query = 'query { traces(projectId: "%s", limit: 100) { id name } }'
    refused = api.post("/graphql", {"query": query % api.PROJECT_B})
    assert refused.json["data"]["traces"] is None and refused.json["errors"]
    names = {t["name"] for t in api.post("/graphql", {"query": query % api.PROJECT_A}).json[
        "data"]["traces"]}  # fmt: skip
    assert word in names and f"b-{word}" not in names and f"only-b-{word}" not in names


def test_admin_endpoints_need_the_admin_token(api: Any) -> None:
    for key in (None, api.KEY_A, "wrong"):
        assert api.get("/admin/pods", key=key).status == 401
        assert api.post("/admin/pods", {"pods": 2}, key=key).status == 401
        assert api.post("/admin/flush", {}, key=key).status == 401
    reply = api.get("/admin/pods", key=api.ADMIN)
    assert reply.status == 200 and reply.json["enabled"] is False


def test_metrics_and_health_are_open(api: Any) -> None:
    for path in ("/metrics", "/health", "/ready"):
        assert api.get(path, key=None).status == 200


def test_generated_key_is_reported_and_works(launch: Any, connect: Any) -> None:
    sb = launch(api_keys=None, admin_token=None)
    assert sb.api_key.startswith("sk-sandbox-") and sb.project_id == "proj-sandbox"
    assert sb.admin_token
    own = connect(sb)
    assert own.get("/api/public/traces", key=sb.api_key).status == 200
    assert own.get("/api/projects/proj-sandbox", key=sb.api_key).status == 200
    assert own.get("/admin/pods", key=sb.admin_token).status == 200
    log = sb.read_log()
    assert "AgentTrace sandbox on" in log  # the banner is there, without the secrets
    assert sb.api_key not in log and sb.admin_token not in log
