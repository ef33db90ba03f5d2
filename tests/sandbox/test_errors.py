"""Errors, never a crash: 400 naming the problem, 404, 405, 413, 429, malformed HTTP, and the
server still serving (with its acknowledged traces intact) afterwards."""

from __future__ import annotations

import json
import socket
import time
from typing import Any

import pytest


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"{not json", "body"),
        (b"", "body"),
        (b"[1, 2]", "body"),
        (b"\xff\xfe\x00garbage", "body"),
        (b"[" * 100_000, "body"),  # nested too deeply for any parser
        (json.dumps({"name": "no id"}).encode(), "body.id"),
        (json.dumps({"id": 42}).encode(), "body.id"),
        (json.dumps({"id": "t", "observations": "no"}).encode(), "body.observations"),
        (json.dumps({"id": "t", "observations": [{"id": "o"}]}).encode(),
         "body.observations[0].type"),
        (json.dumps({"id": "t", "observations": [{"type": "SPAN"}]}).encode(),
         "body.observations[0].id"),
        (json.dumps({"id": "t", "timestamp": "soon"}).encode(), "body.timestamp"),
    ],
)  # fmt: skip
def test_bad_trace_bodies_get_400_naming_the_field(api: Any, body: bytes, field: str) -> None:
    reply = api.post("/api/public/traces", body)
    assert reply.status == 400
    assert reply.json["error"] == "invalid_request"
    assert reply.json["field"] == field
    assert reply.json["message"].startswith(field)


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("limit=ten", "limit"),
        ("page=0", "page"),
        ("fromTimestamp=yesterday", "fromTimestamp"),
        ("toTimestamp=1", "toTimestamp"),
    ],
)
def test_bad_query_parameters_get_400(api: Any, query: str, field: str) -> None:
    reply = api.get(f"/api/public/traces?{query}")
    assert reply.status == 400 and reply.json["field"] == field


def test_unknown_path_is_404_and_wrong_method_405(api: Any) -> None:
    missing = api.get("/api/public/nothing")
    assert missing.status == 404 and missing.json["error"] == "not_found"
    wrong = api.request("DELETE", "/api/public/traces")
    assert wrong.status == 405
    assert wrong.headers["allow"] == "GET, POST"
    assert api.request("PUT", "/health", b"{}", key=None).status == 405
    assert api.get("/api/public/ingestion").status == 405
    assert api.get("/graphql").status == 405


def test_body_over_max_body_is_413_before_it_is_read(launch: Any, connect: Any) -> None:
    sb = launch(max_body=10_000)
    own = connect(sb)
    big = json.dumps(own.trace(input={"blob": "x" * 20_000})).encode()
    reply = own.post("/api/public/traces", big)
    assert reply.status == 413 and "10000" in reply.json["message"]
    # declared length alone is enough: the server answers without waiting for the body
    with socket.create_connection((sb.host, sb.port), timeout=10) as raw:
        raw.sendall(
            b"POST /api/public/traces HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer sk-test-a\r\n"
            b"Content-Length: 999999999\r\nExpect: 100-continue\r\n\r\n"
        )
        assert raw.recv(4096).startswith(b"HTTP/1.1 413 ")
    # chunked bodies are counted as they arrive
    chunks = b"".join(b"1000\r\n" + b"x" * 4096 + b"\r\n" for _ in range(5))
    chunked = _raw(
        sb,
        b"POST /api/public/traces HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer sk-test-a\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n" + chunks,
    )
    assert chunked.startswith(b"HTTP/1.1 413 ")
    small = own.trace()
    assert own.post("/api/public/traces", small).status == 200


def test_default_max_body_is_4_5_mb(api: Any) -> None:
    blob = "x" * 4_600_000
    reply = api.post("/api/public/traces", api.trace(input={"blob": blob}))
    assert reply.status == 413
    fits = api.trace(input={"blob": "y" * 4_000_000})
    assert api.post("/api/public/traces", fits).status == 200
    api.flush()
    assert api.get(f"/api/public/traces/{fits['id']}").json["input"]["blob"] == "y" * 4_000_000


