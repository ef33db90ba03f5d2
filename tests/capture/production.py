"""A synthetic "production": AgentTrace traffic unlike the guide's defaults, for import tests.

Bursty arrivals (gamma gaps, CV 2), an endpoint mix with batches and reads, traces of
1 + Geometric(1/6) observations (mean 6) of three types with camelCase keys, long prompts,
other models; every request carries credentials, and a few requests go to other paths.
Written as the raw HTTP requests an agent fleet sends, so tests can store them as HAR or
.gor files and import them.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from typing import NamedTuple

import numpy as np

SECRET = "sk-live-PRODUCTION-SECRET-0123456789"
COOKIE = "session=COOKIE-SECRET-abcdef"
EPOCH_NS = 1_790_000_000_000_000_000  # 2026-09-21T...
MODELS = ("mistral-large-2411", "gemini-1.5-pro", "gpt-4.1")
WORDS = ("zebra", "quartz", "Ünïcode", "naïve", "日本語", "prompt", "Customer", "42", "x-ray")
SHARES = (("ingest", 0.55), ("batch", 0.15), ("list", 0.12), ("get", 0.10), ("search", 0.08))


class Request(NamedTuple):
    at_ns: int
    method: str
    path: str
    headers: tuple[tuple[str, str], ...]
    body: bytes


_PROSE: dict[int, str] = {}


def _text(rng: np.random.Generator, median: float) -> str:
    """A slice of lognormal length (median `median`, capped at 20,000) of a long random text."""
    n = min(20_000, max(3, int(median * np.exp(1.1 * rng.standard_normal()))))
    prose = _PROSE.get(0)
    if prose is None:
        words = np.random.Generator(np.random.PCG64(0)).integers(0, len(WORDS), 40_000)
        prose = _PROSE[0] = " ".join(WORDS[i] for i in words.tolist())
    start = int(rng.integers(0, len(prose) - n))
    return prose[start : start + n]


def _observation(rng: np.random.Generator, trace_id: str, ms: int) -> dict[str, object]:
    kind = ("SPAN", "GENERATION", "EVENT")[int(rng.choice(3, p=(0.3, 0.55, 0.15)))]
    obs: dict[str, object] = {
        "id": str(uuid.UUID(bytes=rng.bytes(16), version=4)),
        "traceId": trace_id,
        "type": kind,
        "name": _text(rng, 12),
        "startTime": _iso(ms),
        "endTime": _iso(ms + int(rng.integers(5, 3000))),
        "input": {"messages": [{"role": "user", "content": _text(rng, 300)}]},
        "output": {"role": "assistant", "content": _text(rng, 200)},
        "metadata": {"tenant": _text(rng, 10)},
    }
    if kind == "GENERATION":
        obs["model"] = MODELS[int(rng.integers(0, len(MODELS)))]
        obs["usage"] = {"input": int(rng.integers(50, 4000)), "output": int(rng.integers(5, 900))}
    return obs


def _iso(ms: int) -> str:
    from capture.intake import iso_ms

    return iso_ms(ms * 1_000_000)


def requests(seed: int = 7, rate: float = 200.0, duration_s: float = 40.0) -> Iterator[Request]:
    rng = np.random.Generator(np.random.PCG64(seed))
    cv = 2.0
    k = 1 / cv**2
    gaps = rng.gamma(k, cv**2 / rate, size=int(rate * duration_s * 1.5))
    times = np.cumsum(gaps)
    times = times[times < duration_s]
    tags = [t for t, _ in SHARES]
    probs = [p for _, p in SHARES]
    traces: list[str] = []
    headers = (
        ("Content-Type", "application/json"),
        ("Authorization", f"Bearer {SECRET}"),
        ("Cookie", COOKIE),
        ("X-Api-Key", SECRET),
        ("X-Langfuse-Sdk-Token", SECRET),
        ("User-Agent", "agent-fleet/3.1"),
    )
    for i, t in enumerate(times.tolist()):
        at_ns = EPOCH_NS + int(t * 1e9)
        ms = at_ns // 1_000_000
        if i % 500 == 17:
            yield Request(at_ns, "GET", "/favicon.ico", headers[1:], b"")
            continue
        tag = tags[int(rng.choice(len(tags), p=probs))]
        if tag == "ingest":
            trace_id = rng.bytes(16).hex()
            n = 1 + int(rng.geometric(1 / 6)) - 1
            trace = {
                "id": trace_id,
                "name": _text(rng, 20),
                "timestamp": _iso(ms - 3000),
                "userId": "alice@example.com",
                "input": {"question": _text(rng, 150)},
                "output": {"answer": _text(rng, 250)},
                "metadata": {"model": MODELS[0], "customer": _text(rng, 8)},
                "observations": [_observation(rng, trace_id, ms - 3000 + j) for j in range(n)],
            }
            traces.append(trace_id)
            yield Request(at_ns, "POST", "/api/public/traces", headers, json.dumps(trace).encode())
        elif tag == "batch":
            trace_id = rng.bytes(16).hex()
            events = [
                {
                    "id": str(uuid.UUID(bytes=rng.bytes(16), version=4)),
                    "type": "trace-create",
                    "timestamp": _iso(ms),
                    "body": {"id": trace_id, "name": _text(rng, 15), "input": _text(rng, 80)},
                }
            ]
            for _ in range(int(rng.integers(2, 12))):
                obs = _observation(rng, trace_id, ms - 500)
                kind = str(obs.pop("type")).lower()
                events.append(
                    {
                        "id": str(uuid.UUID(bytes=rng.bytes(16), version=4)),
                        "type": f"{kind}-create",
                        "timestamp": _iso(ms),
                        "body": obs,
                    }
                )
            traces.append(trace_id)
            body = json.dumps({"batch": events}).encode()
            yield Request(at_ns, "POST", "/api/public/ingestion", headers, body)
        elif tag == "get" and traces:
            trace_id = traces[int(rng.integers(0, len(traces)))]
            yield Request(at_ns, "GET", f"/api/public/traces/{trace_id}", headers[1:], b"")
        elif tag == "search":
            yield Request(
                at_ns, "GET", "/api/public/traces?search=Customer&limit=20", headers[1:], b""
            )
        else:
            yield Request(at_ns, "GET", "/api/public/traces?limit=50&page=2", headers[1:], b"")


def to_http(req: Request, host: str = "api.example.com") -> bytes:
    head = [f"{req.method} {req.path} HTTP/1.1", f"Host: {host}"]
    head += [f"{k}: {v}" for k, v in req.headers]
    if req.body:
        head.append(f"Content-Length: {len(req.body)}")
    return ("\r\n".join(head) + "\r\n\r\n").encode("utf-8") + req.body


def write_gor(reqs: list[Request], path: str, *, responses: bool = True) -> None:
    """GoReplay's file layout: a request record, and (as gor writes) its response record."""
    with open(path, "wb") as f:
        for n, req in enumerate(reqs):
            rid = f"{n:024x}"
            f.write(f"1 {rid} {req.at_ns} 0\n".encode() + to_http(req) + "\n🐵🙈🙉\n".encode())
            if responses:
                answer = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"
                f.write(
                    f"2 {rid} {req.at_ns + 1000} 1000\n".encode() + answer + "\n🐵🙈🙉\n".encode()
                )


