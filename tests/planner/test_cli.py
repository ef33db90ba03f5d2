"""`planner fit` and `planner report` from the command line, and their one-line errors."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from planner.cli import main


def run(*args: str):
    return CliRunner().invoke(main, list(args))


def test_fit_cisco_prints_and_writes_the_books_values(cisco_csv, tmp_path, book):
    out = tmp_path / "fit.json"
    result = run("fit", "--csv", str(cisco_csv), "--json", str(out))
    assert result.exit_code == 0, result.output
    assert "σ (contention) = 0.026715" in result.stdout
    assert "peak: n_peak = 35" in result.stdout
    data = json.loads(out.read_text())
    assert data["schema"] == "planner-fit/1"
    model = data["model"]
    for got, want in zip((model["sigma"], model["kappa"], model["lambda"]), book, strict=True):
        assert abs(got / want - 1) < 2e-4


def test_fit_one_point_explains(tmp_path):
    csv = tmp_path / "guide.csv"
    csv.write_text("pods,throughput\n3,5200\n")
    result = run("fit", "--csv", str(csv))
    assert result.exit_code == 0
    assert "σ and κ cannot be determined" in result.stdout
    assert "[few_points]" in result.stdout


def test_report_the_guides_point_gives_the_lower_bound(tmp_path):
    csv = tmp_path / "guide.csv"
    csv.write_text("pods,throughput\n3,5200\n")
    result = run("report", "--csv", str(csv), "--target-rate", "10k")
    assert result.exit_code == 0, result.output
    assert "cannot be determined" in result.stdout
    assert "Linear-scaling lower bound: 6 pods (a lower bound only)" in result.stdout


def test_report_writes_all_three_formats(make_sweep, tmp_path):
    sweep = make_sweep([1, 2, 3, 4, 6, 8], 0.04, 0.0015, 1800.0, noise=0.01, seed=4)
    outs = {ext: tmp_path / f"r.{ext}" for ext in ("json", "md", "html")}
    result = run(
        "report", str(sweep), "--target-rate", "10000", "--resamples", "50",
        "--json", str(outs["json"]), "--md", str(outs["md"]), "--html", str(outs["html"]),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("Pods required for 10,000/s: ")
    assert json.loads(outs["json"].read_text())["schema"] == "planner-report/1"
    assert outs["md"].read_text().startswith("# Capacity report")
    assert "data:image/png;base64," in outs["html"].read_text()


def _bad_sweep(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"schema": "planner-sweep/1", "target": "x", "slo": {}}))
    return path


@pytest.mark.parametrize(
    ("content", "args", "expected"),
    [
        (None, ["fit", "--csv", "{f}"], "{f}: no such file"),
        ("n,x\n1,2\n", ["fit", "--csv", "{f}"], "{f}: line 1: expected a header"),
        ("pods,throughput\n1,10\n2,abc\n", ["fit", "--csv", "{f}"], "{f}: line 3: throughput"),
        ("pods,throughput\n1,10\n-2,5\n", ["fit", "--csv", "{f}"], "{f}: line 3: pods -2"),
        (
            "pods,throughput\n1,-10\n",
            ["report", "--csv", "{f}", "--target-rate", "10k"],
            "{f}: line 2: throughput -10 is negative",
        ),
        (
            '{"schema": "planner-sweep/1", "target": "x", "slo": {}}',
            ["report", "{f}", "--target-rate", "10k"],
            "{f}: slo.p99_ms: missing",
        ),
        ("{not json", ["report", "{f}", "--target-rate", "10k"], "{f}: line 1: not valid JSON"),
        (None, ["report", "{f}", "--target-rate", "10k"], "{f}: no such file"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, content, args, expected):
    f = tmp_path / "input"
    if content is not None:
        f.write_text(content)
    result = run(*(a.format(f=f) for a in args))
    assert result.exit_code == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"planner {args[0]}: error: {expected.format(f=f)}"), lines[0]
    assert "Traceback" not in result.output


def test_unwritable_output_is_one_line(tmp_path, cisco_csv):
    result = run("fit", "--csv", str(cisco_csv), "--json", str(tmp_path / "no" / "such" / "f"))
    assert result.exit_code == 2
    assert result.stderr.startswith("planner fit: error: ") and "cannot write it" in result.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["report", "--target-rate", "10k"],  # nothing to report on
        ["report", "--csv", "x.csv", "--target-rate", "fast"],  # not a rate
        ["report", "--csv", "x.csv", "--target-rate", "10k", "--headroom", "0"],
        ["report", "--csv", "x.csv", "--target-rate", "10k", "--redundancy", "-1"],
    ],
)
def test_usage_errors_exit_2(args):
    result = run(*args)
    assert result.exit_code == 2
    assert "Traceback" not in result.output


def test_a_sweep_where_nothing_met_the_slo(tmp_path):
    step = {
        "offered_rps": 100.0, "achieved_rps": 50.0, "p50_ms": 10.0, "p95_ms": 900.0,
        "p99_ms": 1000.0, "errors": 0, "dropped": 0, "requests": 100, "duration_s": 10.0,
        "passed_slo": False,
    }  # fmt: skip
    sweep = {
        "schema": "planner-sweep/1", "target": "http://x", "version": "t",
        "slo": {"p99_ms": 100, "max_error_rate": 0.01},
        "started": "2025-01-01T00:00:00+00:00", "finished": None,
        "points": [{"pods": 1, "x_max": 50.0, "x_slo": None, "steps": [step]}],
    }  # fmt: skip
    path = tmp_path / "s.json"
    path.write_text(json.dumps(sweep))
    result = run("report", str(path), "--target-rate", "10k")
    assert result.exit_code == 2
    assert "no pod count met the SLO" in result.stderr
