"""The rehearsal report in words: Markdown, and one self-contained HTML page with figures.

Both are built from one list of blocks, so they say the same thing; the HTML embeds its
figures as base64 PNGs and its style inline, and loads nothing (no script, no font, no
link), so it opens anywhere, offline, attached to a ticket.
"""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from replay.recovery import DEFINITION


@dataclass(frozen=True)
class _H:
    level: int
    text: str


@dataclass(frozen=True)
class _P:
    text: str


@dataclass(frozen=True)
class _List:
    items: tuple[str, ...]


@dataclass(frozen=True)
class _Table:
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


@dataclass(frozen=True)
class _Image:
    alt: str
    png: bytes


_Block = _H | _P | _List | _Table | _Image


def _f(value: Any, digits: int = 1, unit: str = "") -> str:
    if value is None:
        return "—"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}{unit}"
    return f"{value:,.{digits}f}{unit}"


def _pct(value: Any, digits: int = 2) -> str:
    return "—" if value is None else f"{100 * value:.{digits}f}%"


def headline(doc: dict[str, Any]) -> list[str]:
    """The run in a few sentences: the CLI prints these, the reports open with them."""
    t = doc["totals"]
    lat = doc["latency_ms"]
    lines = [
        f"{t['requests']:,} requests in {t['duration_s']:.1f} s: "
        f"offered {t['offered_rps']:,.1f}/s, "
        f"achieved {t['achieved_rps']:,.1f}/s; p50 {_f(lat['p50'])} ms, p99 {_f(lat['p99'])} ms "
        f"from intended time; errors {_pct(t['error_rate'])}; dropped {t['dropped']:,}."
    ]
    rec = doc["recovery"]
    if rec["recovered"] is True:
        lines.append(
            f"Recovered {rec['recovery_s']:.1f} s after the load began to fall "
            f"(at {rec['fall_s']:g} s)."
        )
    elif rec["recovered"] is False:
        lines.append(f"Did not recover after the spike: {rec['note']}.")
    verdict = doc["drift"].get("verdict")
    if verdict:
        lines.append(f"Soak: {verdict['status']}.")
    missed = [v["name"] for v in doc["verdicts"] if v["status"] == "missed"]
    if missed:
        lines.append("Guide targets missed: " + ", ".join(missed) + ".")
    if doc["load_generator"]["limited"]:
        lines.append(
            "The load generator, not the target, was the limit: "
            + "; ".join(doc["load_generator"]["reasons"])
            + "."
        )
    return lines