def test_rate_limit_answers_429_with_headers(launch: Any, connect: Any) -> None:
    sb = launch(rate_limit=5.0, rate_burst=3)
    own = connect(sb)
    replies = [own.get("/api/public/traces") for _ in range(6)]
    statuses = [r.status for r in replies]
    assert statuses[:3] == [200, 200, 200] and 429 in statuses[3:]
    ok, limited = replies[0], next(r for r in replies if r.status == 429)
    assert ok.headers["x-ratelimit-limit"] == "5"
    assert int(ok.headers["x-ratelimit-remaining"]) == 2
    assert int(ok.headers["x-ratelimit-reset"]) >= 1
    assert limited.headers["x-ratelimit-remaining"] == "0"
    assert int(limited.headers["retry-after"]) >= 1
    assert limited.json["error"] == "rate_limited"
    # per key: project B still has its whole burst
    assert own.get("/api/public/traces", key=own.KEY_B).status == 200
    # and the limit recovers: after 1/rate seconds one more request passes
    time.sleep(0.25)
    assert own.get("/api/public/traces").status == 200


def _raw(sb: Any, data: bytes, timeout: float = 10.0) -> bytes:
    """Send raw bytes, half-close, read the whole answer."""
    with socket.create_connection((sb.host, sb.port), timeout=timeout) as raw:
        try:
            raw.sendall(data)
            raw.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        chunks = []
        while True:
            try:
                chunk = raw.recv(65536)
            except OSError:
                break
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks)


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (b"GARBAGE\r\n\r\n", b"400"),
        (b"GET / HTTP/2.0\r\n\r\n", b"505"),
        (b"GET /health HTTP/1.1\r\nBad Header\r\n\r\n", b"400"),
        (b"GET /health HTTP/1.1\r\nX: " + b"a" * 70_000 + b"\r\n\r\n", b"431"),
        (b"POST /api/public/traces HTTP/1.1\r\nContent-Length: -5\r\n\r\n", b"400"),
        (b"POST /api/public/traces HTTP/1.1\r\nContent-Length: 5\r\n"
         b"Transfer-Encoding: chunked\r\n\r\n", b"400"),
        (b"POST /api/public/traces HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", b"400"),
        (b"POST /api/public/traces HTTP/1.1\r\nContent-Length: 100\r\n\r\nshort", b"400"),
    ],
)  # fmt: skip
def test_malformed_http_gets_an_answer_not_a_crash(api: Any, data: bytes, status: bytes) -> None:
    answer = _raw(api.sb, data)
    assert answer.startswith(b"HTTP/1.1 " + status + b" "), answer[:200]
    assert api.get("/health", key=None).status == 200


def test_http_features(api: Any) -> None:
    # pipelining two requests on one connection, then HTTP/1.0 without keep-alive
    pipelined = _raw(
        api.sb,
        b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
        b"GET /ready HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    assert pipelined.count(b"HTTP/1.1 200 OK") == 2
    assert b'{"status":"ready"}' in pipelined
    old = _raw(api.sb, b"GET /health HTTP/1.0\r\n\r\n")
    assert old.startswith(b"HTTP/1.1 200 ") and b"Connection: close" in old
    # a chunked trace upload is accepted
    trace = json.dumps(api.trace()).encode()
    pieces = [trace[i : i + 100] for i in range(0, len(trace), 100)]
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(piece), piece) for piece in pieces)
    answer = _raw(
        api.sb,
        b"POST /api/public/traces HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer sk-test-a\r\n"
        b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n" + chunks + b"0\r\n\r\n",
    )
    assert answer.startswith(b"HTTP/1.1 200 ") and b'"status":"accepted"' in answer


def test_abuse_does_not_lose_acknowledged_traces(api: Any) -> None:
    kept = api.trace()
    api.ingest(kept)
    for _ in range(20):
        _raw(api.sb, b"POST /api/public/traces HTTP/1.1\r\nContent-Length: 50\r\n\r\n{")
        with socket.create_connection((api.sb.host, api.sb.port), timeout=5) as raw:
            raw.sendall(b"POST /api/public/traces HTTP/1.1\r\nContent-Le")  # and vanish
    api.post("/api/public/traces", b"[" * 50_000)
    api.flush()
    assert api.get(f"/api/public/traces/{kept['id']}").status == 200
    assert api.sb.running
