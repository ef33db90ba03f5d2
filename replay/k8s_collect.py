"""Collect a distributed run: every segment's results from its pod's log, merged exactly.

Each pod of the Indexed Job that ``replay k8s manifest`` made prints one
``replay-results/1`` document on stdout when its segment ends. ``collect_job`` asks the
Kubernetes API for the Job (how many segments there are), its pods (label
``batch.kubernetes.io/job-name``, index in the ``batch.kubernetes.io/job-completion-index``
annotation) and each finished pod's log, takes the last results document out of that log,
and merges them with ``replay.results.merge_results``: bucket counts add, so every
percentile of the merged run is that of one histogram holding every request of every pod,
and the run's thresholds are judged again over all of them.

A segment is *missing* when it has no pod, its pod has not finished, or its log holds no
complete results; it is *failed* when its pod failed (what it measured before it failed is
merged, as a single run keeps a failed run's partial results). Either makes the collected
run incomplete: ``Collection.problems`` names each, and the exit status is 1 (the run
failed), as it is for a single run that lost a worker.

The API is passed in (``CoreV1Api``, ``BatchV1Api`` of the official ``kubernetes`` client,
or anything answering the same three calls), so this module imports no client itself.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from replay.k8s_manifest import CONTAINER, INDEX_ANNOTATION, JOB_LABEL
from replay.merge import merge_results
from replay.results import SCHEMA, ResultsError
from replay.results_read import validate_results
from replay.thresholds import EXIT_THRESHOLD_FAILED

EXIT_FAILED = 1
RESULTS_START = '{\n  "schema": "' + SCHEMA + '"'
"""How a results document written by ``replay run --out -`` begins."""
MAX_LOG_BYTES = 256 * 2**20
"""A pod log larger than this is not read (the kubelet rotates logs far below it)."""


class CollectError(Exception):
    """The Job cannot be collected at all (not found, not Indexed, no results anywhere)."""


class CoreApi(Protocol):
    def list_namespaced_pod(self, namespace: str, **kwargs: Any) -> Any: ...
    def read_namespaced_pod_log(self, name: str, namespace: str, **kwargs: Any) -> Any: ...


class BatchApi(Protocol):
    def read_namespaced_job(self, name: str, namespace: str, **kwargs: Any) -> Any: ...


@dataclass
class Segment:
    """One segment as collect found it."""

    index: int
    pod: str | None = None
    phase: str | None = None
    exit_code: int | None = None
    reason: str | None = None
    results: dict[str, Any] | None = None
    problem: str | None = None  # why the segment is missing or failed

    @property
    def label(self) -> str:
        return f"segment {self.index}" + (f" (pod {self.pod})" if self.pod else "")


@dataclass
class Collection:
    """What ``collect_job`` found and merged."""

    job: str
    segments: list[Segment]
    merged: dict[str, Any] | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def exit_status(self) -> int:
        """1 when a segment is missing or failed, 99 when a threshold failed, else 0."""
        if self.problems or self.merged is None:
            return EXIT_FAILED
        if any(not v["ok"] for v in self.merged["thresholds"]):
            return EXIT_THRESHOLD_FAILED
        return 0


def results_from_log(log: str, where: str) -> dict[str, Any]:
    """The last complete results document in a pod's log (stdout and stderr mixed)."""
    start = log.rfind(RESULTS_START)
    if start < 0:
        raise ResultsError(f"{where}: no results in its log")
    try:
        obj, _end = json.JSONDecoder().raw_decode(log, start)
    except json.JSONDecodeError as exc:
        raise ResultsError(
            f"{where}: its results are cut short (at line {exc.lineno} of the log: {exc.msg}); "
            "a log rotated by the kubelet or a pod killed while writing"
        ) from None
    validate_results(obj, where)
    results: dict[str, Any] = obj
    return results


def _index(pod: Any) -> int | None:
    annotations = pod.metadata.annotations or {}
    labels = pod.metadata.labels or {}
    text = annotations.get(INDEX_ANNOTATION, labels.get(INDEX_ANNOTATION))
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def _termination(pod: Any) -> tuple[int | None, str | None]:
    """The replay container's exit code and reason, once it has terminated."""
    for status in (pod.status.container_statuses or []) if pod.status else []:
        if status.name == CONTAINER and status.state and status.state.terminated:
            terminated = status.state.terminated
            return terminated.exit_code, terminated.reason
    return None, None


def _pick(pods: Sequence[Any]) -> Any:
    """Of several pods for one index, the succeeded one, else the newest."""
    for pod in pods:
        if pod.status and pod.status.phase == "Succeeded":
            return pod
    return max(pods, key=lambda p: str(p.metadata.creation_timestamp or ""))


