"""A report as a list of blocks (headings, paragraphs, lists, tables, code, images), and the
two renderers that turn it into Markdown and into one self-contained HTML page, so that both
say the same thing."""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Iterable
from dataclasses import dataclass

from capture.termsafe import printable_lines


@dataclass(frozen=True)
class Heading:
    """A heading; `level` 1 is the title."""

    level: int
    text: str


@dataclass(frozen=True)
class Paragraph:
    text: str


@dataclass(frozen=True)
class Bullets:
    items: tuple[str, ...]


@dataclass(frozen=True)
class Table:
    """A table of text cells."""

    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    details: str | None = None  # HTML: fold it away under this summary


@dataclass(frozen=True)
class Code:
    text: str


@dataclass(frozen=True)
class Image:
    alt: str
    png: bytes


Block = Heading | Paragraph | Bullets | Table | Code | Image


def markdown(blocks: Iterable[Block]) -> list[str]:
    """The blocks as Markdown lines (images left out: Markdown reports point to the HTML)."""
    lines: list[str] = []
    for block in blocks:
        if isinstance(block, Heading):
            lines += ["#" * block.level + " " + _md(block.text), ""]
        elif isinstance(block, Paragraph):
            lines += [_md(block.text), ""]
        elif isinstance(block, Bullets):
            lines += [f"- {_md(item)}" for item in block.items] + [""]
        elif isinstance(block, Table):
            if block.details:
                lines += [f"{_md(block.details)}:", ""]
            lines.append("| " + " | ".join(_md(h) for h in block.header) + " |")
            lines.append("|" + "|".join("---" for _ in block.header) + "|")
            lines += [
                "| " + " | ".join(_md(c).replace("|", "\\|") for c in r) + " |" for r in block.rows
            ]
            lines.append("")
        elif isinstance(block, Code):
            lines += ["```", block.text, "```", ""]
    return lines


def _md(text: str) -> str:
    """Markdown text with the HTML it may carry from an input file (a sweep's target, a
    CSV's name) escaped, and no control characters: a Markdown viewer renders raw HTML. Only
    what could open a tag or an entity is escaped, so `p99 < 100 ms` stays readable."""
    text = re.sub(r"&(?=#?[0-9A-Za-z]+;)", "&amp;", printable_lines(text))
    return re.sub(r"<(?=[A-Za-z/!?])", "&lt;", text)


_CSS = """
body{font:15px/1.5 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:60rem;
margin:2rem auto;padding:0 1rem;color:#1b1b1b}
h1{font-size:1.6rem}h2{font-size:1.25rem;margin-top:2rem;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.8rem 0;font-size:.9rem}
th,td{border:1px solid #ccc;padding:.25rem .6rem;text-align:right}
th{background:#f4f4f4}td:last-child,th:last-child{text-align:left}
img{max-width:100%;border:1px solid #eee;margin:.8rem 0}
pre{background:#f6f6f6;padding:.8rem;overflow-x:auto}code{background:#f6f6f6}
li{margin:.3rem 0}summary{cursor:pointer;margin:.6rem 0}
"""


def _inline(text: str) -> str:
    """Escape, then the two Markdown marks the blocks use: **strong** and `code`."""
    escaped = html.escape(text)
    escaped = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", escaped)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", escaped)


def html_page(title: str, blocks: Iterable[Block]) -> str:
    """One self-contained HTML page: style inline, images embedded as base64 PNG."""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title>",
        f"<style>{_CSS}</style></head><body>",
    ]
    for block in blocks:
        if isinstance(block, Heading):
            parts.append(f"<h{block.level}>{_inline(block.text)}</h{block.level}>")
        elif isinstance(block, Paragraph):
            parts.append(f"<p>{_inline(block.text)}</p>")
        elif isinstance(block, Bullets):
            parts.append("<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in block.items) + "</ul>")
        elif isinstance(block, Table):
            head = "".join(f"<th>{html.escape(h)}</th>" for h in block.header)
            body = "".join(
                "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>"
                for row in block.rows
            )
            table = f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
            if block.details:
                table = f"<details><summary>{html.escape(block.details)}</summary>{table}</details>"
            parts.append(table)
        elif isinstance(block, Code):
            parts.append(f"<pre><code>{html.escape(block.text)}</code></pre>")
        elif isinstance(block, Image):
            data = base64.b64encode(block.png).decode("ascii")
            parts.append(f'<img alt="{html.escape(block.alt)}" src="data:image/png;base64,{data}">')
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
