"""Every endpoint of the guide against a real sandbox process."""

from __future__ import annotations

import re
import uuid
from typing import Any

GRAPHQL = (
    'query { traces(projectId: "%s", limit: 20) { id name timestamp observations { id type } } }'
)


def test_ingest_answers_accepted_and_the_trace_becomes_readable(api: Any) -> None:
    trace = api.trace(observations=5)
    reply = api.post("/api/public/traces", trace)
    assert reply.status == 200
    assert reply.json == {"id": trace["id"], "status": "accepted"}
    api.flush()
    got = api.get(f"/api/public/traces/{trace['id']}")
    assert got.status == 200
    body = got.json
    assert body["id"] == trace["id"] and body["name"] == trace["name"]
    assert body["input"] == trace["input"] and body["metadata"] == trace["metadata"]
    assert body["timestamp"] == trace["timestamp"]
    assert [(o["id"], o["type"]) for o in body["observations"]] == [
        (o["id"], o["type"]) for o in trace["observations"]
    ]
    assert body["durationMs"] > 0


def test_reposting_a_trace_upserts_it(api: Any) -> None:
    trace = api.trace()
    api.ingest(trace)
    api.ingest({**trace, "name": "renamed", "observations": []})
    api.flush()
    body = api.get(f"/api/public/traces/{trace['id']}").json
    assert body["name"] == "renamed"
    assert len(body["observations"]) == 2  # kept: an upsert merges
    listed = api.get("/api/public/traces?name=renamed&limit=100").json
    assert [t["id"] for t in listed["data"]].count(trace["id"]) == 1


def test_unknown_trace_is_404(api: Any) -> None:
    reply = api.get(f"/api/public/traces/{uuid.uuid4().hex}")
    assert reply.status == 404 and reply.json["error"] == "not_found"


def test_list_pages_newest_first_with_meta(api: Any) -> None:
    tag = uuid.uuid4().hex[:8]
    ids = []
    for second in range(5):
        trace = api.trace(name=f"page-{tag}", timestamp=f"2030-01-01T00:00:0{second}Z")
        api.ingest(trace)
        ids.append(trace["id"])
    api.flush()
    first = api.get(f"/api/public/traces?name=page-{tag}&limit=2").json
    assert first["meta"] == {"page": 1, "limit": 2, "totalItems": 5, "totalPages": 3}
    assert [t["id"] for t in first["data"]] == ids[::-1][:2]
    newest = ids[-1]
    assert first["data"][0]["observations"] == [f"{newest}-obs-0", f"{newest}-obs-1"]
    third = api.get(f"/api/public/traces?name=page-{tag}&limit=2&page=3").json
    assert [t["id"] for t in third["data"]] == [ids[0]]
    default = api.get("/api/public/traces").json
    assert default["meta"]["limit"] == 50


def test_list_search_and_time_window(api: Any) -> None:
    word = f"needle{uuid.uuid4().hex[:6]}"
    in_input = api.trace(input={"text": f"find the {word} here"}, timestamp="2031-05-01T10:00:00Z")
    in_output = api.trace(output={"text": word.upper()}, timestamp="2031-05-02T10:00:00Z")
    in_name = api.trace(name=f"x-{word}", timestamp="2031-05-03T10:00:00Z")
    for trace in (in_input, in_output, in_name, api.trace()):
        api.ingest(trace)
    api.flush()
    found = api.get(f"/api/public/traces?search={word}&limit=20").json
    assert {t["id"] for t in found["data"]} == {in_input["id"], in_output["id"], in_name["id"]}
    window = api.get(
        f"/api/public/traces?search={word}&fromTimestamp=2031-05-02T00:00:00Z"
        "&toTimestamp=2031-05-03T00:00:00Z"
    ).json
    assert [t["id"] for t in window["data"]] == [in_output["id"]]


def test_metrics_endpoint_counts_per_bucket(api: Any, connect: Any, launch: Any) -> None:
    sb = launch()
    own = connect(sb)
    traces = [own.trace(observations=2) for _ in range(3)]
    for trace in traces:
        own.ingest(trace)
    own.flush()
    for period in ("day", "hour"):
        reply = own.get(f"/api/public/metrics/traces?period={period}")
        assert reply.status == 200
        data = reply.json["data"]
        assert sum(b["count"] for b in data) == 3
        assert all(b["avgDurationMs"] > 0 for b in data)
        assert reply.json["meta"]["period"] == period
    assert own.get("/api/public/metrics/traces?period=week").status == 400
    # project B sees none of project A's traces in the aggregate
    other = own.get("/api/public/metrics/traces?period=day", key=own.KEY_B).json
    assert other["data"] == []


