"""The sandbox's operational routes: health, readiness, metrics, its OpenAPI document, and
the admin token's ``/admin/pods`` and ``/admin/flush``.

:class:`Operations` holds one handler per route, in the app's ``(request, project, param)``
shape; none of them takes an API key, so none sees a project.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sandbox import api_json
from sandbox.capacity import Emulation, SharedSchedule
from sandbox.payload import PayloadError
from sandbox.pipeline import QueueUnavailable
from sandbox.wire import Request, Response

if TYPE_CHECKING:
    from sandbox.app import Services


class Operations:
    """The handlers of ``/health``, ``/ready``, ``/metrics``, ``/openapi.json`` and
    ``/admin/*``."""

    def __init__(self, services: Services) -> None:
        self._s = services

    def health(self, _request: Request, _project: str, _param: str) -> Response:
        return api_json.answer(200, {"status": "ok"})

    def ready(self, _request: Request, _project: str, _param: str) -> Response:
        if self._s.ready():
            return api_json.answer(200, {"status": "ready"})
        return api_json.answer(503, {"status": "unavailable"})

    def metrics(self, _request: Request, _project: str, _param: str) -> Response:
        text, content_type = self._s.metrics_text()
        return Response(200, text, content_type=content_type)

    def openapi(self, _request: Request, _project: str, _param: str) -> Response:
        from sandbox.openapi import DOCUMENT_BYTES

        return Response(200, DOCUMENT_BYTES, api_json.JSON_TYPE)

    def get_pods(self, _request: Request, _project: str, _param: str) -> Response:
        schedule = self._require_schedule()
        emulation, enabled = schedule.current()
        admitted, shed = schedule.counts()
        return api_json.answer(
            200, {**emulation.as_dict(), "enabled": enabled, "admitted": admitted, "shed": shed}
        )

    def set_pods(self, request: Request, _project: str, _param: str) -> Response:
        schedule = self._require_schedule()
        try:
            body = api_json.body(request)
            emulation = emulation_update(schedule.current()[0], body)
        except PayloadError as exc:
            return api_json.error(400, "invalid_request", str(exc), field=exc.field)
        schedule.configure(emulation, enabled=True, now=self._s.clock())
        return api_json.answer(200, {**emulation.as_dict(), "enabled": True})

    def flush(self, request: Request, _project: str, _param: str) -> Response:
        timeout = 30.0
        if request.body.strip():
            try:
                body = api_json.body(request)
                if not isinstance(body, dict):
                    raise PayloadError("body", "expected a JSON object")
                timeout = api_json.number(body, "timeout", 30.0, 0.0, 600.0)
            except PayloadError as exc:
                return api_json.error(400, "invalid_request", str(exc), field=exc.field)
        try:
            flushed = self._s.flush(timeout)
        except QueueUnavailable as exc:
            return api_json.error(503, "unavailable", str(exc))
        if not flushed:
            return api_json.error(504, "timeout", f"the queue did not drain within {timeout:g}s")
        return api_json.answer(200, {"flushed": True})

    def _require_schedule(self) -> SharedSchedule:
        if self._s.schedule is None:
            raise RuntimeError("this sandbox runs without a capacity schedule")
        return self._s.schedule


_EMULATION_FIELDS = {
    "pods": ("pods", int),
    "podRate": ("pod_rate", float),
    "sigma": ("sigma", float),
    "kappa": ("kappa", float),
    "serviceCv": ("service_cv", float),
    "queueDepth": ("queue_depth", int),
}


def emulation_update(current: Emulation, body: Any) -> Emulation:
    """``{"pods": N}`` (and optionally the model's other parameters) applied to ``current``."""
    if not isinstance(body, dict) or "pods" not in body:
        raise PayloadError("pods", 'required: {"pods": N}')
    changes: dict[str, Any] = {}
    for key, value in body.items():
        spec = _EMULATION_FIELDS.get(key)
        if spec is None:
            known = ", ".join(_EMULATION_FIELDS)
            raise PayloadError(key, f"unknown field (known: {known})")
        attr, kind = spec
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise PayloadError(key, "expected a number")
        if kind is int and value != int(value):
            raise PayloadError(key, "expected an integer")
        changes[attr] = kind(value)
    values = {
        "pods": current.pods,
        "pod_rate": current.pod_rate,
        "sigma": current.sigma,
        "kappa": current.kappa,
        "service_cv": current.service_cv,
        "queue_depth": current.queue_depth,
        **changes,
    }
    try:
        return Emulation(**values)
    except ValueError as exc:
        raise PayloadError("body", str(exc)) from None
