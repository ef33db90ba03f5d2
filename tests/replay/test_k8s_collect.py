"""`replay k8s collect` against a fake Kubernetes API on loopback (tests/replay/fake_kube.py).

The official client makes its real REST calls (read the Job, list its pods by label, read
each pod's log); the pods are the ones the manifest's pod template describes, and their
logs hold what a segment prints: progress on stderr, the results document on stdout, the
summary on stderr. The segments' results are built from known latencies, so the merged
figures are checked against an independent histogram (hdrh) of every value.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from click.testing import CliRunner
from hdrh.histogram import HdrHistogram

from replay.aggregate import RunAggregate
from replay.cli import main as replay_main
from replay.k8s_collect import results_from_log, wait_for_job
from replay.k8s_manifest import JobSpec, build_job
from replay.merge import merge_results
from replay.recorder import IntervalRecorder
from replay.results import ResultsError, RunMeta, build_results, dumps_results
from replay.summary import render_summary
from replay.thresholds import evaluate, parse_threshold
from tests.replay.fake_kube import FakeCluster, FakePod, kubeconfig, serve

NS = "load"
JOB = "replay-20261129-050000"
US = 1000  # ns
P99 = parse_threshold("http_req_duration: p(99)<50")  # milliseconds


def job(k: int) -> dict[str, Any]:
    spec = JobSpec(
        name=JOB,
        image="registry.example/agenttrace-replay:0.1",
        segments=k,
        run_args=("ingestion", "--rate", "9000"),
        start_at=datetime(2026, 11, 29, 5, 0, tzinfo=UTC),
        namespace=NS,
    )
    return build_job(spec)


def segment_results(index: int, k: int, latencies_us: Sequence[int]) -> dict[str, Any]:
    """A segment's results document: one request per latency, spread over 3 seconds."""
    recorder = IntervalRecorder(0)
    aggregate = RunAggregate()
    for second in range(3):
        for i, latency in enumerate(latencies_us):
            if i % 3 == second:
                intended = second * 10**9
                recorder.offered()
                recorder.record(
                    "ingest", "202", intended, intended + 5 * US, intended + latency * US
                )
        aggregate.add(recorder.flush(second, inflight=1))
    aggregate.set_duration(3.0)
    meta = RunMeta(
        corpus="ingestion",
        target="http://agenttrace.load.svc:8080",
        model="rate",
        rate=9000.0,
        workers=2,
        started=f"2026-11-29T05:00:00.00{index}Z",
        ended="2026-11-29T05:00:03.000Z",
        host_cores=2,
        command_line=f"replay run ingestion --rate 9000 --segments {k} --out -",
    )
    doc = build_results(aggregate, meta, evaluate([P99], aggregate))
    result: dict[str, Any] = json.loads(dumps_results(doc))
    return result


def pod_log(results: dict[str, Any]) -> str:
    """What `kubectl logs` shows for a segment: stderr and stdout in one stream."""
    return (
        "replay loading: 1,000 of 1,000 records read\n"
        "  0.0s  offered 0/s\n  1.0s  offered 3,000/s  achieved 3,000/s\n"
        + dumps_results(results)
        + render_summary(results)
    )


FAST = [10_000] * 100  # 100 requests at 10 ms
ONE_PERCENT_SLOW = [10_000] * 98 + [200_000] * 2  # p99 200 ms: fails p(99)<50 alone


@pytest.fixture
def cluster_at(tmp_path: Path) -> Iterator[Any]:
    """cluster_at(cluster) -> (kubeconfig path) with the fake API serving ``cluster``."""
    stack: list[Any] = []

    def start(cluster: FakeCluster) -> Path:
        context = serve(cluster)
        url = context.__enter__()
        stack.append(context)
        return kubeconfig(tmp_path / "kubeconfig", url, NS)

    yield start
    for context in stack:
        context.__exit__(None, None, None)


def collect(config: Path, *args: str) -> Any:
    return CliRunner().invoke(
        replay_main, ["k8s", "collect", "--kubeconfig", str(config), "--job", JOB, *args]
    )


def hdr_p99_ms(values_us: Sequence[int]) -> float:
    reference = HdrHistogram(1, 3_600_000_000, 3)
    for v in values_us:
        reference.record_value(v)
    return float(reference.get_value_at_percentile(99)) / 1000


