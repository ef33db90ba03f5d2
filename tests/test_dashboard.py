"""deploy/grafana-dashboard.json: valid JSON, every metric and label it queries documented in
docs/distributed.md's tables, every documented replay metric shown, the guide's target
queries beside them."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

ROOT = Path(__file__).parents[1]
DASHBOARD = ROOT / "deploy" / "grafana-dashboard.json"
DOC = ROOT / "docs" / "distributed.md"

FUNCTIONS = {"sum", "rate", "histogram_quantile", "by", "label_values"}
TARGET_LABELS = {"instance", "job"}  # Prometheus adds these to every scraped series
HISTOGRAM_SERIES = ("_bucket", "_sum", "_count")


def documented() -> dict[str, tuple[str, set[str]]]:
    """metric -> (type, labels) from the tables of the doc's 'Live metrics' section."""
    section = DOC.read_text().split("## Live metrics", 1)[1]
    out = {}
    for row in re.findall(r"^\| `([a-z_]+)` \| (\w+) \|([^|]*)\|", section, re.M):
        name, kind, labels = row
        out[name] = (kind, {label.strip() for label in labels.split(",") if label.strip()})
    return out


def queries(dashboard: dict[str, Any]) -> list[str]:
    exprs = []
    for panel in dashboard["panels"]:
        exprs += [t["expr"] for t in panel.get("targets", [])]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            exprs.append(variable["definition"])
    return exprs


def metrics_and_labels(expr: str) -> tuple[set[str], set[str]]:
    """The metric names and label names a PromQL expression uses."""
    text = re.sub(r'"[^"]*"', '""', expr)  # label values
    text = re.sub(r"\[[^\]]*\]", "", text)  # range selectors
    labels: set[str] = set()
    for matchers in re.findall(r"\{([^}]*)\}", text):
        labels |= set(re.findall(r"([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)", matchers))
    text = re.sub(r"\{[^}]*\}", "", text)
    for grouping in re.findall(r"\bby\s*\(([^)]*)\)", text):
        labels |= {label.strip() for label in grouping.split(",")}
    text = re.sub(r"\bby\s*\([^)]*\)", "", text)
    call = re.match(r"label_values\((\w+),\s*(\w+)\)", expr)
    if call:
        return {call.group(1)}, {call.group(2)}
    names = set(re.findall(r"[a-zA-Z_:][\w:]*", text)) - FUNCTIONS
    return names, labels


def base(metric: str, docs: dict[str, tuple[str, set[str]]]) -> tuple[str, bool]:
    """The documented metric a series name belongs to, and whether it is a bucket."""
    if metric in docs:
        return metric, False
    for suffix in HISTOGRAM_SERIES:
        stem = metric.removesuffix(suffix)
        if stem != metric and docs.get(stem, ("",))[0] == "histogram":
            return stem, suffix == "_bucket"
    raise AssertionError(f"{metric}: not in docs/distributed.md's metric tables")


def test_the_dashboard_is_json_of_grafana_panels() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] and dashboard["title"] and dashboard["schemaVersion"] >= 36
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        assert set(panel["gridPos"]) == {"h", "w", "x", "y"}
        assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24
        refs = [t["refId"] for t in panel.get("targets", [])]
        assert len(refs) == len(set(refs))


def test_every_metric_and_label_queried_is_documented() -> None:
    docs = documented()
    assert len(docs) == 9  # 7 of replay's, 2 of the target's
    dashboard = json.loads(DASHBOARD.read_text())
    shown = set()
    for expr in queries(dashboard):
        metrics, labels = metrics_and_labels(expr)
        assert metrics, expr
        allowed = set(TARGET_LABELS)
        for metric in metrics:
            name, bucket = base(metric, docs)
            shown.add(name)
            allowed |= docs[name][1] | ({"le"} if bucket else set())
        assert labels <= allowed, f"{expr}: labels {labels - allowed} not documented"
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            legend = set(re.findall(r"\{\{\s*(\w+)\s*\}\}", target["legendFormat"]))
            metrics, _ = metrics_and_labels(target["expr"])
            allowed = set(TARGET_LABELS).union(*(docs[base(m, docs)[0]][1] for m in metrics))
            assert legend <= allowed, target
    assert shown == set(docs)  # every documented metric is on the dashboard
    assert all("segment" in labels for name, (_, labels) in docs.items() if name.startswith("r"))


def test_the_guides_target_queries_are_beside_replays() -> None:
    exprs = queries(json.loads(DASHBOARD.read_text()))
    assert "rate(http_requests_total[1m])" in exprs
    assert "histogram_quantile(0.99, rate(http_request_duration_seconds_bucket[1m]))" in exprs
    # and one panel holds replay's and the target's p99 together
    dashboard = json.loads(DASHBOARD.read_text())
    together = [
        p
        for p in dashboard["panels"]
        if any("replay_request_duration_seconds_bucket" in t["expr"] for t in p.get("targets", []))
        and any("http_request_duration_seconds_bucket" in t["expr"] for t in p.get("targets", []))
    ]
    assert together


def test_the_promql_reader_finds_metrics_and_labels() -> None:
    expr = 'sum by (le, endpoint) (rate(replay_x_bucket{segment=~"a|b", status!~"2.."}[1m]))'
    assert metrics_and_labels(expr) == (
        {"replay_x_bucket"},
        {"le", "endpoint", "segment", "status"},
    )
    assert metrics_and_labels("label_values(replay_y, segment)") == ({"replay_y"}, {"segment"})
