"""`replay k8s manifest`: an Indexed Job that validates offline against a pinned Kubernetes
API (kubernetes-validate's bundled schemas), pods that run each segment of one run, a
container that passes every status but a segment's own threshold verdict, no secret on any
command line."""

from __future__ import annotations

import copy
import os
import socket
import stat
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from replay.cli import main as replay_main
from replay.k8s_manifest import (
    WRAPPER,
    JobSpec,
    build_manifest,
    cpu_quantity,
    parse_cpu,
    render_yaml,
    start_time,
)

KUBERNETES = "1.31.0"
"""The Kubernetes version the manifest is validated against (Indexed Jobs are GA)."""
IMAGE = "registry.example/agenttrace-replay:0.1"
RUN_ARGS = ["ingestion", "--target", "http://agenttrace.load.svc:8080", "--scale", "5x"]


def manifest(*options: str, run_args: list[str] = RUN_ARGS, env: Any = None) -> Any:
    return CliRunner(env=env).invoke(
        replay_main, ["k8s", "manifest", "--image", IMAGE, *options, "--", *run_args]
    )


def documents(result: Any) -> list[dict[str, Any]]:
    assert result.exit_code == 0, result.output + result.stderr
    return list(yaml.safe_load_all(result.stdout))


def pod_spec(job: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = job["spec"]["template"]["spec"]
    return spec


def test_the_job_validates_against_the_pinned_kubernetes_version(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def offline(*args: Any) -> None:
        raise AssertionError("kubernetes-validate tried the network")

    monkeypatch.setattr(socket.socket, "connect", offline)  # its schemas are bundled
    docs = documents(manifest("--segments", "4", "--namespace", "load", "--pod-monitor"))
    job, monitor = docs
    assert kubernetes_validate.validate(job, KUBERNETES, strict=True)
    assert kubernetes_validate.validate(job, kubernetes_validate.latest_version(), strict=True)
    # The validator does hold what a Job may not be
    broken = copy.deepcopy(job)
    pod_spec(broken)["containers"][0]["resourcez"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES, strict=True)
    # A PodMonitor is the Prometheus Operator's, not Kubernetes': checked by hand
    with pytest.raises(kubernetes_validate.SchemaNotFoundError):
        kubernetes_validate.validate(monitor, KUBERNETES, strict=True)
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    pod_labels = job["spec"]["template"]["metadata"]["labels"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    ports = {p["name"] for p in pod_spec(job)["containers"][0]["ports"]}
    assert [e["port"] for e in monitor["spec"]["podMetricsEndpoints"]] == ["metrics"]
    assert "metrics" in ports


def test_an_indexed_job_of_k_pods_never_retried_spread_over_nodes() -> None:
    (job,) = documents(
        manifest("--segments", "3", "--cpu", "4", "--memory", "3Gi", "--name", "soak-1")
    )
    spec = job["spec"]
    assert job["kind"] == "Job" and job["metadata"]["name"] == "soak-1"
    assert "namespace" not in job["metadata"]  # kubectl's current namespace
    assert spec["completionMode"] == "Indexed"
    assert spec["completions"] == spec["parallelism"] == 3
    assert spec["backoffLimit"] == 0
    pod = pod_spec(job)
    assert pod["restartPolicy"] == "Never"
    (term,) = pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert term["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
    selector = term["podAffinityTerm"]["labelSelector"]["matchLabels"]
    assert selector.items() <= job["spec"]["template"]["metadata"]["labels"].items()
    assert selector["app.kubernetes.io/instance"] == "soak-1"  # not other runs' pods
    (container,) = pod["containers"]
    assert container["resources"] == {
        "requests": {"cpu": "4", "memory": "3Gi"},
        "limits": {"cpu": "4", "memory": "3Gi"},
    }
    annotations = job["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == "9464"
    assert {"name": "metrics", "containerPort": 9464, "protocol": "TCP"} in container["ports"]


def test_each_pod_runs_its_segment_of_one_run_starting_together() -> None:
    before = datetime.now(UTC)
    result = manifest("--segments", "5", "--start-in", "90s", "--metrics-port", "9100")
    after = datetime.now(UTC)
    (job,) = documents(result)
    (container,) = pod_spec(job)["containers"]
    assert container["command"] == ["sh", "-c", WRAPPER, "replay"]
    args = container["args"]
    start = args[args.index("--start-at") + 1]
    moment = datetime.strptime(start, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert before + timedelta(seconds=90) <= moment <= after + timedelta(seconds=91)
    assert args == [
        "run",
        *RUN_ARGS,
        "--workers",
        "2",  # from --cpu's default: os.cpu_count() in a pod is the node's
        "--segments",
        "5",
        "--start-at",
        start,
        "--metrics-port",
        "9100",
        "--out",
        "-",
    ]
    assert job["metadata"]["name"] == "replay-" + moment.strftime("%Y%m%d-%H%M%S")
    assert f"replay k8s collect --job {job['metadata']['name']}" in result.stderr


def test_the_api_key_comes_from_a_secret_never_a_command_line() -> None:
    secret_value = "sk_live_do_not_print"
    (job,) = documents(manifest("--segments", "2", env={"API_KEY": secret_value}))
    (container,) = pod_spec(job)["containers"]
    assert container["env"] == [
        {
            "name": "API_KEY",  # what `replay run --api-key` reads
            "valueFrom": {"secretKeyRef": {"name": "agenttrace-api-key", "key": "api-key"}},
        }
    ]
    (job,) = documents(manifest("--segments", "2", "--api-key-secret", "prod-keys/agenttrace"))
    (container,) = pod_spec(job)["containers"]
    assert container["env"][0]["valueFrom"]["secretKeyRef"] == {
        "name": "prod-keys",
        "key": "agenttrace",
    }
    # Without --target the pods replay against their own embedded sandbox: no key
    (job,) = documents(manifest("--segments", "2", run_args=["ingestion", "--scale", "2x"]))
    assert "env" not in pod_spec(job)["containers"][0]
    refused = manifest("--segments", "2", run_args=[*RUN_ARGS, "--api-key", secret_value])
    assert refused.exit_code == 2
    assert "--api-key" in refused.stderr and "Secret" in refused.stderr
    assert secret_value not in refused.output + refused.stderr


@pytest.mark.parametrize(
    ("run_args", "options", "message"),
    [
        ([*RUN_ARGS, "--out", "r.json"], [], "RUN-ARGS: --out: each pod prints"),
        ([*RUN_ARGS, "--segment=1/2"], [], "RUN-ARGS: --segment:"),
        ([*RUN_ARGS, "--start-at", "0"], [], "RUN-ARGS: --start-at:"),
        ([*RUN_ARGS, "--abort-on-fail"], [], "RUN-ARGS: --abort-on-fail: a segment sees only"),
        ([*RUN_ARGS, "--rate", "lots"], [], "RUN-ARGS: "),
        ([*RUN_ARGS, "--no-such-option"], [], "RUN-ARGS: "),
        (RUN_ARGS, ["--name", "Bad_Name"], "--name 'Bad_Name': must be at most 63"),
        (RUN_ARGS, ["--cpu", "500m"], "--cpu '500m': a segment needs at least one core"),
        (RUN_ARGS, ["--cpu", "two"], "--cpu 'two': not a CPU quantity"),
        (RUN_ARGS, ["--memory", "64Mi"], "--memory '64Mi': a segment needs at least 128Mi"),
        (RUN_ARGS, ["--api-key-secret", "a/b c"], "--api-key-secret 'a/b c'"),
        (RUN_ARGS, ["--start-in", "2s"], "--start-in: at least 10s"),
    ],
)
def test_bad_input_is_one_line_and_status_2(
    run_args: list[str], options: list[str], message: str
) -> None:
    result = manifest("--segments", "2", *options, run_args=run_args)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.startswith("replay k8s manifest: error: ")
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_explicit_workers_are_kept() -> None:
    (job,) = documents(manifest("--segments", "2", run_args=[*RUN_ARGS, "--workers", "3"]))
    args = pod_spec(job)["containers"][0]["args"]
    assert args.count("--workers") == 1 and args[args.index("--workers") + 1] == "3"


def test_the_yaml_is_the_manifest() -> None:
    spec = JobSpec(
        name="r",
        image=IMAGE,
        segments=2,
        run_args=("ingestion", "--threshold", "http_req_duration: p(99)<100"),
        start_at=datetime(2026, 11, 29, 5, 0, tzinfo=UTC),
        pod_monitor=True,
    )
    docs = build_manifest(spec)
    assert list(yaml.safe_load_all(render_yaml(docs))) == docs


@pytest.mark.parametrize(
    ("status", "expected"), [(0, 0), (1, 1), (2, 2), (99, 0), (130, 130), (98, 98)]
)
def test_the_container_passes_every_status_but_a_segments_threshold_verdict(
    tmp_path: Path, status: int, expected: int
) -> None:
    """What the kubelet runs: command + args, `replay` a stand-in recording its argv."""
    fake = tmp_path / "replay"
    fake.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > "{tmp_path}/argv"\nexit {status}\n')
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    args = ["run", "ingestion", "--threshold", "http_req_duration: p(99)<100", "--out", "-"]
    done = subprocess.run(
        ["sh", "-c", WRAPPER, "replay", *args],
        env={**os.environ, "PATH": f"{tmp_path}{os.pathsep}{os.environ['PATH']}"},
        timeout=30,
    )
    assert done.returncode == expected
    assert (tmp_path / "argv").read_text().splitlines() == args


def test_start_time_rounds_up_to_a_whole_second() -> None:
    now = datetime(2026, 11, 29, 5, 0, 0, 250_000, tzinfo=UTC)
    assert start_time(now, 120 * 10**9) == datetime(2026, 11, 29, 5, 2, 1, tzinfo=UTC)
    exact = datetime(2026, 11, 29, 5, 0, 0, tzinfo=UTC)
    assert start_time(exact, 60 * 10**9) == datetime(2026, 11, 29, 5, 1, 0, tzinfo=UTC)


@given(st.integers(1000, 256_000))
def test_cpu_quantities_round_trip(millis: int) -> None:
    assert parse_cpu(cpu_quantity(millis)) == millis
    assert parse_cpu(f"{millis}m") == millis
    if millis % 1000 == 0:
        assert cpu_quantity(millis) == str(millis // 1000)
