"""``POST /api/public/ingestion``: 207 with per-event successes and errors, the way SDKs
batch; the valid events of a mixed batch are stored, the invalid ones are not."""

from __future__ import annotations

import uuid
from typing import Any


def _event(event_type: str, body: dict[str, Any], event_id: str | None = None) -> dict[str, Any]:
    return {
        "id": event_id or uuid.uuid4().hex,
        "type": event_type,
        "timestamp": "2026-01-01T00:00:00.000Z",
        "body": body,
    }


def test_mixed_batch_reports_each_event(api: Any) -> None:
    trace_id = uuid.uuid4().hex
    good = [
        _event("trace-create", {"id": trace_id, "name": "batched", "input": {"q": 1}}, "e1"),
        _event("span-create", {"id": f"{trace_id}-s", "traceId": trace_id, "name": "retrieve",
                               "startTime": "2026-01-01T00:00:00Z"}, "e2"),
        _event("generation-create", {"id": f"{trace_id}-g", "traceId": trace_id,
                                     "parentObservationId": f"{trace_id}-s", "model": "gpt-4o",
                                     "startTime": "2026-01-01T00:00:00.100Z",
                                     "usage": {"input": 10, "output": 20}}, "e3"),
        _event("event-create", {"id": f"{trace_id}-v", "traceId": trace_id}, "e4"),
        _event("span-update", {"id": f"{trace_id}-s", "endTime": "2026-01-01T00:00:02Z"}, "e5"),
        _event("generation-update", {"id": f"{trace_id}-g", "output": {"text": "hi"},
                                     "endTime": "2026-01-01T00:00:01Z"}, "e6"),
        _event("trace-update", {"id": trace_id, "output": {"a": 2}}, "e7"),
    ]  # fmt: skip
    bad = [
        _event("span-create", {"id": "no-trace"}, "b1"),  # create without traceId
        _event("score-create", {"id": "x"}, "b2"),  # unsupported type
        _event("trace-create", {"name": "no id"}, "b3"),
        {"id": "b4", "type": "span-create", "body": "not an object"},
        {"type": "trace-create", "body": {"id": "x"}},  # no event id
        "not even an object",
    ]
    reply = api.post("/api/public/ingestion", {"batch": good[:3] + bad + good[3:]})
    assert reply.status == 207
    body = reply.json
    assert [s["id"] for s in body["successes"]] == [f"e{i}" for i in range(1, 8)]
    assert all(s["status"] == 201 for s in body["successes"])
    assert [e["id"] for e in body["errors"]] == ["b1", "b2", "b3", "b4", None, None]
    assert all(e["status"] == 400 and e["message"] for e in body["errors"])
    assert body["errors"][0]["message"].startswith("body.traceId")
    assert body["errors"][1]["message"].startswith("type")

    api.flush()
    trace = api.get(f"/api/public/traces/{trace_id}").json
    assert trace["name"] == "batched" and trace["input"] == {"q": 1} and trace["output"] == {"a": 2}
    by_id = {o["id"]: o for o in trace["observations"]}
    assert set(by_id) == {f"{trace_id}-s", f"{trace_id}-g", f"{trace_id}-v"}
    span, generation = by_id[f"{trace_id}-s"], by_id[f"{trace_id}-g"]
    assert span["name"] == "retrieve" and span["endTime"] == "2026-01-01T00:00:02.000Z"
    assert generation["model"] == "gpt-4o" and generation["output"] == {"text": "hi"}
    assert generation["usage"] == {"input": 10, "output": 20}
    assert generation["parentObservationId"] == f"{trace_id}-s"
    assert by_id[f"{trace_id}-v"]["type"] == "EVENT"
    assert trace["durationMs"] == 2000
    assert api.get("/api/public/traces/no-trace").status == 404


def test_all_bad_batch_is_still_207_and_stores_nothing(api: Any) -> None:
    reply = api.post("/api/public/ingestion", {"batch": [_event("bogus", {}, "x")]})
    assert reply.status == 207
    assert reply.json["successes"] == [] and reply.json["errors"][0]["id"] == "x"
    empty = api.post("/api/public/ingestion", {"batch": []})
    assert empty.status == 207 and empty.json == {"successes": [], "errors": []}


def test_malformed_batch_envelope_is_400(api: Any) -> None:
    for body, field in (
        (b"{oops", "body"),
        ({"events": []}, "batch"),
        ({"batch": {"id": "x"}}, "batch"),
        ([1], "body"),
    ):
        reply = api.post("/api/public/ingestion", body)
        assert reply.status == 400 and reply.json["field"] == field


def test_observation_before_its_trace_creates_it(api: Any) -> None:
    trace_id = uuid.uuid4().hex
    early = _event("span-create", {"id": f"{trace_id}-s", "traceId": trace_id,
                                   "startTime": "2026-01-01T00:00:00Z"})  # fmt: skip
    assert api.post("/api/public/ingestion", {"batch": [early]}).status == 207
    api.flush()
    assert api.get(f"/api/public/traces/{trace_id}").json["observations"][0]["type"] == "SPAN"
    late = _event("trace-create", {"id": trace_id, "name": "arrived later"})
    api.post("/api/public/ingestion", {"batch": [late]})
    api.flush()
    trace = api.get(f"/api/public/traces/{trace_id}").json
    assert trace["name"] == "arrived later" and len(trace["observations"]) == 1
