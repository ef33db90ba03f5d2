"""`replay report` as a user runs it: the three outputs, series that later results versions
add (hand-made here), merged inputs, and bad input as one line with exit status 2."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from replay.cli import main
from replay.histogram import encode_sparse, sparse_from_values
from replay.merge import merge_results
from replay.report import build_report
from replay.results import write_results
from replay.results_read import read_results

from .conftest import ROOT, replay_env
from .report_files import Second, make_results, write


class _Done:
    def __init__(self, returncode: int, stdout: str, stderr: str) -> None:
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


def _cli(*args: str) -> _Done:
    """`replay report ARGS` in this process (click's runner, standalone mode)."""
    result = CliRunner().invoke(main, ["report", *args], prog_name="replay")
    return _Done(result.exit_code, result.stdout, result.stderr)


def test_a_real_process_prints_one_line_and_exits_2(tmp_path: Path) -> None:
    bad = write(tmp_path / "bad.json", make_results([Second(5)] * 6),
                lambda d: d["timeline"][3].update(active_vus=True))  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-c", "from replay.cli import main; main(prog_name='replay')",
         "report", str(bad)],
        capture_output=True, text=True, timeout=120, env=replay_env(), cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines() == [
        f"replay report: error: {bad}: timeline[3].active_vus: expected a count "
        "(an integer >= 0), found True"
    ]


def _two_endpoints(t: int) -> list[Second]:
    return [
        Second(40, 8.0 + t % 3, errors={"503": 1} if t % 5 == 0 else {}, endpoint="ingest"),
        Second(10, 120.0, endpoint="search", dropped=1 if t == 7 else 0),
    ]


def test_html_markdown_and_json(tmp_path: Path) -> None:
    results = write(tmp_path / "r.json", make_results([_two_endpoints(t) for t in range(30)]))
    html, md, js = tmp_path / "r.html", tmp_path / "r.md", tmp_path / "r.report.json"
    done = _cli(str(results), "--html", str(html), "--md", str(md), "--json", str(js))
    assert done.returncode == 0, done.stderr
    assert "1,500 requests in 30.0 s" in done.stdout
    doc = json.loads(js.read_text())
    assert doc["schema"] == "replay-report/1"
    series = doc["series"]
    assert len(series["t"]) == 30
    assert series["achieved_rps"][0] == 50 and series["dropped"][7] == 1
    # second 0: 1 error of 50 requests, a 503
    assert series["errors_by_kind"]["503"][0] == pytest.approx(0.02)
    assert series["endpoints"]["search"]["p99_ms"][3] == pytest.approx(120.0, rel=1e-3)
    assert {v["name"]: v["status"] for v in doc["verdicts"]} == {
        "ingestion p99 latency": "met",
        "query p99 latency": "met",
        "ingestion throughput": "missed",
        "error rate": "met",  # 6 errors of 1,500: 0.4%
    }
    text = html.read_text()
    images = re.findall(r'<img alt="([^"]+)" src="data:image/png;base64,', text)
    assert images == [
        "Offered and achieved rate",
        "Latency from intended time and uncorrected",
        "Error rate by kind",
        "Dropped, send lag, in flight and active VUs",
        "Per endpoint",
        "Drift",  # three 10 s windows
    ]
    # nothing to fetch: no external reference of any kind
    assert not re.search(r"(src|href)\s*=\s*[\"'](?!data:)", text)
    assert "<script" not in text and "@import" not in text and "url(" not in text
    assert "| phase | start s |" in md.read_text()


def _with_later_keys(doc: dict[str, Any]) -> None:
    """The keys other versions of replay will write, in the shapes docs/report.md gives."""
    lag = encode_sparse(sparse_from_values([250_000] * 3))
    for entry in doc["timeline"]:
        t = entry["t"]
        entry["active_vus"] = 10 + t
        entry["scenarios"] = {
            "ingest": {"offered": 30, "requests": 30, "errors": 0, "dropped": 0,
                       "active_vus": 6, "p50_ms": 9.0, "p99_ms": 11.0 + t},
            "browse": {"requests": 20, "active_vus": 4 + t,
                       "series": [{"latency": encode_sparse(sparse_from_values([40_000] * 20))}]},
        }  # fmt: skip
        entry["visibility_lag_ms"] = {"count": 3, "timeouts": 1 if t == 4 else 0,
                                      "histogram": lag}  # fmt: skip
    doc["scrape"] = [
        {"url": "http://127.0.0.1:9/metrics", "metric": "process_resident_memory_bytes",
         "labels": {"pod": "api-0"},
         "samples": [[10.0 * i, 100e6 + 0.01e6 * 10 * i] for i in range(4)]},
        {"url": "http://127.0.0.1:9/metrics", "metric": "process_cpu_seconds_total",
         "samples": [[10.0 * i, 2.5 * i] for i in range(4)]},
    ]  # fmt: skip


def test_series_that_later_results_add_are_read_and_plotted(tmp_path: Path) -> None:
    doc = make_results([Second(50, 10.0) for _ in range(30)])
    results = write(tmp_path / "r.json", doc, _with_later_keys)
    report = build_report([str(results)])
    out = report.document
    s = out["series"]
    assert s["active_vus"][:3] == [10, 11, 12]
    assert s["scenarios"]["ingest"]["p99_ms"][5] == 16.0
    assert s["scenarios"]["browse"]["active_vus"][2] == 6
    assert s["scenarios"]["browse"]["p99_ms"][0] == pytest.approx(40.0, rel=1e-3)
    assert s["visibility_lag_ms"]["timeouts"][4] == 1
    assert out["visibility_lag_ms"]["count"] == 90 and out["visibility_lag_ms"]["timeouts"] == 1
    assert out["visibility_lag_ms"]["p50_ms"] == pytest.approx(250.0, rel=1e-3)
    memory = out["scrape"]["memory"][0]
    # 0.01 MB a second is 36 MB an hour, on a perfect line
    assert memory["mb_per_hour"]["estimate"] == pytest.approx(36.0)
    assert memory["leak_suspected"] is True
    vus = {v["name"]: v for v in out["verdicts"]}["concurrent users"]
    assert vus["value"] == 39 and vus["status"] == "missed"
    assert not any("not in these results" in n for n in out["notes"])
    from replay.report_plots import figures

    titles = [title for title, _ in figures(report)]
    for title in ("Per scenario", "Ingest-to-visible lag", "Target metrics"):
        assert title in titles


