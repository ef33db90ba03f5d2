"""`replay k8s manifest` and `replay k8s collect`: a run split over the pods of a Kubernetes
Indexed Job, then merged exactly. Both only parse and delegate (replay.k8s_manifest,
replay.k8s_collect); docs/distributed.md is the guide."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from capture.cli_errors import InputError, OneLineGroup, one_line
from capture.cli_units import DURATION
from replay.k8s_manifest import MAX_SEGMENTS, METRICS_PORT

DEFAULT_SECRET = "agenttrace-api-key/api-key"
MIN_START_IN_S = 10


@click.group("k8s", cls=OneLineGroup)
def k8s() -> None:
    """Run one replay as K pods of a Kubernetes Indexed Job and merge their results."""


@k8s.command("manifest")
@click.option("--segments", type=click.IntRange(1, MAX_SEGMENTS), required=True, metavar="K")
@click.option(
    "--image", required=True, metavar="IMAGE", help="The replay image (deploy/Containerfile)."
)
@click.option("-n", "--namespace", metavar="NS", help="[default: kubectl's current]")
@click.option(
    "--cpu", default="2", metavar="N", show_default=True, help="Cores per pod (also --workers)."
)
@click.option("--memory", default="2Gi", metavar="M", show_default=True, help="Memory per pod.")
@click.option(
    "--start-in",
    type=DURATION,
    default="2m",
    show_default=True,
    help="Start every segment this long after now: time to apply, schedule, pull and load.",
)
@click.option("--name", metavar="NAME", help="The Job's name [default: replay-<start time>].")
@click.option(
    "--metrics-port",
    type=click.IntRange(1, 65535),
    default=METRICS_PORT,
    metavar="PORT",
    help="Each pod's Prometheus port (replay run --metrics-port).",
)
@click.option(
    "--api-key-secret",
    metavar="NAME[/KEY]",
    help=f"Secret holding the target's API key, as env API_KEY; 'none' for no key "
    f"[default: {DEFAULT_SECRET} when RUN-ARGS have --target].",
)
@click.option("--pod-monitor", is_flag=True, help="Also a Prometheus Operator PodMonitor.")
@click.argument("run_args", nargs=-1, type=click.UNPROCESSED, metavar="-- RUN-ARGS...")
def manifest(
    segments: int,
    image: str,
    namespace: str | None,
    cpu: str,
    memory: str,
    start_in: int,
    name: str | None,
    metrics_port: int,
    api_key_secret: str | None,
    pod_monitor: bool,
    run_args: tuple[str, ...],
) -> None:
    """Print the Kubernetes Job that runs `replay run RUN-ARGS` as K segments.

    \b
    Every pod runs: replay run RUN-ARGS --segments K --start-at TIME
                      --metrics-port PORT --out -
    with JOB_COMPLETION_INDEX (set by Kubernetes) choosing its segment. Apply it with
    `kubectl apply -f -`; when the Job is done, `replay k8s collect --job NAME`.
    """
    from replay import k8s_manifest as km

    try:
        args = km.check_run_args(run_args)
        _check_with_run_parser(args)
        if start_in < MIN_START_IN_S * 1_000_000_000:
            raise ValueError(
                f"--start-in: at least {MIN_START_IN_S}s: the pods must be scheduled, "
                "pull the image and load the corpus before the start"
            )
        start_at = km.start_time(datetime.now(UTC), start_in)
        spec = km.JobSpec(
            name=km.check_name(name) if name else km.default_name(start_at),
            image=_image(image),
            segments=segments,
            run_args=args,
            start_at=start_at,
            namespace=km.check_name(namespace, "--namespace") if namespace else None,
            cpu_millis=km.parse_cpu(cpu),
            memory=km.parse_memory(memory),
            metrics_port=metrics_port,
            api_key_secret=_secret(api_key_secret, args),
            pod_monitor=pod_monitor,
        )
    except ValueError as exc:
        raise InputError(str(exc)) from None
    click.echo(km.render_yaml(km.build_manifest(spec)), nl=False)
    ns = f" -n {spec.namespace}" if spec.namespace else ""
    click.echo(
        f"replay k8s manifest: job {spec.name}, {segments} segments starting at "
        f"{km.rfc3339(start_at)}: apply it now (kubectl apply{ns} -f -); when it is done, "
        f"replay k8s collect --job {spec.name}{ns} -o merged.json",
        err=True,
    )


def _image(image: str) -> str:
    if not image or any(c.isspace() for c in image):
        raise ValueError(f"--image {image!r}: not an image reference")
    return image


def _secret(given: str | None, args: tuple[str, ...]) -> tuple[str, str] | None:
    from replay.k8s_manifest import parse_secret

    if given == "none":
        return None
    if given is None:
        has_target = any(a == "--target" or a.startswith("--target=") for a in args)
        return parse_secret(DEFAULT_SECRET) if has_target else None
    return parse_secret(given)


def _check_with_run_parser(args: tuple[str, ...]) -> None:
    """RUN-ARGS parsed as `replay run` will parse them: unknown options, bad values."""
    from replay.cli_run import run

    if any(a in ("--help", "-h") for a in args):
        raise ValueError("RUN-ARGS: --help is not a run")
    try:
        run.make_context("run", list(args))
    except click.ClickException as exc:
        raise ValueError(f"RUN-ARGS: {one_line(exc.format_message())}") from None


@k8s.command("collect")
@click.option("--job", required=True, metavar="NAME", help="The Job made by `k8s manifest`.")
@click.option("-n", "--namespace", metavar="NS", help="[default: kubectl's current]")
@click.option(
    "-o",
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the merged results (replay-results/1) here.",
)
@click.option(
    "--wait",
    "wait_for",
    type=DURATION,
    metavar="DURATION",
    help="First wait up to this long for the Job to complete or fail.",
)
@click.option("--kubeconfig", type=click.Path(dir_okay=False), help="[default: $KUBECONFIG]")
@click.option("--context", "kube_context", metavar="NAME", help="kubeconfig context.")
@click.pass_context
def collect(
    ctx: click.Context,
    job: str,
    namespace: str | None,
    out: Path | None,
    wait_for: int | None,
    kubeconfig: str | None,
    kube_context: str | None,
) -> None:
    """Merge the results of every pod of Job NAME exactly and judge its thresholds.

    With --wait, first poll the Job until it completes or fails. Exit status: 0 ok, 1 a
    segment is missing or failed (what there is, is merged and written), 2 bad input or
    the API cannot be reached, 99 a threshold failed over all segments.
    """
    from replay.k8s_collect import CollectError, collect_job, wait_for_job
    from replay.results import ResultsError, write_results
    from replay.summary import render_summary

    if out is not None and not out.parent.is_dir():
        raise InputError(f"{out}: directory {out.parent} does not exist")
    core, batch, default_namespace = _clients(kubeconfig, kube_context)
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError

    ns = namespace or default_namespace
    try:
        if wait_for and wait_for_job(batch, job, ns, wait_for / 1e9) is None:
            click.echo(
                f"replay k8s collect: job {ns}/{job} still running after --wait; "
                "collecting what has finished",
                err=True,
            )
        collection = collect_job(core, batch, job, ns)
    except (CollectError, ResultsError) as exc:
        raise InputError(str(exc)) from None
    except (ApiException, HTTPError) as exc:
        raise InputError(_api_error(exc, job, ns)) from None
    merged = collection.merged
    assert merged is not None
    if out is not None:
        try:
            write_results(out, merged)
        except OSError as exc:
            raise InputError(f"{out}: cannot write ({exc.strerror or exc})") from None
    click.echo(render_summary(merged), nl=False)
    for problem in collection.problems:
        click.echo(f"replay k8s collect: {problem}", err=True)
    ctx.exit(collection.exit_status)


def _clients(kubeconfig: str | None, context: str | None) -> tuple[Any, Any, str]:
    """CoreV1Api, BatchV1Api and the default namespace, from kubeconfig or in-cluster."""
    try:
        from kubernetes import client, config
    except ImportError:
        raise InputError(
            "replay k8s collect needs the kubernetes client: "
            "pip install 'agenttrace-loadtools[k8s]'"
        ) from None
    from kubernetes.config.config_exception import ConfigException
    from yaml import YAMLError

    namespace = "default"
    try:
        if kubeconfig or context or not _in_cluster():
            config.load_kube_config(config_file=kubeconfig, context=context)
            contexts, active = config.list_kube_config_contexts(config_file=kubeconfig)
            chosen = active
            if context:
                chosen = next((c for c in contexts if c.get("name") == context), active)
            namespace = (chosen or {}).get("context", {}).get("namespace") or "default"
        else:
            config.load_incluster_config()
            namespace = _in_cluster_namespace()
    except (ConfigException, YAMLError, OSError, ValueError) as exc:
        where = kubeconfig or "kubeconfig"
        raise InputError(f"{where}: {one_line(str(exc))}") from None
    api = client.ApiClient()
    return client.CoreV1Api(api), client.BatchV1Api(api), namespace


_SA = Path("/var/run/secrets/kubernetes.io/serviceaccount")


def _in_cluster() -> bool:
    import os

    return "KUBERNETES_SERVICE_HOST" in os.environ and (_SA / "token").exists()


def _in_cluster_namespace() -> str:
    try:
        return (_SA / "namespace").read_text().strip() or "default"
    except OSError:
        return "default"


def _api_error(exc: Exception, job: str, namespace: str) -> str:
    """One line for what the API or the connection to it said."""
    status = getattr(exc, "status", None)
    if status == 404:
        return f"job {namespace}/{job}: not found"
    if status in (401, 403):
        return f"job {namespace}/{job}: the API refused ({status} {getattr(exc, 'reason', '')})"
    if isinstance(status, int):
        return f"job {namespace}/{job}: the API answered {status} {getattr(exc, 'reason', '')}"
    return f"cannot reach the Kubernetes API: {one_line(str(exc))}"
