"""The report: JSON schema planner-report/1, Markdown, and self-contained HTML with figures."""

from __future__ import annotations

import base64
import json
import re

from planner.capacity import plan
from planner.points import gather
from planner.render import render_html, render_markdown
from planner.report import REPORT_SCHEMA, report_dict, sources, to_json

FAST = {"resamples": 100, "seed": 0}


def _plan(measured, target, **kw):
    n, x = measured.capacity_series()
    nm, xm = measured.x_max_series()
    return plan(n, x, target, x_max=(nm, xm) if nm else None, notes=measured.caveats, **FAST, **kw)


def test_json_report_from_a_sweep(make_sweep):
    path = make_sweep([1, 2, 3, 4, 6, 8], 0.04, 0.0015, 1800.0, noise=0.01, seed=2)
    measured = gather([path], None)
    p = _plan(measured, 10_000)
    data = json.loads(to_json(report_dict(p, measured)))
    assert data["schema"] == REPORT_SCHEMA
    for key in (
        "sigma",
        "sigma_se",
        "kappa",
        "kappa_se",
        "lambda",
        "lambda_se",
        "n_peak",
        "x_peak",
    ):
        assert isinstance(data["model"][key], float | int), key
    req = data["pods_required"]
    assert set(req) >= {"point", "ci_low", "ci_high", "unreachable_fraction"}
    assert req["status"] == "reachable"
    assert req["ci_low"] <= req["point"] <= req["ci_high"]
    assert data["pods_recommended"] == data["pods_at_headroom"] + 1
    assert data["target_rate"] == 10_000
    assert data["x_max_fit"]["pods_required"]["point"] <= req["point"]  # x_max ≥ x_slo
    assert [m["pods"] for m in data["measurements"]] == [1, 2, 3, 4, 6, 8]
    assert isinstance(data["warnings"], list)


def test_unreachable_json_has_the_shortfall(make_sweep):
    path = make_sweep([1, 2, 3, 4, 6, 8], 0.12, 0.004, 1800.0)
    measured = gather([path], None)
    p = _plan(measured, 10_000)
    data = report_dict(p, measured)
    assert data["pods_required"]["status"] == "unreachable"
    assert data["pods_required"]["point"] is None
    assert data["pods_recommended"] is None
    short = data["shortfall"]
    assert short["rps"] == 10_000 - short["best_rps"] > 0
    assert "unreachable" in {w["code"] for w in data["warnings"]}


def test_sources_are_the_sweeps_in_order_then_the_csv_each_once(make_sweep, tmp_path):
    # the JSON's "sources" and the Markdown's "Built from" line both come from `sources`
    first = make_sweep([2, 4, 6], 0.04, 0.0015, 1800.0)
    second = make_sweep([1, 3], 0.04, 0.0015, 1800.0)
    csv = tmp_path / "elsewhere.csv"
    csv.write_text("pods,throughput\n1,1700\n8,9000\n")
    measured = gather([first, second], csv)
    assert sources(measured) == [str(first), str(second), str(csv)]


def test_single_point_report_explains_and_bounds(tmp_path):
    csv = tmp_path / "guide.csv"
    csv.write_text("pods,throughput\n3,5200\n")
    measured = gather([], csv)
    p = _plan(measured, 10_000)
    data = report_dict(p, measured)
    assert data["model"] is None
    assert data["pods_required"]["status"] == "undetermined"
    assert data["linear_lower_bound"] == 6
    assert "cannot be determined" in data["explanation"]
    md = render_markdown(p, measured)
    assert "Linear-scaling lower bound: 6 pods (a lower bound only)" in md
    assert "What to measure next" in md
    html = render_html(p, measured)
    assert html.count("data:image/png;base64,") == 1  # throughput figure; no steps, no latency


def test_html_is_self_contained_with_both_figures(make_sweep):
    path = make_sweep([1, 2, 3, 4, 6, 8], 0.04, 0.0015, 1800.0, noise=0.01, seed=2)
    measured = gather([path], None)
    html = render_html(_plan(measured, 10_000), measured)
    assert html.startswith("<!DOCTYPE html>")
    # nothing fetched: no external scripts, styles or images
    assert not re.search(r'<(script|link)\b|src="(?!data:)', html)
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    assert len(images) == 2
    for data in images:
        assert base64.b64decode(data).startswith(b"\x89PNG\r\n\x1a\n")
    for heading in ("Model", "Measurements", "Assumptions", "Confirmation run"):
        assert f"<h2>{heading}</h2>" in html


def test_markdown_sections_and_the_confirmation_plan(make_sweep):
    path = make_sweep([1, 2, 3, 4, 6, 8], 0.04, 0.0015, 1800.0, noise=0.01, seed=2)
    measured = gather([path], None)
    p = _plan(measured, 10_000)
    md = render_markdown(p, measured)
    rec = p.primary.pods_recommended
    assert md.startswith("# Capacity report: 10,000/s")
    assert f"Scale to the recommended {rec} pods" in md
    assert f"/admin/pods?n={rec}" in md  # the sweep's own scale command, filled in
    assert "| pods | capacity (x_slo)/s |" in md
    assert "## Assumptions" in md


def test_reachable_without_headroom_says_so_in_the_next_steps(cisco_csv):
    # Cisco peaks at 12,342/s: 10,000/s is reachable (16 pods), 10,000/0.7 is not.
    measured = gather([], cisco_csv)
    md = render_markdown(_plan(measured, 10_000, headroom=0.7), measured)
    assert "Pods recommended: none." in md
    assert "10,000/s is reachable at 16 pods, but not with each pod at most 70% busy" in md
    assert "beyond what the measured system can reach" not in md