def test_without_later_keys_the_report_says_what_is_missing(tmp_path: Path) -> None:
    doc = build_report([str(write(tmp_path / "r.json", make_results([Second(5)] * 5)))]).document
    missing = [n.split(":")[0] for n in doc["notes"] if "not in these results" in n]
    assert missing == [
        "active VUs",
        "per-scenario series",
        "ingest-to-visible lag",
        "target metrics",
    ]


def test_several_files_add_up_as_replay_merge_adds_them(tmp_path: Path) -> None:
    a = make_results([Second(20, 5.0 + t) for t in range(12)])
    b = make_results([Second(30, 50.0) for _ in range(10)])
    pa, pb = write(tmp_path / "a.json", a), write(tmp_path / "b.json", b)
    merged_path = tmp_path / "m.json"
    write_results(merged_path, merge_results([read_results(pa), read_results(pb)]))
    both = build_report([str(pa), str(pb)]).document
    one = build_report([str(merged_path)]).document
    assert both["series"]["achieved_rps"][:3] == [50, 50, 50]
    assert both["series"]["achieved_rps"][11] == 20
    for key in ("p50_ms", "p99_ms", "p99_uncorrected_ms", "offered_rps", "error_rate"):
        assert both["series"][key] == one["series"][key]
    assert both["phases"][0]["p99_ms"] == one["phases"][0]["p99_ms"]
    assert both["totals"]["requests"] == 20 * 12 + 30 * 10


@pytest.mark.parametrize(
    ("edit", "says"),
    [
        (lambda d: d["timeline"][3].update(active_vus=-1),
         "timeline[3].active_vus: expected a count"),
        (lambda d: d["timeline"][1].update(scenarios=[1]),
         "timeline[1].scenarios: expected an object"),
        (lambda d: d["timeline"][2].update(visibility_lag_ms={"histogram": "nope"}),
         "timeline[2].visibility_lag_ms.histogram: not an HdrHistogram encoding"),
        (lambda d: d.update(scrape=[{"url": "u", "metric": "m", "samples": [[1, "x"]]}]),
         "scrape[0].samples[0]: expected [t_s, value]"),
        (lambda d: d["timeline"][4]["series"][0].update(latency="HISTFAAAA"),
         "timeline[4].series[0].latency: not an HdrHistogram encoding"),
    ],
)  # fmt: skip
def test_bad_keys_are_one_line_naming_file_and_key(tmp_path: Path, edit: Any, says: str) -> None:
    path = write(tmp_path / "bad.json", make_results([Second(5)] * 6), edit)
    done = _cli(str(path))
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr
    assert lines[0].startswith(f"replay report: error: {path}: ")
    assert says in lines[0]


def test_bad_files_and_options(tmp_path: Path) -> None:
    missing = _cli(str(tmp_path / "none.json"))
    assert missing.returncode == 2 and "no such file" in missing.stderr
    (tmp_path / "x.json").write_text("{not json")
    assert "not JSON" in _cli(str(tmp_path / "x.json")).stderr
    good = write(tmp_path / "g.json", make_results([Second(5)] * 6))
    phases = _cli(str(good), "--phases", "spike=9-3")
    assert phases.returncode == 2
    assert phases.stderr.strip() == (
        "replay report: error: --phases: 'spike=9-3': the phase must end after it starts"
    )
    nowhere = _cli(str(good), "--html", str(tmp_path / "no" / "r.html"))
    assert nowhere.returncode == 2 and "does not exist" in nowhere.stderr


def test_the_json_keeps_a_column_per_line(tmp_path: Path) -> None:
    good = write(tmp_path / "g.json", make_results([Second(5, 3.0)] * 6))
    out = tmp_path / "g.report.json"
    assert _cli(str(good), "--json", str(out)).returncode == 0
    lines = out.read_text().splitlines()
    assert any(line.startswith('    "p99_ms": [') for line in lines)
    assert json.loads(out.read_text())["series"]["p99_ms"] == [pytest.approx(3.0, rel=1e-3)] * 6
    assert np.isfinite(json.loads(out.read_text())["phases"][0]["p99_ms"])


def test_an_api_key_on_the_command_line_never_reaches_the_report(tmp_path: Path) -> None:
    cmd = "replay run --target http://127.0.0.1:1 --api-key sk-secret-1 --rate 5 ; " \
        "replay run --api-key=sk-secret-2 --rate 5"  # fmt: skip
    results = write(tmp_path / "r.json", make_results([Second(5)] * 5, command_line=cmd))
    html, md, js = tmp_path / "r.html", tmp_path / "r.md", tmp_path / "r.report.json"
    done = _cli(str(results), "--html", str(html), "--md", str(md), "--json", str(js))
    assert done.returncode == 0, done.stderr
    for path in (html, md, js):
        assert "sk-secret" not in path.read_text()
    assert "sk-secret" not in done.stdout
    run = json.loads(js.read_text())["run"]
    assert run["command_line"] == (
        "replay run --target http://127.0.0.1:1 --api-key '***' --rate 5 ; "
        "replay run '--api-key=***' --rate 5"
    )