def _blocks(doc: dict[str, Any], images: Sequence[tuple[str, bytes]]) -> list[_Block]:
    run = doc["run"]
    title = f"Rehearsal report: {run.get('corpus') or 'run'} against {run.get('target') or '?'}"
    out: list[_Block] = [_H(1, title)]
    out.append(
        _P(
            f"Built from {', '.join(doc['sources'])} ({doc['schema']}). Started "
            f"{run.get('started') or '?'}, ended {run.get('ended') or '?'}; model "
            f"{run.get('model')}. Command: `{run.get('command_line') or '?'}`."
        )
    )
    out.append(_List(tuple(f"**{line}**" for line in headline(doc))))

    out.append(_H(2, "Against the guide's targets"))
    out.append(
        _Table(
            ("target", "measured", "bound", "verdict", "judged on", "note"),
            tuple(
                (
                    v["name"],
                    _f(v["value"], 1, f" {v['unit']}"),
                    _bound(v),
                    v["status"],
                    v["phase"],
                    v["note"],
                )
                for v in doc["verdicts"]
            ),
        )
    )

    out.append(_H(2, "Phases"))
    out.append(
        _P(
            f"From {doc['phases_from']}"
            + (" (a spike-shaped run)." if doc["spike_shaped"] else ".")
            + " Figures of a phase are read over its whole seconds [start, end)."
        )
    )
    out.append(
        _Table(
            (
                "phase",
                "start s",
                "end s",
                "offered/s",
                "achieved/s",
                "p50 ms",
                "p99 ms",
                "errors",
                "dropped",
            ),
            tuple(
                (
                    p["name"],
                    f"{p['start_s']:g}",
                    f"{p['end_s']:g}",
                    _f(p["offered_rps"]),
                    _f(p["achieved_rps"]),
                    _f(p["p50_ms"], 2),
                    _f(p["p99_ms"], 2),
                    _pct(p["error_rate"]),
                    _f(p["dropped"]),
                )
                for p in doc["phases"]
            ),
        )
    )

    out.append(_H(2, "Recovery"))
    rec = doc["recovery"]
    if rec["recovered"] is None:
        out.append(_P(f"Not measured: {rec['note']}."))
    else:
        state = (
            f"recovered after **{rec['recovery_s']:.2f} s** (good from second "
            f"{rec['recovered_at_s']})"
            if rec["recovered"]
            else "**did not recover**"
        )
        out.append(
            _P(
                f"The load began to fall at {rec['fall_s']:g} s; the run {state}. Baseline p99 "
                f"{_f(rec['baseline_p99_ms'], 2)} ms, so the limit is {_f(rec['p99_limit_ms'], 2)} "
                f"ms; baseline error rate {_pct(rec['baseline_error_rate'])}, limit "
                f"{_pct(rec['error_rate_limit'])}."
            )
        )
    out.append(_P(f"Definition: {DEFINITION}."))

    out += _drift_blocks(doc["drift"])
    out += _extra_blocks(doc)

    if doc["thresholds"]:
        out.append(_H(2, "The run's thresholds"))
        out.append(
            _Table(
                ("threshold", "value", "verdict"),
                tuple(
                    (t["threshold"], _f(t.get("value"), 3), "ok" if t["ok"] else "FAILED")
                    for t in doc["thresholds"]
                ),
            )
        )
    if images:
        out.append(_H(2, "Figures"))
        out.append(
            _P(
                "Per second over the run, phases shaded (names on top). Latency is "
                "from each request's intended send time unless marked uncorrected."
            )
        )
        out += [_Image(title, png) for title, png in images]
    notes = list(doc["notes"]) + list(run.get("notes") or [])
    if notes:
        out.append(_H(2, "Notes"))
        out.append(_List(tuple(notes)))
    return out


def _bound(v: dict[str, Any]) -> str:
    op = "≥" if v["name"] in ("ingestion throughput", "concurrent users") else "<"
    text = f"{op} {v['target']:,g} {v['unit']}"
    return text + ("" if v["minimum"] is None else f" (min. {op} {v['minimum']:,g})")


def _drift_blocks(d: dict[str, Any]) -> list[_Block]:
    out: list[_Block] = [_H(2, "Drift")]
    if d["note"]:
        out.append(_P(d["note"][0].upper() + d["note"][1:] + "."))
        return out
    rows = []
    for key, label, digits, scale in (
        ("p50_ms_per_hour", "p50 (ms/h)", 3, 1.0),
        ("p99_ms_per_hour", "p99 (ms/h)", 3, 1.0),
        ("error_rate_per_hour", "error rate (points/h)", 4, 100.0),
    ):
        s = d[key]
        rows.append(
            (label, "—", "—")
            if s is None
            else (
                label,
                f"{scale * s['estimate']:+.{digits}f}",
                f"{scale * s['ci_low']:+.{digits}f} to {scale * s['ci_high']:+.{digits}f}",
            )
        )
    out.append(
        _P(
            f"{d['windows']} windows of {d['window_s']} s over seconds "
            f"{d['span_s'][0]}–{d['span_s'][1]} ({d['span']}); {d['method']}."
        )
    )
    out.append(_Table(("slope", "estimate", "95% interval"), tuple(rows)))
    if d["warnings"]:
        out.append(_List(tuple(f"**Warning**: {w}" for w in d["warnings"])))
    if d["verdict"]:
        out.append(_P(f"**Soak verdict: {d['verdict']['status']}** — {d['verdict']['text']}"))
    return out


