"""Results and sweep files are data: a small file cannot make `replay merge` or `planner
report` build or inflate something huge, absurd values end in one line with exit 2, and
nothing read from them reaches a terminal or a Markdown report as control or markup."""

from __future__ import annotations

import base64
import json
import struct
import zlib
from pathlib import Path
from typing import Any

import pytest
from hostile import assert_one_line_error, invoke, run_command

MB = 1024 * 1024


def _write(tmp_path: Path, doc: dict[str, Any], name: str = "r.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(doc))
    return path


def test_a_timeline_second_far_past_the_run_is_refused(
    tmp_path: Path, results_doc: dict[str, Any]
) -> None:
    results_doc["timeline"][0]["t"] = 10**9  # every second from 0 to t would be built
    path = _write(tmp_path, results_doc)
    ran = run_command("replay", "merge", str(path), timeout=60)
    assert_one_line_error(ran, str(path), "timeline[0].t")
    assert ran.peak_rss_mb < 300


def test_a_timeline_that_skips_seconds_is_refused(
    tmp_path: Path, results_doc: dict[str, Any]
) -> None:
    second = json.loads(json.dumps(results_doc["timeline"][0]))
    second["t"], second["series"], second["requests"] = 5, [], 0
    results_doc["timeline"].append(second)
    ran = run_command("replay", "merge", str(_write(tmp_path, results_doc)))
    assert_one_line_error(ran, "timeline[1].t", "expected 1")


def _zlib_bomb(inflated: int) -> str:
    """An HdrHistogram V2 compressed string whose payload inflates to `inflated` zeros."""
    deflate = zlib.compressobj(9)
    parts = [deflate.compress(bytes(MB)) for _ in range(inflated // MB)]
    parts.append(deflate.flush())
    payload = b"".join(parts)
    return base64.b64encode(struct.pack(">ii", 0x1C849304, len(payload)) + payload).decode()


@pytest.mark.parametrize(
    ("inflated", "needle"),
    [(200 * MB, "inflates past"), (600 * MB, "characters (at most")],
    ids=["inflates too far", "too long to be replay's"],
)
def test_a_histogram_zlib_bomb_is_refused_before_inflating(
    tmp_path: Path, results_doc: dict[str, Any], inflated: int, needle: str
) -> None:
    bomb = _zlib_bomb(inflated)
    assert len(bomb) < 1 * MB  # small on disk
    results_doc["timeline"][0]["series"][0]["latency"] = bomb
    path = _write(tmp_path, results_doc)
    ran = run_command("replay", "merge", str(path), timeout=60)
    assert_one_line_error(ran, "timeline[0].series[0].latency", needle)
    assert ran.peak_rss_mb < 300, f"{ran.peak_rss_mb:.0f} MB"


def test_merge_prints_no_control_characters_from_a_file(
    tmp_path: Path, results_doc: dict[str, Any]
) -> None:
    results_doc["meta"]["target"] = "http://127.0.0.1:9\x1b]0;owned\x07\x1b[2J\r\n  ✓ forged"
    results_doc["meta"]["notes"] = ["note\x1b[31m red\u202e"]
    ran = run_command("replay", "merge", str(_write(tmp_path, results_doc)))
    assert ran.status == 0, ran.stderr
    printed = ran.stdout + ran.stderr
    assert not any((ord(c) < 0x20 and c != "\n") or 0x7F <= ord(c) < 0xA0 for c in printed)
    assert "\u202e" not in printed
    target_line = next(ln for ln in ran.stdout.splitlines() if "target:" in ln)
    assert "forged" in target_line  # kept as text, on the target's own line


def test_error_lines_show_file_data_escaped(tmp_path: Path, results_doc: dict[str, Any]) -> None:
    results_doc["thresholds"] = [{"threshold": "bogus\x1b[2J", "ok": True}]
    ran = run_command("replay", "merge", str(_write(tmp_path, results_doc)))
    line = assert_one_line_error(ran, "thresholds[0].threshold")
    assert "\x1b" not in line


# --- the planner ---------------------------------------------------------------------------


def _csv(tmp_path: Path, rows: list[tuple[object, object]]) -> Path:
    path = tmp_path / "points.csv"
    path.write_text("pods,throughput\n" + "".join(f"{n},{x}\n" for n, x in rows))
    return path


@pytest.mark.parametrize(
    ("rows", "needle"),
    [
        ([(1, 1e300), (2, 2e300), (3, 2.9e300), (4, 3.7e300)], "throughput"),
        ([(10**400, 100), (2, 190), (3, 270), (4, 340)], "pods"),
        ([(10**6, 100), (2, 190), (3, 270), (4, 340)], "pods"),
    ],
    ids=["rates 1e300", "pods 10^400", "pods 10^6"],
)
def test_planner_report_refuses_absurd_points(
    tmp_path: Path, rows: list[tuple[object, object]], needle: str
) -> None:
    path = _csv(tmp_path, rows)
    ran = invoke("planner", "report", "--csv", str(path), "--target-rate", "10k")
    line = assert_one_line_error(ran, str(path), "line 2", needle)
    assert len(line) < 300


def test_planner_report_refuses_an_absurd_target_rate(tmp_path: Path) -> None:
    path = _csv(tmp_path, [(1, 100), (2, 190), (3, 270), (4, 340)])
    ran = invoke("planner", "report", "--csv", str(path), "--target-rate", "1e300")
    assert_one_line_error(ran, "--target-rate")


def _sweep(tmp_path: Path, target: str, offered: float = 100.0, pods: int = 1) -> Path:
    step = {
        "offered_rps": offered,
        "achieved_rps": offered,
        "p50_ms": 1.0,
        "p95_ms": 2.0,
        "p99_ms": 3.0,
        "errors": 0,
        "dropped": 0,
        "requests": 600,
        "duration_s": 6.0,
        "passed_slo": True,
    }
    points = [
        {"pods": p * pods, "x_max": offered * p, "x_slo": offered * p,
         "steps": [{**step, "offered_rps": offered * p, "achieved_rps": offered * p}]}
        for p in (1, 2, 3, 4)
    ]  # fmt: skip
    doc = {
        "schema": "planner-sweep/1",
        "target": target,
        "slo": {"p99_ms": 100.0, "max_error_rate": 0.01, "min_achieved_ratio": 0.99},
        "started": "2026-01-01T00:00:00+00:00",
        "finished": "2026-01-01T01:00:00+00:00",
        "version": "test",
        "points": points,
    }
    path = tmp_path / "sweep.json"
    path.write_text(json.dumps(doc))
    return path


def test_planner_report_refuses_absurd_sweep_rates(tmp_path: Path) -> None:
    path = _sweep(tmp_path, "http://127.0.0.1:1", offered=1e300)
    ran = invoke("planner", "report", str(path), "--target-rate", "10k")
    assert_one_line_error(ran, str(path), "points[0]")


def test_markdown_report_escapes_html_from_a_sweep(tmp_path: Path) -> None:
    target = 'http://u:pw@127.0.0.1:1/<script>alert(1)</script><img src=x onerror="y">'
    path = _sweep(tmp_path, target)
    md = tmp_path / "report.md"
    ran = invoke(
        "planner", "report", str(path), "--target-rate", "300", "--md", str(md),
        "--resamples", "20",
    )  # fmt: skip
    assert ran.status == 0, ran.stderr
    text = md.read_text()
    assert "<script" not in text and "<img" not in text
    assert "&lt;script>alert(1)&lt;/script>" in text
    assert ":pw@" not in text
    assert "p99 < 100 ms" in text  # comparisons stay readable
