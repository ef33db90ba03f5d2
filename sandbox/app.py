"""The AgentTrace API the guide uses: routes, authentication, ingestion and reads.

:class:`App` maps a :class:`~sandbox.wire.Request` to a :class:`~sandbox.wire.Response`
and never blocks on its own: it is handed the process's services (enqueue, store reads,
admission to emulated capacity, the rate limiter) as plain callables and objects. Routes:

    POST /api/public/traces            ingest one trace (200 accepted)
    POST /api/public/ingestion         a batch of events (207 successes/errors)
    GET  /api/public/traces            list: limit, page, search, name, from/toTimestamp
    GET  /api/public/traces/{id}       one trace with its observations (404 until written)
    GET  /api/public/metrics/traces    count and mean duration per hour or day, 30 days
    POST /graphql                      traces(projectId, limit) ...
    GET  /api/projects/{id}            the key's project
    GET  /health, /ready, /metrics     no key            (sandbox/ops_routes.py)
    GET  /openapi.json                 no key            (sandbox/openapi.py)
    GET|POST /admin/pods, POST /admin/flush   admin token (sandbox/ops_routes.py)

Order for an API route: authenticate (401), rate-limit (429), admit to emulated capacity
(503 when shed), then the handler. Errors are JSON naming the problem (sandbox/api_json.py):
``{"error": "invalid_request", "message": "observations[1].type: required ...",
"field": "observations[1].type"}``; on ``/graphql`` they take the GraphQL shape.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from sandbox import api_json, store
from sandbox.auth import Credentials
from sandbox.capacity import SharedSchedule
from sandbox.graphql_api import GraphQLEndpoint, Run
from sandbox.ops_routes import Operations
from sandbox.payload import Item, PayloadError, event_id, parse_event, parse_trace
from sandbox.pipeline import QueueUnavailable
from sandbox.ratelimit import SharedRateLimiter
from sandbox.wire import Request, Response

API = "api"
PUBLIC = "public"
ADMIN = "admin"
MAX_BATCH_EVENTS = 10_000
STORE_RETRY_AFTER = 2


@dataclass(frozen=True)
class Keys:
    """API keys (key -> project) and the admin token."""

    api_keys: dict[str, str]
    admin_token: str


@dataclass(frozen=True)
class Services:
    """What the app needs from the process it runs in."""

    enqueue: Callable[[str, list[Item]], None]
    flush: Callable[[float], bool]
    run: Run
    metrics_text: Callable[[], tuple[bytes, str]]
    ready: Callable[[], bool]
    schedule: SharedSchedule | None = None
    limiter: SharedRateLimiter | None = None
    clock: Callable[[], float] = time.monotonic
    accepting: Callable[[], bool] = lambda: True
    """False while the store cannot write: ingestion then answers 503 (Retry-After)."""
    wall_ms: Callable[[], int] = lambda: int(time.time() * 1000)


Handler = Callable[[Request, str, str], Response]


@dataclass(frozen=True)
class Route:
    name: str
    kind: str
    methods: dict[str, Handler]


class App:
    def __init__(self, keys: Keys, services: Services) -> None:
        self._keys = keys
        self._key_index = {key: i for i, key in enumerate(sorted(keys.api_keys))}
        self._credentials = Credentials(keys.api_keys, keys.admin_token)
        self._s = services
        self._graphql = GraphQLEndpoint(services.run)
        ops = Operations(services)
        self._exact: dict[str, Route] = {
            "/api/public/traces": Route(
                "/api/public/traces", API, {"POST": self._ingest, "GET": self._list}
            ),
            "/api/public/ingestion": Route("/api/public/ingestion", API, {"POST": self._batch}),
            "/api/public/metrics/traces": Route(
                "/api/public/metrics/traces", API, {"GET": self._trace_metrics}
            ),
            "/graphql": Route("/graphql", API, {"POST": self._graphql_query}),
            "/health": Route("/health", PUBLIC, {"GET": ops.health}),
            "/ready": Route("/ready", PUBLIC, {"GET": ops.ready}),
            "/metrics": Route("/metrics", PUBLIC, {"GET": ops.metrics}),
            "/openapi.json": Route("/openapi.json", PUBLIC, {"GET": ops.openapi}),
            "/admin/pods": Route("/admin/pods", ADMIN, {"GET": ops.get_pods, "POST": ops.set_pods}),
            "/admin/flush": Route("/admin/flush", ADMIN, {"POST": ops.flush}),
        }
        self._prefixed: list[tuple[str, Route]] = [
            (
                "/api/public/traces/",
                Route("/api/public/traces/{id}", API, {"GET": self._get_trace}),
            ),
            ("/api/projects/", Route("/api/projects/{id}", API, {"GET": self._project})),
        ]

    # -------------------------------------------------------------- dispatch

    def match(self, path: str) -> tuple[Route | None, str]:
        """The route for a path and its ``{id}`` parameter (percent-decoded)."""
        route = self._exact.get(path)
        if route is not None:
            return route, ""
        if len(path) > 1 and path.endswith("/"):
            route = self._exact.get(path.rstrip("/"))
            if route is not None:
                return route, ""
        for prefix, route in self._prefixed:
            if path.startswith(prefix):
                param = path[len(prefix) :]
                if param and "/" not in param:
                    return route, unquote(param)
        return None, ""

    def handle(self, request: Request, route: Route | None = None, param: str = "") -> Response:
        if route is None:
            route, param = self.match(request.path)
        if route is None:
            return api_json.error(
                404, "not_found", f"no route for {request.path}", route="unmatched"
            )
        method = "GET" if request.method == "HEAD" else request.method
        handler = route.methods.get(method)
        if handler is None:
            allowed = ", ".join(sorted(route.methods))
            response = api_json.error(
                405,
                "method_not_allowed",
                f"{request.method} is not allowed on {route.name} (allowed: {allowed})",
                route=route.name,
            )
            response.headers.append(("Allow", allowed))
            return response
        graphql = route.name == "/graphql"
        if route.kind == PUBLIC:
            response = handler(request, "", param)
        elif route.kind == ADMIN:
            if not self._credentials.is_admin(self._bearer(request)):
                response = api_json.error(401, "unauthorized", "admin token required")
                response.headers.append(("WWW-Authenticate", 'Bearer realm="admin"'))
            else:
                response = handler(request, "", param)
        else:
            response = self._api(request, route, handler, param, graphql)
        response.route = route.name
        return response

    def _api(
        self, request: Request, route: Route, handler: Handler, param: str, graphql: bool
    ) -> Response:
        key = self._bearer(request)
        if key is None:
            response = api_json.error(
                401, "unauthorized", "missing 'Authorization: Bearer <key>' header", graphql
            )
            response.headers.append(("WWW-Authenticate", "Bearer"))
            return response
        project = self._credentials.project_of(key)
        if project is None:
            response = api_json.error(401, "unauthorized", "invalid API key", graphql)
            response.headers.append(("WWW-Authenticate", 'Bearer error="invalid_token"'))
            return response
        rate_headers: list[tuple[str, str]] = []
        if self._s.limiter is not None:
            decision = self._s.limiter.check(self._key_index[key], self._s.clock())
            rate_headers = decision.headers()
            if not decision.allowed:
                response = api_json.error(
                    429,
                    "rate_limited",
                    f"rate limit of {self._s.limiter.rate:g} requests/s for this key exceeded",
                    graphql,
                )
                response.headers.extend(rate_headers)
                response.tag = "rate_limited"
                return response
        hold = 0.0
        schedule = self._s.schedule
        if schedule is not None and schedule.enabled():
            ticket = schedule.admit(self._s.clock())
            if ticket is None:
                response = api_json.error(
                    503, "overloaded", "emulated capacity exceeded: the queue is full", graphql
                )
                response.headers.append(("Retry-After", "1"))
                response.headers.extend(rate_headers)
                response.tag = "shed"
                return response
            hold = ticket.finish
        try:
            response = handler(request, project, param)
        except PayloadError as exc:
            response = api_json.error(400, "invalid_request", str(exc), graphql, field=exc.field)
        except QueueUnavailable as exc:
            response = api_json.error(503, "unavailable", str(exc), graphql)
        response.hold_until = hold
        response.headers.extend(rate_headers)
        return response

    @staticmethod
    def _bearer(request: Request) -> str | None:
        header = request.headers.get("authorization")
        if header is None:
            return None
        scheme, _, token = header.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        return token.strip()

    # -------------------------------------------------------------- ingestion

    def _store_unavailable(self) -> Response | None:
        """503 for ingestion while the store cannot write: nothing new is acknowledged."""
        if self._s.accepting():
            return None
        response = api_json.error(
            503,
            "unavailable",
            "the store cannot write at the moment; nothing was accepted, retry later",
        )
        response.headers.append(("Retry-After", str(STORE_RETRY_AFTER)))
        return response

    def _ingest(self, request: Request, project: str, _param: str) -> Response:
        refused = self._store_unavailable()
        if refused is not None:
            return refused
        body = api_json.body(request)
        items = parse_trace(body, self._s.wall_ms())
        self._s.enqueue(project, items)
        return api_json.answer(200, {"id": items[0][1]["id"], "status": "accepted"})

    def _batch(self, request: Request, project: str, _param: str) -> Response:
        refused = self._store_unavailable()
        if refused is not None:
            return refused
        body = api_json.body(request)
        if not isinstance(body, dict):
            raise PayloadError("body", "expected a JSON object with a 'batch' list")
        batch = body.get("batch")
        if not isinstance(batch, list):
            raise PayloadError("batch", "required list of events")
        if len(batch) > MAX_BATCH_EVENTS:
            raise PayloadError("batch", f"at most {MAX_BATCH_EVENTS} events per request")
        received_ms = self._s.wall_ms()
        items: list[Item] = []
        successes: list[dict[str, Any]] = []
        errors: list[dict[str, Any]] = []
        for event in batch:
            eid = event_id(event)
            try:
                if eid is None:
                    raise PayloadError("id", "required string (the event's id)")
                items.extend(parse_event(event, received_ms))
            except PayloadError as exc:
                errors.append(
                    {"id": eid, "status": 400, "message": str(exc), "error": "invalid_event"}
                )
                continue
            successes.append({"id": eid, "status": 201})
        if items:
            self._s.enqueue(project, items)
        return api_json.answer(207, {"successes": successes, "errors": errors})

    # -------------------------------------------------------------- queries

    def _list(self, request: Request, project: str, _param: str) -> Response:
        query = api_json.query(request)
        limit = api_json.int_param(query, "limit", 50, 1, 100)
        page = api_json.int_param(query, "page", 1, 1, 1_000_000)
        from_ms = api_json.time_param(query, "fromTimestamp")
        to_ms = api_json.time_param(query, "toTimestamp")
        traces, total = self._s.run(
            _list_traces,
            project,
            limit,
            page,
            query.get("search") or None,
            query.get("name"),
            from_ms,
            to_ms,
        )
        meta = {
            "page": page,
            "limit": limit,
            "totalItems": total,
            "totalPages": math.ceil(total / limit),
        }
        return api_json.answer(200, {"data": traces, "meta": meta})

    def _get_trace(self, _request: Request, project: str, trace_id: str) -> Response:
        trace = self._s.run(store.get_trace, project, trace_id)
        if trace is None:
            return api_json.error(404, "not_found", f"trace {trace_id!r} not found")
        return api_json.answer(200, trace)

    def _trace_metrics(self, request: Request, project: str, _param: str) -> Response:
        query = api_json.query(request)
        period = query.get("period", "day")
        if period not in store.PERIOD_MS:
            raise PayloadError("period", f"must be 'hour' or 'day', got {period!r}")
        now_ms = self._s.wall_ms()
        data = self._s.run(store.trace_metrics, project, period, now_ms)
        meta = {
            "period": period,
            "fromTimestamp": api_json.iso(now_ms - store.METRICS_WINDOW_MS),
            "toTimestamp": api_json.iso(now_ms),
        }
        return api_json.answer(200, {"data": data, "meta": meta})

    def _graphql_query(self, request: Request, project: str, _param: str) -> Response:
        try:
            body = api_json.body(request)
        except PayloadError as exc:
            return api_json.answer(400, {"errors": [{"message": str(exc)}]})
        status, result = self._graphql.execute(project, body)
        return api_json.answer(status, result)

    def _project(self, _request: Request, project: str, project_id: str) -> Response:
        if project_id != project:
            return api_json.error(404, "not_found", f"project {project_id!r} not found")
        return api_json.answer(200, {"id": project, "name": project})


def _list_traces(
    conn: Any,
    project: str,
    limit: int,
    page: int,
    search: str | None,
    name: str | None,
    from_ms: int | None,
    to_ms: int | None,
) -> tuple[list[dict[str, Any]], int]:
    return store.list_traces(
        conn,
        project,
        limit=limit,
        page=page,
        search=search,
        name=name,
        from_ms=from_ms,
        to_ms=to_ms,
    )
