"""`replay run --out -` prints one results document on stdout and nothing else (a pod's log
carries it to `replay k8s collect`); `replay run` lifts the open-files soft limit to the hard
one and says when the hard one is too low for --max-inflight."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
from collections.abc import Callable
from typing import Any

from replay.k8s_collect import results_from_log
from replay.open_files import RESERVE
from replay.results_read import validate_results
from tests.replay.conftest import ROOT, replay_env


def test_out_dash_prints_the_results_alone_on_stdout(
    replay: Callable[..., Any], synth_corpus: Callable[..., Any], tiny_server: Callable[..., str]
) -> None:
    url = tiny_server()
    done = replay(
        str(synth_corpus()), "--target", url, "--rate", "100", "--duration", "1s",
        "--workers", "1", "--out", "-",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    results = json.loads(done.stdout)  # stdout is exactly one JSON document
    validate_results(results, "stdout")
    assert results["totals"]["offered"] == 100  # 100/s for 1 s
    assert results["totals"]["requests"] == 100
    assert "http_req_duration" in done.stderr  # the summary went to stderr
    # As a pod's log mixes them, collect finds the document between stderr lines
    assert results_from_log(done.stderr + done.stdout + done.stderr, "pod") == results


def test_out_dash_prints_nothing_when_the_run_cannot_start(replay: Callable[..., Any]) -> None:
    done = replay("ingestion", "--target", "http://127.0.0.1:1", "--duration", "1s", "--out", "-")
    assert done.returncode == 2
    assert done.stdout == ""
    assert len(done.stderr.strip().splitlines()) == 1


def _limits_after_run(soft: int, hard: int, max_inflight: int) -> tuple[str, str]:
    """Run ``raise_open_files`` in a child whose limits start at (soft, hard)."""
    code = (
        "import resource, sys\n"
        "from replay.open_files import warn_open_files\n"
        f"resource.setrlimit(resource.RLIMIT_NOFILE, ({soft}, {hard}))\n"
        f"warn_open_files({max_inflight})\n"
        "print(*resource.getrlimit(resource.RLIMIT_NOFILE))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        env=replay_env(),
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip(), done.stderr


def test_the_soft_limit_is_raised_to_the_hard_one() -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard < 1024 + 1:
        hard = 1024 + 1  # lowering the hard limit is allowed to anyone
    limits, warning = _limits_after_run(256, hard, hard - RESERVE)
    assert limits == f"{hard} {hard}"
    assert warning == ""


def test_a_hard_limit_too_low_for_max_inflight_is_said() -> None:
    limits, warning = _limits_after_run(256, 512, 5000)
    assert limits == "512 512"
    assert warning.startswith("replay run: warning: the open-files limit is 512 (hard limit 512)")
    assert f"--max-inflight 5,000 needs about {5000 + RESERVE:,}" in warning
    assert len(warning.strip().splitlines()) == 1
