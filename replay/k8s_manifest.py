"""A distributed replay as Kubernetes objects: one Indexed Job whose K pods are the K
segments of one run.

Each pod runs ``replay run RUN-ARGS --segments K --start-at T --metrics-port P --out -``:
Kubernetes sets ``JOB_COMPLETION_INDEX`` (0 .. K-1) in every pod of an Indexed Job, and
``--segments K`` reads it, so the pods need no coordinator to agree on who does what. They
load, wait for the same wall-clock instant ``T``, run, and print their results document on
stdout at the end, where ``replay k8s collect`` reads it back from the pod logs.

The Job never retries (``backoffLimit: 0``, ``restartPolicy: Never``): a segment started
again would start late and double its part of the load. A segment whose thresholds fail
exits 99; the container maps that one status to 0, because a segment's thresholds judge
only its share of the load (and a failed pod would make Kubernetes stop the others):
``collect`` judges the thresholds over all segments and exits 99 itself.

API: ``JobSpec``, ``build_manifest(spec) -> list[dict]``, ``render_yaml(docs) -> str``,
``check_run_args(args)``, ``parse_cpu``, ``parse_memory``, ``parse_secret`` (ValueError
with a message fit for the user), ``start_time(now, start_in_ns)``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

CONTAINER = "replay"
"""The container's name in every pod: what ``collect`` reads the log of."""
INDEX_ANNOTATION = "batch.kubernetes.io/job-completion-index"
JOB_LABEL = "batch.kubernetes.io/job-name"
"""Labels and annotations Kubernetes itself puts on an Indexed Job's pods."""
APP = "agenttrace-replay"
METRICS_PORT = 9464
API_KEY_ENV = "API_KEY"
"""What ``replay run --api-key`` reads from the environment."""
EXIT_THRESHOLD_FAILED = 99

# The container's entry: `replay "$@"`, with a segment's own threshold verdict (99) not
# counted as the pod failing; every other status is passed on.
WRAPPER = 'replay "$@"; status=$?; if [ "$status" -eq 99 ]; then exit 0; fi; exit "$status"'

SET_BY_MANIFEST = {
    "--segment": "each pod's segment comes from --segments K and JOB_COMPLETION_INDEX",
    "--segments": "give it to `replay k8s manifest --segments K`",
    "--start-at": "use `replay k8s manifest --start-in` (the manifest sets one instant)",
    "--out": "each pod prints its results on stdout; `replay k8s collect -o` writes them",
    "--metrics-port": "use `replay k8s manifest --metrics-port`",
    "--api-key": "a key on a command line is visible to anyone who can read the pod: put it "
    "in a Secret (--api-key-secret)",
    "--abort-on-fail": "a segment sees only its share of the load, so it cannot judge the "
    "run's thresholds; `replay k8s collect` judges them over all segments",
}
"""Options of ``replay run`` that RUN-ARGS may not hold, and why."""

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_CPU = re.compile(r"^(\d+(?:\.\d{1,3})?|\d+m)$")
_MEMORY = re.compile(r"^(\d+)(Ki|Mi|Gi|Ti|K|M|G|T)?$")
_MEMORY_UNITS = {
    None: 1,
    "K": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
}
MAX_SEGMENTS = 10_000
"""Kubernetes limits an Indexed Job to 100,000 completions; more than this many pods for
one run is a mistake rather than a plan."""


@dataclass(frozen=True)
class JobSpec:
    """What ``replay k8s manifest`` was asked for, checked."""

    name: str
    image: str
    segments: int
    run_args: tuple[str, ...]
    start_at: datetime  # UTC, whole seconds
    namespace: str | None = None
    cpu_millis: int = 2000
    memory: str = "2Gi"
    metrics_port: int = METRICS_PORT
    api_key_secret: tuple[str, str] | None = None  # (Secret name, key)
    pod_monitor: bool = False


def check_name(name: str, what: str = "--name") -> str:
    """A DNS-1123 label of at most 63 characters (a Job's name becomes a label value)."""
    if len(name) > 63 or not _DNS_LABEL.match(name):
        raise ValueError(
            f"{what} {name!r}: must be at most 63 characters of a-z, 0-9 and '-', "
            "starting and ending with a letter or digit"
        )
    return name


def parse_cpu(text: str) -> int:
    """A CPU quantity ('2', '1.5', '500m') in millicores; at least one whole core."""
    s = text.strip()
    if not _CPU.match(s):
        raise ValueError(f"--cpu {text!r}: not a CPU quantity (examples: 2, 1.5, 1500m)")
    millis = int(s[:-1]) if s.endswith("m") else round(float(s) * 1000)
    if millis < 1000:
        raise ValueError(f"--cpu {text!r}: a segment needs at least one core (1 or 1000m)")
    return millis


