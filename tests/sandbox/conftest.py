"""Fixtures of the sandbox tests: real sandboxes on 127.0.0.1 (port 0), a small HTTP client,
trace factories and a bounded closed-loop load driver. Every sandbox started here is
stopped in teardown; readiness comes from the child's ready line, never from sleeping."""

from __future__ import annotations

import http.client
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from sandbox.process import SandboxProcess, start_sandbox

KEY_A = "sk-test-a"
KEY_B = "sk-test-b"
PROJECT_A = "proj-a"
PROJECT_B = "proj-b"
ADMIN = "admin-secret"
KEYS = {KEY_A: PROJECT_A, KEY_B: PROJECT_B}


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


_DEFAULT = object()


class Api:
    """One sandbox's HTTP API; authenticates as project A unless told otherwise."""

    KEY_A, KEY_B, PROJECT_A, PROJECT_B, ADMIN = KEY_A, KEY_B, PROJECT_A, PROJECT_B, ADMIN

    def __init__(self, sb: SandboxProcess) -> None:
        self.sb = sb

    @staticmethod
    def trace(observations: int = 2, **fields: Any) -> dict[str, Any]:
        return make_trace(observations, **fields)

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        key: Any = _DEFAULT,
        headers: dict[str, str] | None = None,
        timeout: float = 30.0,
    ) -> Reply:
        conn = http.client.HTTPConnection(self.sb.host, self.sb.port, timeout=timeout)
        try:
            sent = dict(headers or {})
            if key is _DEFAULT:
                key = KEY_A
            if key is not None:
                sent["Authorization"] = f"Bearer {key}"
            if body is not None and not isinstance(body, bytes):
                body = json.dumps(body).encode()
                sent.setdefault("Content-Type", "application/json")
            conn.request(method, path, body=body, headers=sent)
            response = conn.getresponse()
            return Reply(
                response.status,
                {k.lower(): v for k, v in response.getheaders()},
                response.read(),
            )
        finally:
            conn.close()

    def get(self, path: str, **kw: Any) -> Reply:
        return self.request("GET", path, **kw)

    def post(self, path: str, body: Any, **kw: Any) -> Reply:
        return self.request("POST", path, body, **kw)

    def ingest(self, trace: dict[str, Any], key: str = KEY_A) -> Reply:
        reply = self.post("/api/public/traces", trace, key=key)
        assert reply.status == 200, reply.body
        return reply

    def flush(self) -> None:
        reply = self.post("/admin/flush", {"timeout": 30}, key=ADMIN)
        assert reply.status == 200, reply.body


def make_trace(observations: int = 2, **fields: Any) -> dict[str, Any]:
    """A trace in the guide's payload shape with a fresh 32-hex id."""
    trace_id = uuid.uuid4().hex
    trace: dict[str, Any] = {
        "id": trace_id,
        "name": f"load-test-trace-{trace_id}",
        "timestamp": _iso(time.time()),
        "input": {"query": "What is the weather?"},
        "output": {"response": "The weather is sunny."},
        "metadata": {"model": "gpt-4o", "tokens": {"input": 10, "output": 20}},
        "observations": [
            {
                "id": f"{trace_id}-obs-{i}",
                "trace_id": trace_id,
                "type": "SPAN" if i == 0 else "GENERATION",
                "name": f"observation-{i}",
                "start_time": _iso(time.time() - 1 + i * 0.1),
                "end_time": _iso(time.time() - 0.5 + i * 0.1),
                "input": {"step": i},
                "output": {"result": f"step {i} complete"},
            }
            for i in range(observations)
        ],
    }
    trace.update(fields)
    return trace


def _iso(seconds: float) -> str:
    ms = int(seconds * 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms / 1000)) + f".{ms % 1000:03d}Z"


@pytest.fixture(scope="session")
def sandbox() -> Iterator[SandboxProcess]:
    """The shared sandbox: two projects, admin token, default settings."""
    with start_sandbox(api_keys=KEYS, admin_token=ADMIN) as sb:
        yield sb


@pytest.fixture(scope="session")
def api(sandbox: SandboxProcess) -> Api:
    return Api(sandbox)


@pytest.fixture
def connect() -> Callable[[SandboxProcess], Api]:
    return Api


@pytest.fixture
def launch() -> Iterator[Callable[..., SandboxProcess]]:
    """launch(**start_sandbox kwargs) -> a sandbox stopped at teardown (keys A/B, ADMIN)."""
    started: list[SandboxProcess] = []

    def start(**kwargs: Any) -> SandboxProcess:
        kwargs.setdefault("api_keys", KEYS)
        kwargs.setdefault("admin_token", ADMIN)
        sb = start_sandbox(**kwargs)
        started.append(sb)
        return sb

    yield start
    for sb in started:
        sb.stop(timeout=30)


@dataclass
class LoadResult:
    """Completions of a closed-loop run: (monotonic end time, status, latency seconds)."""

    done: list[tuple[float, int, float]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def rate(self, start: float, end: float, status: int = 200) -> float:
        count = sum(1 for t, s, _ in self.done if start <= t < end and s == status)
        return count / (end - start)

    def latencies(self, start: float, end: float) -> list[float]:
        return [lat for t, s, lat in self.done if start <= t < end and s == 200]


def closed_loop(
    sb: SandboxProcess,
    *,
    connections: int,
    seconds: float,
    body: Callable[[], bytes] | None = None,
    path: str = "/api/public/traces",
    key: str = KEY_A,
) -> LoadResult:
    """``connections`` threads, each sending back-to-back on one keep-alive connection for
    ``seconds`` (bounded in time; every request to 127.0.0.1)."""
    result = LoadResult()
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds
    make = body or (lambda: json.dumps(make_trace(observations=1)).encode())
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}

    def loop() -> None:
        conn = http.client.HTTPConnection(sb.host, sb.port, timeout=30)
        try:
            while time.monotonic() < stop_at:
                sent = time.monotonic()
                try:
                    conn.request("POST", path, body=make(), headers=headers)
                    response = conn.getresponse()
                    response.read()
                except (OSError, http.client.HTTPException) as exc:
                    with lock:
                        result.errors.append(repr(exc))
                    conn.close()
                    conn = http.client.HTTPConnection(sb.host, sb.port, timeout=30)
                    continue
                now = time.monotonic()
                with lock:
                    result.done.append((now, response.status, now - sent))
        finally:
            conn.close()

    threads = [threading.Thread(target=loop) for _ in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=seconds + 60)
    return result


@pytest.fixture
def load() -> Callable[..., LoadResult]:
    return closed_loop