def _read_log(core: CoreApi, pod: str, namespace: str, where: str) -> str:
    try:
        response = core.read_namespaced_pod_log(
            pod, namespace, container=CONTAINER, limit_bytes=MAX_LOG_BYTES, _preload_content=False
        )
    except Exception as exc:
        if getattr(exc, "status", None) == 404:  # deleted since it was listed
            raise ResultsError(f"{where}: the pod or its log is gone") from None
        raise
    data = response.data if hasattr(response, "data") else response
    if isinstance(data, bytes):
        return data.decode("utf-8", "replace")
    return str(data)


def _segment_check(results: Mapping[str, Any], segment: Segment, k: int) -> str | None:
    """A results document that says it is another segment's (``meta.segment``)."""
    claimed = results["meta"].get("segment")
    expected = f"{segment.index}/{k}"
    if claimed is not None and claimed != expected:
        return f"{segment.label}: its results are of segment {claimed}, expected {expected}"
    return None


def job_finished(job_obj: Any) -> str | None:
    """ "Complete" or "Failed" once the Job controller has said so, else None."""
    status = job_obj.status
    for condition in (status.conditions or []) if status else []:
        if condition.type in ("Complete", "Failed") and condition.status == "True":
            return str(condition.type)
    return None


def wait_for_job(
    batch: BatchApi,
    job: str,
    namespace: str,
    timeout_s: float,
    *,
    poll_s: float = 5.0,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> str | None:
    """Poll the Job until it is Complete or Failed (returned) or ``timeout_s`` passes (None)."""
    deadline = clock() + timeout_s
    while True:
        finished = job_finished(batch.read_namespaced_job(job, namespace))
        if finished or clock() >= deadline:
            return finished
        sleep(max(0.0, min(poll_s, deadline - clock())))


def collect_job(core: CoreApi, batch: BatchApi, job: str, namespace: str) -> Collection:
    """Find the Job's segments, read their results, merge what there is."""
    job_obj = batch.read_namespaced_job(job, namespace)
    spec = job_obj.spec
    if spec is None or spec.completion_mode != "Indexed" or not spec.completions:
        raise CollectError(
            f"job {namespace}/{job}: not an Indexed Job (make one with replay k8s manifest)"
        )
    k = int(spec.completions)
    listing = core.list_namespaced_pod(namespace, label_selector=f"{JOB_LABEL}={job}")
    by_index: dict[int, list[Any]] = {}
    for pod in listing.items or []:
        index = _index(pod)
        if index is not None and 0 <= index < k:
            by_index.setdefault(index, []).append(pod)

    segments = [Segment(i) for i in range(k)]
    for segment in segments:
        pods = by_index.get(segment.index)
        if not pods:
            segment.problem = f"{segment.label}/{k}: missing, no pod (deleted, or never created)"
            continue
        pod = _pick(pods)
        segment.pod = pod.metadata.name
        segment.phase = pod.status.phase if pod.status else None
        segment.exit_code, segment.reason = _termination(pod)
        where = f"segment {segment.index}/{k} (pod {segment.pod})"
        if segment.phase not in ("Succeeded", "Failed"):
            segment.problem = f"{where}: missing, the pod is {segment.phase or 'unknown'}"
            continue
        try:
            segment.results = results_from_log(
                _read_log(core, segment.pod, namespace, where), where
            )
        except ResultsError as exc:
            segment.problem = f"{exc}" + (
                f"; the pod failed ({_exit_text(segment)})" if segment.phase == "Failed" else ""
            )
            continue
        mismatch = _segment_check(segment.results, segment, k)
        if mismatch:
            segment.problem, segment.results = mismatch, None
        elif segment.phase == "Failed":
            segment.problem = (
                f"{where}: failed ({_exit_text(segment)}); its partial results are merged"
            )

    collection = Collection(job, segments, problems=[s.problem for s in segments if s.problem])
    found = [s for s in segments if s.results is not None]
    if not found:
        raise CollectError(
            f"job {namespace}/{job}: no segment's results to merge: "
            + "; ".join(collection.problems)
        )
    names = [f"segment {s.index}/{k} (pod {s.pod})" for s in found]
    merged = merge_results([s.results for s in found if s.results is not None], names)
    merged["meta"]["notes"].extend(collection.problems)
    if collection.problems:
        merged["meta"]["notes"].append(
            f"incomplete: {len(found)} of {k} segments merged; the totals and rates are "
            "those of the segments merged, not of the whole run"
        )
    collection.merged = merged
    return collection


def _exit_text(segment: Segment) -> str:
    if segment.exit_code is None:
        return segment.reason or "no exit status"
    reason = f", {segment.reason}" if segment.reason and segment.reason != "Error" else ""
    return f"exit status {segment.exit_code}{reason}"
