"""A fake Kubernetes API server on loopback: the REST calls `replay k8s collect` makes.

It serves, from what a test puts in it, exactly the three endpoints of the real API that the
official client calls (and answers 404, as the API does, for anything else):

    GET /apis/batch/v1/namespaces/{ns}/jobs/{name}
    GET /api/v1/namespaces/{ns}/pods?labelSelector=batch.kubernetes.io/job-name={name}
    GET /api/v1/namespaces/{ns}/pods/{pod}/log?container=...

Every request must carry the bearer token of the kubeconfig that ``kubeconfig()`` writes.
Pods are built from the pod template of the Job that ``replay k8s manifest`` generates,
as the Job controller would: its labels and annotations plus the completion index.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

TOKEN = "fake-token-for-tests"


@dataclass
class FakePod:
    index: int
    phase: str  # Pending, Running, Succeeded, Failed
    log: str = ""
    exit_code: int | None = None
    reason: str | None = None
    created: str = "2026-11-29T05:00:00Z"
    name: str = ""


@dataclass
class FakeCluster:
    """The objects the fake API serves; ``requests`` records every path asked for."""

    namespace: str
    job: dict[str, Any]
    pods: list[FakePod] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    finish_at_read: int = 0  # the Job read at which the pods become ``finished`` (1-based)
    finished: list[FakePod] = field(default_factory=list)
    job_reads: int = 0

    def read_job(self) -> dict[str, Any]:
        """The Job, Complete (and its pods ``finished``) from read ``finish_at_read`` on."""
        self.job_reads += 1
        if self.finish_at_read and self.job_reads >= self.finish_at_read:
            self.pods = self.finished
            self.job["status"] = {
                "conditions": [{"type": "Complete", "status": "True"}],
                "succeeded": len(self.finished),
            }
        return self.job

    @property
    def job_name(self) -> str:
        return str(self.job["metadata"]["name"])

    def pod_name(self, pod: FakePod) -> str:
        return pod.name or f"{self.job_name}-{pod.index}-x{pod.index:04d}"

    def pod_json(self, pod: FakePod) -> dict[str, Any]:
        template = self.job["spec"]["template"]
        labels = {
            **template["metadata"]["labels"],
            "batch.kubernetes.io/job-name": self.job_name,
            "job-name": self.job_name,
            "batch.kubernetes.io/job-completion-index": str(pod.index),
        }
        annotations = {
            **template["metadata"]["annotations"],
            "batch.kubernetes.io/job-completion-index": str(pod.index),
        }
        status: dict[str, Any] = {"phase": pod.phase}
        container = template["spec"]["containers"][0]
        if pod.phase in ("Succeeded", "Failed"):
            terminated: dict[str, Any] = {"exitCode": pod.exit_code or 0}
            if pod.reason:
                terminated["reason"] = pod.reason
            status["containerStatuses"] = [
                {
                    "name": container["name"],
                    "image": container["image"],
                    "imageID": "sha256:0",
                    "ready": False,
                    "restartCount": 0,
                    "state": {"terminated": terminated},
                }
            ]
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": self.pod_name(pod),
                "namespace": self.namespace,
                "labels": labels,
                "annotations": annotations,
                "creationTimestamp": pod.created,
            },
            "spec": template["spec"],
            "status": status,
        }


def _handler(cluster: FakeCluster) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _send(self, status: int, body: bytes, kind: str = "application/json") -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _json(self, status: int, obj: Any) -> None:
            self._send(status, json.dumps(obj).encode())

        def _not_found(self, what: str) -> None:
            self._json(
                404,
                {
                    "kind": "Status",
                    "apiVersion": "v1",
                    "status": "Failure",
                    "message": f"{what} not found",
                    "reason": "NotFound",
                    "code": 404,
                },
            )

        def do_GET(self) -> None:
            cluster.requests.append(self.path)
            if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                self._json(401, {"kind": "Status", "code": 401, "reason": "Unauthorized"})
                return
            url = urlsplit(self.path)
            query = parse_qs(url.query)
            parts = url.path.strip("/").split("/")
            ns = cluster.namespace
            if parts == ["apis", "batch", "v1", "namespaces", ns, "jobs", cluster.job_name]:
                self._json(200, cluster.read_job())
            elif parts == ["api", "v1", "namespaces", ns, "pods"]:
                selector = query.get("labelSelector", [""])[0]
                key, _, value = selector.partition("=")
                items = [cluster.pod_json(p) for p in cluster.pods]
                items = [p for p in items if p["metadata"]["labels"].get(key) == value]
                self._json(200, {"apiVersion": "v1", "kind": "PodList", "items": items})
            elif parts[:5] == ["api", "v1", "namespaces", ns, "pods"] and parts[6:] == ["log"]:
                pod = next((p for p in cluster.pods if cluster.pod_name(p) == parts[5]), None)
                if pod is None:
                    self._not_found(f'pods "{parts[5]}"')
                else:
                    self._send(200, pod.log.encode(), "text/plain")
            else:
                self._not_found(url.path)

    return Handler


@contextmanager
def serve(cluster: FakeCluster) -> Iterator[str]:
    """The fake API's base URL while the block runs (127.0.0.1, an ephemeral port)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(cluster))
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def kubeconfig(path: Path, server: str, namespace: str) -> Path:
    """A kubeconfig whose current context is the fake API, with its token and namespace."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "fake", "cluster": {"server": server}}],
        "users": [{"name": "tester", "user": {"token": TOKEN}}],
        "contexts": [
            {
                "name": "fake",
                "context": {"cluster": "fake", "user": "tester", "namespace": namespace},
            }
        ],
        "current-context": "fake",
    }
    path.write_text(json.dumps(config))
    return path