def har_entry(req: Request, *, base64_body: bool = False) -> dict[str, object]:
    from datetime import UTC, datetime

    seconds, ns = divmod(req.at_ns, 1_000_000_000)
    when = datetime.fromtimestamp(seconds, UTC).replace(microsecond=ns // 1000).isoformat()
    entry: dict[str, object] = {
        "startedDateTime": when,
        "time": 1.0,
        "request": {
            "method": req.method,
            "url": f"https://api.example.com{req.path}",
            "httpVersion": "HTTP/1.1",
            "headers": [{"name": k, "value": v} for k, v in req.headers],
            "queryString": [],
            "cookies": [],
            "headersSize": -1,
            "bodySize": len(req.body),
        },
        "response": {
            "status": 200,
            "statusText": "OK",
            "httpVersion": "HTTP/1.1",
            "headers": [],
            "cookies": [],
            "content": {"size": 0, "mimeType": "x"},
            "redirectURL": "",
            "headersSize": -1,
            "bodySize": 0,
        },
        "cache": {},
        "timings": {"send": 0, "wait": 1, "receive": 0},
    }
    if req.body:
        post: dict[str, object] = {"mimeType": "application/json"}
        if base64_body:
            post["text"] = base64.b64encode(req.body).decode()
            post["encoding"] = "base64"
        else:
            post["text"] = req.body.decode("utf-8")
        entry["request"]["postData"] = post  # type: ignore[index]
    return entry


def har(entries: list[dict[str, object]]) -> dict[str, object]:
    return {
        "log": {"version": "1.2", "creator": {"name": "tests", "version": "1"}, "entries": entries}
    }