def test_collect_merges_every_segment_exactly_and_judges_over_all(
    cluster_at: Any, tmp_path: Path
) -> None:
    lat = [FAST, ONE_PERCENT_SLOW, FAST]
    docs = [segment_results(i, 3, lat[i]) for i in range(3)]
    # segment 1 alone fails p(99)<50; over all 300 requests p99 is 10 ms
    assert [d["thresholds"][0]["ok"] for d in docs] == [True, False, True]
    cluster = FakeCluster(
        NS, job(3), [FakePod(i, "Succeeded", pod_log(docs[i])) for i in (2, 0, 1)]
    )
    config = cluster_at(cluster)
    out = tmp_path / "merged.json"
    result = collect(config, "-o", str(out))
    assert result.exit_code == 0, result.output + result.stderr
    merged = json.loads(out.read_text())

    names = [f"segment {i}/3 (pod {JOB}-{i}-x{i:04d})" for i in range(3)]
    assert merged == json.loads(dumps_results(merge_results(docs, names)))
    everything = [v for values in lat for v in values]
    assert merged["totals"]["requests"] == merged["latency_ms"]["count"] == 300
    assert merged["latency_ms"]["p99"] == hdr_p99_ms(everything) == pytest.approx(10.0, rel=1e-3)
    assert merged["thresholds"] == [{**merged["thresholds"][0], "threshold": str(P99), "ok": True}]
    assert "10.0" in result.output or "10 ms" in result.output  # the summary on stdout
    # The client's REST calls: the Job, its pods by the Job controller's label, each log
    paths = cluster.requests
    assert paths[0] == f"/apis/batch/v1/namespaces/{NS}/jobs/{JOB}"
    assert paths[1].startswith(f"/api/v1/namespaces/{NS}/pods?")
    query = parse_qs(urlsplit(paths[1]).query)
    assert query["labelSelector"] == [f"batch.kubernetes.io/job-name={JOB}"]
    assert sorted(p.split("?")[0] for p in paths[2:]) == [
        f"/api/v1/namespaces/{NS}/pods/{JOB}-{i}-x{i:04d}/log" for i in range(3)
    ]
    assert all("container=replay" in p for p in paths[2:])


def test_a_threshold_failed_over_all_segments_exits_99(cluster_at: Any, tmp_path: Path) -> None:
    docs = [segment_results(i, 2, ONE_PERCENT_SLOW) for i in range(2)]
    config = cluster_at(
        FakeCluster(NS, job(2), [FakePod(i, "Succeeded", pod_log(docs[i])) for i in range(2)])
    )
    out = tmp_path / "merged.json"
    result = collect(config, "-o", str(out))
    assert result.exit_code == 99, result.output + result.stderr
    merged = json.loads(out.read_text())
    assert (
        merged["latency_ms"]["p99"]
        == hdr_p99_ms(ONE_PERCENT_SLOW * 2)
        == pytest.approx(200.0, rel=1e-3)
    )
    assert merged["thresholds"][0]["ok"] is False


def test_missing_and_failed_segments_are_named_and_fail_the_run(
    cluster_at: Any, tmp_path: Path
) -> None:
    ok = segment_results(0, 4, FAST)
    partial = segment_results(1, 4, FAST[:40])
    pods = [
        FakePod(0, "Succeeded", pod_log(ok)),
        FakePod(1, "Failed", pod_log(partial) + "replay: worker 0 died\n", exit_code=1),
        FakePod(2, "Running", "replay loading: 10 of 1,000 records read\n"),
        # index 3 has no pod at all
    ]
    config = cluster_at(FakeCluster(NS, job(4), pods))
    out = tmp_path / "merged.json"
    result = collect(config, "-o", str(out))
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert lines == [
        f"replay k8s collect: segment 1/4 (pod {JOB}-1-x0001): failed (exit status 1); "
        "its partial results are merged",
        f"replay k8s collect: segment 2/4 (pod {JOB}-2-x0002): missing, the pod is Running",
        "replay k8s collect: segment 3/4: missing, no pod (deleted, or never created)",
    ]
    merged = json.loads(out.read_text())
    assert merged["totals"]["requests"] == 100 + 40
    assert "incomplete: 2 of 4 segments merged" in " ".join(merged["meta"]["notes"])


def test_a_log_cut_short_is_a_missing_segment(cluster_at: Any) -> None:
    docs = [segment_results(i, 2, FAST) for i in range(2)]
    cut = pod_log(docs[1])[:-2000]
    config = cluster_at(
        FakeCluster(
            NS, job(2), [FakePod(0, "Succeeded", pod_log(docs[0])), FakePod(1, "Succeeded", cut)]
        )
    )
    result = collect(config)
    assert result.exit_code == 1
    assert f"segment 1/2 (pod {JOB}-1-x0001): its results are cut short" in result.stderr


