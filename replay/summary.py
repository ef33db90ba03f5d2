"""What a person reads: the k6-like end-of-run summary and the once-a-second progress line.

``render_summary(results)`` works from a ``replay-results/1`` document alone, so a run, a
results file and a merge of several all print the same way. It shows the thresholds (✓ held,
✗ failed, with the worst window for windowed ones), the latency trends from the intended send
time (``http_req_duration``, corrected for coordinated omission), from the actual send
(``http_req_duration_uncorrected``) and the ``send_lag`` between them, per endpoint, the
failure rate, request and drop counts with rates, errors by kind, and - when
``load_generator.limited`` is set (requests were dropped, or the send lag p99 exceeded
``results.SEND_LAG_LIMIT_MS``) - the sentence that the load generator, not the target, was
the limit, with the reasons.

``render_progress(snapshot, total_s, tty)`` returns one line without ``\\r`` or a newline;
the caller writes it ``\\r``-updated on a terminal and as plain lines otherwise. On a terminal
it starts with a progress bar; plain lines start with the elapsed time so logs read well.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from capture.termsafe import printable_tree
from replay.aggregate import ProgressSnapshot
from replay.redact import redact_command_line, redact_url
from replay.thresholds import TREND, parse_threshold

_WIDTH = 38  # k6's dotted name column, indent included


def format_ms(ms: float | None) -> str:
    """850µs, 1.23ms, 12.3ms, 312ms, 1.23s, 2m05s; '-' for no value."""
    if ms is None:
        return "-"
    if ms < 1:
        return f"{ms * 1000:.0f}µs"
    if ms < 10:
        return f"{ms:.2f}ms"
    if ms < 100:
        return f"{ms:.1f}ms"
    if ms < 1000:
        return f"{ms:.0f}ms"
    if ms < 60_000:
        return f"{ms / 1000:.2f}s"
    seconds = int(ms // 1000)
    return f"{seconds // 60}m{seconds % 60:02d}s"


def _seconds(s: float) -> str:
    if s < 60:
        return f"{s:.0f}s" if s == int(s) else f"{s:.1f}s"
    if s < 3600:
        return f"{int(s // 60)}m{int(s % 60):02d}s"
    return f"{int(s // 3600)}h{int(s % 3600 // 60):02d}m"


def _pct(x: float) -> str:
    return f"{x:.2%}"


def _row(name: str, value: str, indent: str = "    ") -> str:
    dots = "." * max(_WIDTH - len(indent) - len(name), 2)
    return f"{indent}{name}{dots}: {value}"


def _trend(block: Mapping[str, Any]) -> str:
    if not block.get("count"):
        return "no requests"
    parts = [
        f"avg={format_ms(block['mean'])}",
        f"min={format_ms(block['min'])}",
        f"med={format_ms(block['p50'])}",
        f"max={format_ms(block['max'])}",
        f"p(90)={format_ms(block['p90'])}",
        f"p(95)={format_ms(block['p95'])}",
        f"p(99)={format_ms(block['p99'])}",
        f"p(99.9)={format_ms(block['p999'])}",
    ]
    if block.get("clamped"):
        parts.append(f"({block['clamped']:,} clamped at 1h)")
    return " ".join(parts)


def format_value(threshold_text: str, value: float | None) -> str:
    """A verdict's value in its metric's unit: ms for latencies, % for failure rates..."""
    if value is None:
        return "no data"
    try:
        t = parse_threshold(threshold_text)
    except ValueError:
        return f"{value:g}"
    name = t.aggregation_name
    if t.aggregation == "count":
        return f"{name}={value:,.0f}"
    if t.metric in TREND:
        return f"{name}={format_ms(value)}"
    if t.metric == "http_reqs":
        return f"{name}={value:,.1f}/s"
    return f"{name}={_pct(value)}"


def _verdict_line(v: Mapping[str, Any]) -> str:
    mark = "✓" if v.get("ok") else "✗"
    text = str(v.get("threshold", "?"))
    shown = format_value(text, v.get("value"))
    window = v.get("window")
    detail = []
    if window and v.get("windows"):
        worst = f"worst window {_seconds(window[0])}-{_seconds(window[1])}"
        detail.append(f"{worst}, {v.get('failed_windows', 0)} of {v['windows']} windows failed")
    if v.get("note") and v.get("note") != "no data":
        detail.append(str(v["note"]))
    tail = f" ({'; '.join(detail)})" if detail else ""
    return f"    {mark} {text} {'.' * max(2, 56 - len(text))} {shown}{tail}"


def _header(results: Mapping[str, Any]) -> list[str]:
    meta, totals = results["meta"], results["totals"]
    model = [f"model {meta.get('model') or '?'}"]
    if meta.get("scale") not in (None, 1, 1.0):
        model.append(f"scale {meta['scale']:g}x")
    if meta.get("speed") not in (None, 1, 1.0):
        model.append(f"speed {meta['speed']:g}x")
    if meta.get("rate") is not None:
        model.append(f"rate {meta['rate']:g}/s")
    cores = meta.get("host_cores")
    where = f"{meta.get('workers', '?')} workers" + (f" on {cores} cores" if cores else "")
    lines = [
        f"  corpus: {meta.get('corpus') or '-'} · {', '.join(model)} · {where}",
        f"  target: {meta.get('target') or '-'}",
    ]
    if meta.get("started"):
        lines.append(
            f"    time: {meta['started']} -> {meta.get('ended') or '?'} "
            f"({_seconds(float(totals['duration_s']))})"
        )
    return lines


def _printable(results: Mapping[str, Any]) -> dict[str, Any]:
    """What may be printed of a results document, which may come from anybody's file: no
    control characters in any string, no credentials in the target or command line."""
    shown: dict[str, Any] = printable_tree(results, frozenset({"timeline", "histograms"}))
    meta = shown.get("meta")
    if isinstance(meta, dict):
        if isinstance(meta.get("target"), str):
            meta["target"] = redact_url(meta["target"])
        if isinstance(meta.get("command_line"), str):
            meta["command_line"] = redact_command_line(meta["command_line"])
    return shown


def render_summary(results: Mapping[str, Any]) -> str:
    """The end-of-run text for stdout, k6's layout (see the module docstring)."""
    results = _printable(results)
    totals = results["totals"]
    lines = ["", *_header(results), ""]
    verdicts = results.get("thresholds") or []
    if verdicts:
        failed = sum(1 for v in verdicts if not v.get("ok"))
        state = f"{failed} of {len(verdicts)} failed" if failed else "all passed"
        lines += [f"  THRESHOLDS ({state})", ""]
        lines += [_verdict_line(v) for v in verdicts]
        lines.append("")
    lines += ["  TOTAL RESULTS", ""]
    lines.append(_row("http_req_duration", _trend(results["latency_ms"])))
    for endpoint, e in sorted(results["endpoints"].items()):
        if e["latency_ms"].get("count"):
            lines.append(_row(f"{{ endpoint:{endpoint} }}", _trend(e["latency_ms"]), "      "))
    lines.append(_row("http_req_duration_uncorrected", _trend(results["latency_uncorrected_ms"])))
    lines.append(_row("send_lag", _trend(results["send_lag_ms"])))
    visibility = results.get("visibility_lag_ms")
    if isinstance(visibility, Mapping):
        shown = _trend(visibility) if visibility.get("count") else "no trace probed"
        timeouts = visibility.get("timeouts") or 0
        lines.append(_row("visibility_lag", f"{shown}  ({timeouts:,} timed out)"))
    requests, errors = totals["requests"], totals["errors"]
    failed_rate = _pct(errors / requests) if requests else "-"
    lines.append(_row("http_req_failed", f"{failed_rate}  {errors:,} out of {requests:,}"))
    lines.append(
        _row(
            "http_reqs",
            f"{requests:,}  {totals['achieved_rps']:,.1f}/s "
            f"(offered {totals['offered']:,}, {totals['offered_rps']:,.1f}/s)",
        )
    )
    dropped, offered = totals["dropped"], totals["offered"]
    drop_rate = f"{_pct(dropped / offered)} of offered" if offered else "-"
    lines.append(_row("dropped_requests", f"{dropped:,}  {drop_rate}"))
    errors_by_kind = results.get("errors") or {}
    if errors_by_kind:
        kinds = "  ".join(f"{kind}={n:,}" for kind, n in errors_by_kind.items())
        lines.append(_row("errors by kind", kinds))
    limit = results.get("load_generator") or {}
    if limit.get("limited"):
        lines += ["", "  ! The load generator, not the target, was the limit:"]
        lines += [f"      - {reason}" for reason in limit.get("reasons", [])]
    if results.get("scenarios"):
        from replay.scenario_results import render_scenarios

        lines += ["", render_scenarios(results).rstrip("\n")]
    notes = results["meta"].get("notes") or []
    if notes:
        lines.append("")
        lines += [f"  note: {note}" for note in notes]
    lines.append("")
    return "\n".join(lines) + "\n"


def render_progress(snapshot: ProgressSnapshot, total_s: float | None, tty: bool) -> str:
    """One progress line (no ``\\r``, no newline): elapsed of total, offered and achieved
    rate, p50 and p99 of the latest second, errors and dropped so far, in flight."""
    view = snapshot.interval
    elapsed = snapshot.elapsed_s
    clock = f"{_seconds(elapsed)}/{_seconds(total_s)}" if total_s else _seconds(elapsed)
    error_share = f" ({_pct(snapshot.errors / snapshot.requests)})" if snapshot.requests else ""
    fields = (
        f"offered {view.offered_rps:,.0f}/s  achieved {view.achieved_rps:,.0f}/s  "
        f"p50 {format_ms(view.p50_ms)}  p99 {format_ms(view.p99_ms)}  "
        f"errors {snapshot.errors:,}{error_share}  inflight {view.inflight:,}  "
        f"dropped {snapshot.dropped:,}"
    )
    if tty:
        bar = ""
        if total_s:
            filled = min(int(20 * elapsed / total_s), 20)
            bar = "[" + "=" * filled + " " * (20 - filled) + "] "
        return f"{bar}{clock}  {fields}"
    return f"replay {clock}  {fields}"