def cpu_quantity(millis: int) -> str:
    """The canonical Kubernetes quantity: '2' for 2000, '1500m' for 1500."""
    return str(millis // 1000) if millis % 1000 == 0 else f"{millis}m"


def parse_memory(text: str) -> str:
    """A memory quantity ('2Gi', '512Mi', '1G'): at least 128 MiB."""
    s = text.strip()
    match = _MEMORY.match(s)
    if not match:
        raise ValueError(f"--memory {text!r}: not a memory quantity (examples: 2Gi, 512Mi)")
    size = int(match.group(1)) * _MEMORY_UNITS[match.group(2)]
    if size < 128 * 2**20:
        raise ValueError(f"--memory {text!r}: a segment needs at least 128Mi")
    return s


def parse_secret(text: str) -> tuple[str, str]:
    """'NAME/KEY' (or 'NAME', key 'api-key'): the Secret holding the target's API key."""
    name, sep, key = text.partition("/")
    key = key if sep else "api-key"
    check_name(name, "--api-key-secret")
    if not key or not re.match(r"^[-._a-zA-Z0-9]+$", key):
        raise ValueError(f"--api-key-secret {text!r}: the key must be of A-Z a-z 0-9 - _ .")
    return name, key


def check_run_args(args: Sequence[str]) -> tuple[str, ...]:
    """RUN-ARGS as given, or ValueError naming the first option the manifest sets itself."""
    for arg in args:
        if arg == "--":
            break
        option = arg.split("=", 1)[0]
        if option in SET_BY_MANIFEST:
            raise ValueError(f"RUN-ARGS: {option}: {SET_BY_MANIFEST[option]}")
    return tuple(args)


def _has_option(args: Sequence[str], option: str) -> bool:
    return any(a == option or a.startswith(option + "=") for a in args)


def start_time(now: datetime, start_in_ns: int) -> datetime:
    """``now`` plus the delay, rounded up to a whole second (UTC)."""
    moment = now.astimezone(UTC) + timedelta(microseconds=start_in_ns // 1000)
    if moment.microsecond:
        moment = moment.replace(microsecond=0) + timedelta(seconds=1)
    return moment


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def default_name(start_at: datetime) -> str:
    """``replay-YYYYMMDD-HHMMSS`` of the start: a fresh Job name for every run."""
    return f"replay-{start_at.astimezone(UTC).strftime('%Y%m%d-%H%M%S')}"


def pod_args(spec: JobSpec) -> list[str]:
    """The arguments after ``replay`` in every pod."""
    args = ["run", *spec.run_args]
    if not _has_option(spec.run_args, "--workers"):
        # os.cpu_count() in a container is the node's, not the pod's share of it
        args += ["--workers", str(max(1, spec.cpu_millis // 1000))]
    return [
        *args,
        "--segments",
        str(spec.segments),
        "--start-at",
        rfc3339(spec.start_at),
        "--metrics-port",
        str(spec.metrics_port),
        "--out",
        "-",
    ]


def _labels(spec: JobSpec) -> dict[str, str]:
    return {"app.kubernetes.io/name": APP, "app.kubernetes.io/instance": spec.name}


def _metadata(spec: JobSpec, name: str) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if spec.namespace:
        meta["namespace"] = spec.namespace
    meta["labels"] = _labels(spec)
    return meta


def _container(spec: JobSpec) -> dict[str, Any]:
    cpu = cpu_quantity(spec.cpu_millis)
    container: dict[str, Any] = {
        "name": CONTAINER,
        "image": spec.image,
        "command": ["sh", "-c", WRAPPER, "replay"],
        "args": pod_args(spec),
    }
    if spec.api_key_secret is not None:
        secret, key = spec.api_key_secret
        container["env"] = [
            {
                "name": API_KEY_ENV,
                "valueFrom": {"secretKeyRef": {"name": secret, "key": key}},
            }
        ]
    container.update(
        {
            "ports": [{"name": "metrics", "containerPort": spec.metrics_port, "protocol": "TCP"}],
            "resources": {
                "requests": {"cpu": cpu, "memory": spec.memory},
                "limits": {"cpu": cpu, "memory": spec.memory},
            },
            "securityContext": {
                "allowPrivilegeEscalation": False,
                "capabilities": {"drop": ["ALL"]},
            },
            "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
        }
    )
    return container


def build_job(spec: JobSpec) -> dict[str, Any]:
    """The Indexed Job: K pods at once, never retried, spread over nodes."""
    k = spec.segments
    anti_affinity = {
        "preferredDuringSchedulingIgnoredDuringExecution": [
            {
                "weight": 100,
                "podAffinityTerm": {
                    "labelSelector": {"matchLabels": _labels(spec)},
                    "topologyKey": "kubernetes.io/hostname",
                },
            }
        ]
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": _metadata(spec, spec.name),
        "spec": {
            "completionMode": "Indexed",
            "completions": k,
            "parallelism": k,
            "backoffLimit": 0,
            "template": {
                "metadata": {
                    "labels": _labels(spec),
                    "annotations": {
                        "prometheus.io/scrape": "true",
                        "prometheus.io/port": str(spec.metrics_port),
                        "prometheus.io/path": "/metrics",
                    },
                },
                "spec": {
                    "restartPolicy": "Never",
                    "affinity": {"podAntiAffinity": anti_affinity},
                    "securityContext": {"runAsNonRoot": True},
                    "containers": [_container(spec)],
                    "volumes": [{"name": "tmp", "emptyDir": {}}],
                },
            },
        },
    }


def build_pod_monitor(spec: JobSpec) -> dict[str, Any]:
    """A Prometheus Operator PodMonitor scraping every segment's metrics port each 5 s."""
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PodMonitor",
        "metadata": _metadata(spec, spec.name),
        "spec": {
            "selector": {"matchLabels": _labels(spec)},
            "podMetricsEndpoints": [{"port": "metrics", "path": "/metrics", "interval": "5s"}],
        },
    }


def build_manifest(spec: JobSpec) -> list[dict[str, Any]]:
    """The Job, and the PodMonitor when asked for."""
    docs = [build_job(spec)]
    if spec.pod_monitor:
        docs.append(build_pod_monitor(spec))
    return docs


def render_yaml(docs: Sequence[dict[str, Any]]) -> str:
    """A multi-document YAML stream, keys in the order Kubernetes users read them."""
    import yaml

    return yaml.safe_dump_all(docs, sort_keys=False, explicit_start=True, width=100)
