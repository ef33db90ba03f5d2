"""Reading a results file: every field checked, a `ResultsError` naming the file and field."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from replay.recorder import METRICS
from replay.results import BLOCKS, PERCENTILES, SCHEMA, ResultsError, RunMeta, kind_names
from replay.results_check import timeline_problem


def read_results(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and validate a results file; ResultsError naming the file and field if bad."""
    name = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ResultsError(f"{name}: no such file") from None
    except IsADirectoryError:
        raise ResultsError(f"{name}: is a directory, not a results file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ResultsError(f"{name}: cannot read ({exc})") from None
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ResultsError(
            f"{name}: not JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"
        ) from None
    validate_results(obj, name)
    results: dict[str, Any] = obj
    return results


_NUMBER = (int, float)
_OPT_NUMBER = (int, float, type(None))


def _get(obj: Mapping[str, Any], key: str, kinds: tuple[type, ...], where: str) -> Any:
    """``obj[key]`` if it is of ``kinds``; ``where`` is "file: parent." for the message."""
    if key not in obj:
        raise ResultsError(f"{where}{key}: missing")
    value = obj[key]
    if isinstance(value, bool) and bool not in kinds:
        raise ResultsError(f"{where}{key}: expected {kind_names(kinds)}, found {value}")
    if not isinstance(value, kinds):
        found = "null" if value is None else type(value).__name__
        raise ResultsError(f"{where}{key}: expected {kind_names(kinds)}, found {found}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ResultsError(f"{where}{key}: not a finite number")
    if kinds == (int,) and isinstance(value, int) and value < 0:
        raise ResultsError(f"{where}{key}: negative")
    return value


def _series_entry(entry: Any, where: str) -> None:
    if not isinstance(entry, dict):
        raise ResultsError(f"{where.rstrip('.')}: expected an object")
    _get(entry, "endpoint", (str,), where)
    _get(entry, "outcome", (str,), where)
    _get(entry, "requests", (int,), where)
    for metric in METRICS:
        _get(entry, metric, (str,), where)
    if "clamped" in entry:
        clamped = entry["clamped"]
        if not (
            isinstance(clamped, list)
            and len(clamped) == len(METRICS)
            and all(isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in clamped)
        ):
            raise ResultsError(f"{where}clamped: expected a list of 3 counts")


def validate_results(obj: Any, name: str = "results") -> None:
    """Check the structure of a ``replay-results/1`` document (not the histograms' bytes).

    ResultsError's message is ``name: field.path: what is wrong``."""
    if not isinstance(obj, dict):
        raise ResultsError(f"{name}: expected a JSON object, found {type(obj).__name__}")
    schema = obj.get("schema")
    if schema != SCHEMA:
        found = "missing" if schema is None else repr(schema)
        raise ResultsError(f"{name}: schema: {found}, expected {SCHEMA!r}")
    top = f"{name}: "
    RunMeta.from_json(_get(obj, "meta", (dict,), top), f"{top}meta")
    totals = _get(obj, "totals", (dict,), top)
    for key in ("requests", "ok", "errors", "dropped", "offered"):
        _get(totals, key, (int,), f"{top}totals.")
    for key in ("duration_s", "offered_rps", "achieved_rps"):
        _get(totals, key, _NUMBER, f"{top}totals.")
    for block in BLOCKS:
        b = _get(obj, block, (dict,), top)
        for key in ("count", "clamped"):
            _get(b, key, (int,), f"{top}{block}.")
        for key in ("min", "mean", *(k for k, _ in PERCENTILES), "max"):
            _get(b, key, _OPT_NUMBER, f"{top}{block}.")
    for section in ("endpoints", "outcomes", "errors", "load_generator"):
        _get(obj, section, (dict,), top)
    for i, v in enumerate(_get(obj, "thresholds", (list,), top)):
        at = f"{top}thresholds[{i}]."
        if not isinstance(v, dict):
            raise ResultsError(f"{at.rstrip('.')}: expected an object")
        _get(v, "threshold", (str,), at)
        _get(v, "ok", (bool,), at)
    for i, entry in enumerate(_get(obj, "timeline", (list,), top)):
        at = f"{top}timeline[{i}]."
        if not isinstance(entry, dict):
            raise ResultsError(f"{at.rstrip('.')}: expected an object")
        for key in ("t", "requests", "ok", "errors", "dropped", "offered", "inflight"):
            _get(entry, key, (int,), at)
        dropped = _get(entry, "dropped_by_endpoint", (dict,), at)
        for endpoint in dropped:
            _get(dropped, endpoint, (int,), f"{at}dropped_by_endpoint.")
        for j, s in enumerate(_get(entry, "series", (list,), at)):
            _series_entry(s, f"{at}series[{j}].")
    hists = _get(obj, "histograms", (dict,), top)
    for j, s in enumerate(_get(hists, "series", (list,), f"{top}histograms.")):
        _series_entry(s, f"{top}histograms.series[{j}].")
    problem = timeline_problem(obj)
    if problem:
        raise ResultsError(f"{top}{problem}")
