"""capture fit and synth --like on a recording of a synthetic production unlike the guide's.

The production (tests/capture/production.py) is bursty (gamma gaps, CV 2), sends batches,
six observations per trace of three types, long prompts and other models; it is recorded as
a .gor file and imported, as a user would. The goals are the issue's: at the same rate, the
synthesised corpus matches endpoint shares within 2 points, body-size p50/p90/p99 within
10%, mean observations per trace within 5% and the inter-arrival CV within 10%; every
figure is computed by `capture inspect` on both corpora.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import production as prod
import pytest

from corpora import bundled_path


def capture(*args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-c", "from capture.cli import main; main()", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )
    return result


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    where = tmp_path_factory.mktemp("fit")
    gor = where / "production.gor"
    prod.write_gor(list(prod.requests(seed=21, rate=120, duration_s=30)), str(gor))
    out = where / "production.atc"
    done = capture("import", "goreplay", str(gor), "-o", str(out))
    assert done.returncode == 0, done.stderr
    return out


def _stats(path: Path) -> dict:
    return json.loads(capture("inspect", str(path), "--json").stdout)


def test_synth_like_meets_the_goals(recorded: Path, tmp_path: Path) -> None:
    profile = tmp_path / "profile.json"
    fitted = capture("fit", str(recorded), "-o", str(profile))
    assert fitted.returncode == 0, fitted.stderr
    want = _stats(recorded)
    synth = tmp_path / "like.atc"
    made = capture(
        "synth", "--like", str(profile), "--rate", repr(want["mean_rate"]),
        "--duration", f"{want['duration_s']}s", "--seed", "4", "-o", str(synth),
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    got = _stats(synth)
    for tag, count in want["endpoints"].items():
        share_want = 100 * count / want["records"]
        share_got = 100 * got["endpoints"].get(tag, 0) / got["records"]
        assert abs(share_got - share_want) <= 2, (tag, share_got, share_want)
    for q in ("p50", "p90", "p99"):
        assert abs(got["body_bytes"][q] / want["body_bytes"][q] - 1) <= 0.10, q
    obs_want = want["traffic"]["observations_per_trace"]
    assert obs_want > 5  # the production's, not the guide's 4.5
    assert abs(got["traffic"]["observations_per_trace"] / obs_want - 1) <= 0.05
    cv_want = want["traffic"]["interarrival_s"]["cv"]
    assert cv_want > 1.5  # bursty, unlike the guide's Poisson arrivals
    assert abs(got["traffic"]["interarrival_s"]["cv"] / cv_want - 1) <= 0.10
    assert abs(got["mean_rate"] / want["mean_rate"] - 1) <= 0.10


@pytest.mark.parametrize("source", ["production", "bundled mixed"])
def test_synth_like_keeps_the_arrivals_at_a_higher_rate(
    source: str, recorded: Path, tmp_path: Path
) -> None:
    """At 15 times the recording's rate (gaps of a fraction of a millisecond), the arrivals
    keep the recording's CV, and their times are not rounded to the millisecond. (The
    bundled mixed corpus has Poisson arrivals, CV 1.)"""
    source_path = recorded if source == "production" else Path(bundled_path("mixed"))
    profile = tmp_path / "profile.json"
    assert capture("fit", str(source_path), "-o", str(profile)).returncode == 0
    want = _stats(source_path)
    rate = 15 * want["mean_rate"]
    synth = tmp_path / "fast.atc"
    made = capture(
        "synth", "--like", str(profile), "--rate", repr(rate), "--duration", "4s",
        "--seed", "5", "-o", str(synth),
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    got = _stats(synth)
    assert abs(got["mean_rate"] / rate - 1) <= 0.10
    cv_want = want["traffic"]["interarrival_s"]["cv"]
    assert abs(got["traffic"]["interarrival_s"]["cv"] / cv_want - 1) <= 0.10
    times = [
        json.loads(line)["t_s"]
        for line in capture("dump", str(synth), "--jsonl").stdout.splitlines()
    ]
    assert len(times) == got["records"] > 1000
    on_the_grid = sum(1 for t in times if round(t * 1e9) % 1_000_000 == 0)
    assert on_the_grid <= len(times) // 100, f"{on_the_grid} of {len(times)} on whole ms"


def test_profile_holds_no_customer_text(recorded: Path, tmp_path: Path) -> None:
    profile = tmp_path / "profile.json"
    assert capture("fit", str(recorded), "-o", str(profile)).returncode == 0
    text = profile.read_text(encoding="utf-8")
    for word in ("zebra", "quartz", "Customer", "naïve", "naive", "x-ray", "alice", "日本語"):
        assert word not in json.dumps(json.loads(text), ensure_ascii=False), word
    doc = json.loads(text)
    assert set(doc["models"]) == set(prod.MODELS)
    assert set(doc["endpoints"]) == {"ingest", "batch", "list", "get", "search"}


def test_synth_like_bad_profile_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "p.json"
    bad.write_text('{"schema": "something-else"}')
    result = capture(
        "synth",
        "--like",
        str(bad),
        "--rate",
        "10",
        "--duration",
        "1s",
        "-o",
        str(tmp_path / "o.atc"),
    )
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "p.json" in result.stderr and "not a traffic profile" in result.stderr
    both = capture(
        "synth",
        "--like",
        str(bad),
        "--workload",
        "ingestion",
        "--rate",
        "1",
        "--duration",
        "1s",
        "-o",
        str(tmp_path / "o.atc"),
    )
    assert both.returncode == 2 and "exclude" in both.stderr


def test_fit_leaves_e_mail_addresses_out_of_the_models(tmp_path: Path) -> None:
    from capture.corpus import CorpusMeta, CorpusWriter, Record

    models = ["claude-3-5-sonnet@20240620", "alice.smith@corp.com", "gpt-4o"]
    recorded = tmp_path / "models.atc"
    meta = CorpusMeta("recorded", "har", "2026-01-01T00:00:00Z", None, {})
    with CorpusWriter(recorded, meta) as writer:
        for n in range(30):
            trace = {
                "id": f"{n:032x}",
                "observations": [
                    {"id": f"{n:08x}-0000-4000-8000-000000000000", "type": "GENERATION",
                     "model": models[n % 3]}
                ],
            }  # fmt: skip
            body = json.dumps(trace).encode()
            headers = (("Content-Type", "application/json"),)
            writer.write(
                Record(n * 10_000_000, "ingest", "POST", "/api/public/traces", headers, body)
            )
    profile = tmp_path / "profile.json"
    assert capture("fit", str(recorded), "-o", str(profile)).returncode == 0
    fitted = json.loads(profile.read_text())["models"]
    assert set(fitted) == {"claude-3-5-sonnet@20240620", "gpt-4o"}
    assert "alice" not in profile.read_text()