def test_results_claiming_another_segment_are_refused(cluster_at: Any) -> None:
    docs = [segment_results(i, 2, FAST) for i in range(2)]
    docs[1]["meta"]["segment"] = "0/2"  # a copy of segment 0's output, say
    config = cluster_at(
        FakeCluster(NS, job(2), [FakePod(i, "Succeeded", pod_log(docs[i])) for i in range(2)])
    )
    result = collect(config)
    assert result.exit_code == 1
    assert "its results are of segment 0/2, expected 1/2" in result.stderr


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("no such job", f"job {NS}/{JOB}: not found"),
        ("not indexed", f"job {NS}/{JOB}: not an Indexed Job"),
        ("no results", "no segment's results to merge"),
    ],
)
def test_what_cannot_be_collected_is_one_line_and_status_2(
    cluster_at: Any, change: str, message: str
) -> None:
    the_job = job(2)
    pods = [FakePod(i, "Succeeded", pod_log(segment_results(i, 2, FAST))) for i in range(2)]
    if change == "no such job":
        the_job["metadata"]["name"] = "another"
    elif change == "not indexed":
        the_job["spec"]["completionMode"] = "NonIndexed"
    else:
        pods = [FakePod(i, "Pending") for i in range(2)]
    result = collect(cluster_at(FakeCluster(NS, the_job, pods)))
    assert result.exit_code == 2
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.output + result.stderr


def test_an_unreachable_api_is_one_line(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:  # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = kubeconfig(tmp_path / "kubeconfig", f"http://127.0.0.1:{port}", NS)
    result = collect(config)
    assert result.exit_code == 2
    assert result.stderr.startswith("replay k8s collect: error: cannot reach the Kubernetes API")
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "text", ["apiVersion: v1\nkind: Config\nclusters: []\n", "clusters: [\n  - {name: \n"]
)
def test_a_bad_kubeconfig_is_one_line(tmp_path: Path, text: str) -> None:
    config = tmp_path / "kubeconfig"
    config.write_text(text)
    result = collect(config)
    assert result.exit_code == 2
    assert str(config) in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_results_are_found_between_stderr_lines() -> None:
    doc = segment_results(0, 1, FAST)
    assert results_from_log(pod_log(doc), "pod a") == doc
    # a second document later in the log (a log holding two attempts) wins
    later = segment_results(0, 1, FAST[:10])
    assert results_from_log(pod_log(doc) + pod_log(later), "pod a") == later
    with pytest.raises(ResultsError, match="pod a: no results in its log"):
        results_from_log("replay run: error: --rate: 'x' is not a rate\n", "pod a")


def test_wait_polls_the_job_until_it_completes(cluster_at: Any, tmp_path: Path) -> None:
    from kubernetes import client, config

    docs = [segment_results(i, 2, FAST) for i in range(2)]
    cluster = FakeCluster(
        NS,
        job(2),
        [FakePod(i, "Running") for i in range(2)],
        finish_at_read=3,
        finished=[FakePod(i, "Succeeded", pod_log(docs[i])) for i in range(2)],
    )
    path = cluster_at(cluster)
    api = config.new_client_from_config(config_file=str(path))
    batch = client.BatchV1Api(api)
    assert wait_for_job(batch, JOB, NS, 60, poll_s=0.01) == "Complete"
    assert cluster.job_reads == 3  # two polls while running, the third saw it complete
    result = collect(path, "--wait", "1m", "-o", str(tmp_path / "m.json"))
    assert result.exit_code == 0, result.stderr
    assert json.loads((tmp_path / "m.json").read_text())["totals"]["requests"] == 200


def test_wait_gives_up_and_names_what_is_still_running(cluster_at: Any) -> None:
    docs = [segment_results(i, 2, FAST) for i in range(2)]
    pods = [FakePod(0, "Succeeded", pod_log(docs[0])), FakePod(1, "Running")]
    result = collect(cluster_at(FakeCluster(NS, job(2), pods)), "--wait", "0.3s")
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"replay k8s collect: job {NS}/{JOB} still running after --wait; "
        "collecting what has finished",
        f"replay k8s collect: segment 1/2 (pod {JOB}-1-x0001): missing, the pod is Running",
    ]


def test_of_two_pods_for_one_index_the_succeeded_one_counts(cluster_at: Any) -> None:
    docs = [segment_results(i, 2, FAST) for i in range(2)]
    pods = [
        FakePod(0, "Succeeded", pod_log(docs[0])),
        FakePod(1, "Failed", "killed\n", exit_code=137, reason="OOMKilled", name="first"),
        FakePod(1, "Succeeded", pod_log(docs[1]), created="2026-11-29T04:59:00Z"),
    ]
    result = collect(cluster_at(FakeCluster(NS, job(2), pods)))
    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""