def _extra_blocks(doc: dict[str, Any]) -> list[_Block]:
    out: list[_Block] = []
    vis = doc.get("visibility_lag_ms")
    if vis:
        out.append(_H(2, "Ingest-to-visible lag"))
        out.append(
            _P(
                f"{vis['count']:,} probes answered, {vis['timeouts']:,} timed out; p50 "
                f"{_f(vis['p50_ms'])} ms, p99 {_f(vis['p99_ms'])} ms."
            )
        )
    scrape = doc.get("scrape")
    if scrape and scrape["memory"]:
        out.append(_H(2, "Target memory"))
        out.append(
            _Table(
                ("series", "MB/h", "95% interval", "leak suspected"),
                tuple(
                    (
                        m["series"],
                        "—" if m["mb_per_hour"] is None else f"{m['mb_per_hour']['estimate']:+.3f}",
                        "—" if m["mb_per_hour"] is None else _interval(m["mb_per_hour"]),
                        "yes" if m["leak_suspected"] else "no",
                    )
                    for m in scrape["memory"]
                ),
            )
        )
    return out


def _interval(s: dict[str, Any]) -> str:
    return f"{s['ci_low']:+.3f} to {s['ci_high']:+.3f}"


def render_markdown(doc: dict[str, Any]) -> str:
    """The report as Markdown (figures are in the HTML)."""
    lines: list[str] = []
    for block in _blocks(doc, ()):
        if isinstance(block, _H):
            lines += ["#" * block.level + " " + block.text, ""]
        elif isinstance(block, _P):
            lines += [block.text, ""]
        elif isinstance(block, _List):
            lines += [f"- {item}" for item in block.items] + [""]
        elif isinstance(block, _Table):
            lines.append("| " + " | ".join(block.header) + " |")
            lines.append("|" + "|".join("---" for _ in block.header) + "|")
            lines += [
                "| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in block.rows
            ]
            lines.append("")
    lines.append("Figures: see the HTML report (`replay report ... --html`).")
    return "\n".join(lines) + "\n"


_CSS = """
body{font:15px/1.5 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:62rem;
margin:2rem auto;padding:0 1rem;color:#1b1b1b}
h1{font-size:1.5rem}h2{font-size:1.2rem;margin-top:2rem;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.8rem 0;font-size:.88rem}
th,td{border:1px solid #ccc;padding:.25rem .6rem;text-align:right}
th{background:#f4f4f4}td:first-child,th:first-child,td:last-child,th:last-child{text-align:left}
img{max-width:100%;border:1px solid #eee;margin:.6rem 0;display:block}
code{background:#f6f6f6;word-break:break-all}li{margin:.3rem 0}
"""


def _inline(text: str) -> str:
    escaped = html.escape(text)
    escaped = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", escaped)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", escaped)


def render_html(doc: dict[str, Any], images: Sequence[tuple[str, bytes]]) -> str:
    """The report as one self-contained HTML page, figures embedded as base64 PNG."""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(doc['run'].get('corpus') or 'run')}: rehearsal report</title>",
        f"<style>{_CSS}</style></head><body>",
    ]
    for block in _blocks(doc, images):
        if isinstance(block, _H):
            parts.append(f"<h{block.level}>{_inline(block.text)}</h{block.level}>")
        elif isinstance(block, _P):
            parts.append(f"<p>{_inline(block.text)}</p>")
        elif isinstance(block, _List):
            parts.append("<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in block.items) + "</ul>")
        elif isinstance(block, _Table):
            head = "".join(f"<th>{html.escape(h)}</th>" for h in block.header)
            body = "".join(
                "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>"
                for row in block.rows
            )
            parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
        elif isinstance(block, _Image):
            data = base64.b64encode(block.png).decode("ascii")
            parts.append(
                f'<figure><img alt="{html.escape(block.alt)}" '
                f'src="data:image/png;base64,{data}"></figure>'
            )
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