def test_graphql_guide_query(api: Any) -> None:
    trace = api.trace(observations=3, timestamp="2099-01-01T00:00:00Z")
    api.ingest(trace)
    api.flush()
    reply = api.post("/graphql", {"query": GRAPHQL % api.PROJECT_A})
    assert reply.status == 200, reply.body
    traces = reply.json["data"]["traces"]
    assert traces[0]["id"] == trace["id"]  # newest first
    assert traces[0]["observations"] == [
        {"id": o["id"], "type": o["type"]} for o in trace["observations"]
    ]
    assert set(traces[0]) == {"id", "name", "timestamp", "observations"}


def test_graphql_errors_are_graphql_shaped(api: Any) -> None:
    cases = [
        ({"query": 'query { traces(projectId: "x" { id } }'}, 400),  # syntax
        ({"query": "query { nope }"}, 400),  # unknown field
        ({"query": "mutation { x }"}, 400),  # unsupported operation
        ({"query": "subscription { traces }"}, 400),
        ({"nothing": 1}, 400),  # no query
        ({"query": GRAPHQL % api.PROJECT_B}, 200),  # another project: execution error
        ({"query": f'query {{ traces(projectId: "{api.PROJECT_A}", limit: 500) {{ id }} }}'}, 200),
    ]
    for body, status in cases:
        reply = api.post("/graphql", body)
        assert reply.status == status, (body, reply.body)
        errors = reply.json["errors"]
        assert errors and all(isinstance(e["message"], str) for e in errors)
    malformed = api.post("/graphql", b"{not json")
    assert malformed.status == 400 and "errors" in malformed.json
    unauthenticated = api.post("/graphql", {"query": "{ __typename }"}, key=None)
    assert unauthenticated.status == 401 and "errors" in unauthenticated.json


def test_graphql_variables_and_single_trace(api: Any) -> None:
    trace = api.trace()
    api.ingest(trace)
    api.flush()
    query = (
        "query Q($p: ID!, $id: ID!) { trace(projectId: $p, id: $id) { id observations { id } } }"
    )
    reply = api.post(
        "/graphql", {"query": query, "variables": {"p": api.PROJECT_A, "id": trace["id"]}}
    )
    assert reply.status == 200
    assert reply.json["data"]["trace"]["id"] == trace["id"]
    missing = api.post("/graphql", {"query": query, "variables": {"p": api.PROJECT_A}})
    assert missing.status == 400 and missing.json["errors"]


def test_project_endpoint(api: Any) -> None:
    assert api.get(f"/api/projects/{api.PROJECT_A}").json == {
        "id": api.PROJECT_A,
        "name": api.PROJECT_A,
    }
    assert api.get(f"/api/projects/{api.PROJECT_B}").status == 404  # not this key's project
    assert api.get(f"/api/projects/{api.PROJECT_B}", key=api.KEY_B).status == 200


def test_health_ready_need_no_key(api: Any) -> None:
    health = api.get("/health", key=None)
    assert health.status == 200 and health.json == {"status": "ok"}
    ready = api.get("/ready", key=None)
    assert ready.status == 200 and ready.json == {"status": "ready"}
    head = api.request("HEAD", "/health", key=None)
    assert head.status == 200 and head.body == b""


def test_prometheus_metrics_need_no_key_and_use_the_guides_names(api: Any) -> None:
    api.ingest(api.trace())
    api.flush()
    reply = api.get("/metrics", key=None)
    assert reply.status == 200
    assert reply.headers["content-type"].startswith("text/plain")
    text = reply.body.decode()
    assert re.search(
        r'^http_requests_total\{method="POST",route="/api/public/traces",status="200"\} [1-9]',
        text,
        re.M,
    )
    assert re.search(
        r'^http_request_duration_seconds_bucket\{le="0.1",method="POST",'
        r'route="/api/public/traces"\} [1-9]',
        text,
        re.M,
    )
    assert re.search(r"^ingestion_queue_length [0-9.]+$", text, re.M)
    assert re.search(r'^ingestion_rows_written_total\{table="traces"\} [1-9]', text, re.M)
    assert re.search(r"^clickhouse_insert_rows_total [1-9]", text, re.M)
