"""Measured points, from sweep files and from CSVs, pooled into what the planner fits.

A `Point` is one pod count and its ``capacity``: the throughput the plan is built on. From a
sweep that is ``x_slo`` (the highest offered rate that met the SLO) and ``x_max`` rides along
for the secondary fit; from a CSV it is the ``throughput`` column, measured elsewhere and
taken at its word. Points at the same pod count are kept apart (repeats inform the noise).

The CSV has a header naming a ``pods`` (or ``concurrency``) column and a ``throughput`` column,
in any order, other columns ignored; blank lines and lines starting with ``#`` are skipped.
Pod counts are whole numbers ≥ 1, throughputs numbers > 0.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from planner import caveats
from planner.errors import InputError
from planner.limits import pods_problem, rate_problem
from planner.sweep_format import Sweep, load_sweep
from planner.types import Caveat

N_COLUMNS = ("pods", "concurrency")
X_COLUMN = "throughput"


@dataclass(frozen=True)
class Point:
    pods: int
    capacity: float | None  # None: a sweep pod count where no step met the SLO
    x_max: float | None  # sweeps only
    source: str


@dataclass(frozen=True)
class Measurements:
    points: tuple[Point, ...]
    sweeps: tuple[tuple[str, Sweep], ...]  # (path, sweep) for the latency plots and tables
    caveats: tuple[Caveat, ...]

    def capacity_series(self) -> tuple[list[int], list[float]]:
        pts = [p for p in self.points if p.capacity is not None]
        return [p.pods for p in pts], [p.capacity for p in pts if p.capacity is not None]

    def x_max_series(self) -> tuple[list[int], list[float]]:
        pts = [p for p in self.points if p.x_max is not None]
        return [p.pods for p in pts], [p.x_max for p in pts if p.x_max is not None]


def parse_csv(text: str, path: str | Path = "") -> list[tuple[int, float]]:
    """(pods, throughput) rows of a CSV text; `InputError` naming the line on any problem."""
    rows = csv.reader(io.StringIO(text))
    header: list[str] | None = None
    n_col = x_col = -1
    out: list[tuple[int, float]] = []
    for row in rows:
        if not row or not "".join(row).strip() or row[0].lstrip().startswith("#"):
            continue
        where = f"line {rows.line_num}"
        if header is None:
            header = [cell.strip().lower() for cell in row]
            n_cols = [i for i, name in enumerate(header) if name in N_COLUMNS]
            if len(n_cols) != 1 or header.count(X_COLUMN) != 1:
                raise InputError(
                    "expected a header with a 'pods' (or 'concurrency') column and a "
                    f"'throughput' column, found {','.join(row)!r}",
                    path=path,
                    where=where,
                )
            n_col, x_col = n_cols[0], header.index(X_COLUMN)
            continue
        if len(row) <= max(n_col, x_col):
            raise InputError(
                f"{len(row)} column(s), the header has {len(header)}", path=path, where=where
            )
        pods = _whole(_number(row[n_col], header[n_col], path, where), header[n_col], path, where)
        x = _number(row[x_col], X_COLUMN, path, where)
        if x <= 0:
            raise InputError(
                f"throughput {row[x_col].strip()} must be greater than 0", path=path, where=where
            )
        problem = pods_problem(pods) or rate_problem(x, "throughput")
        if problem:
            raise InputError(problem, path=path, where=where)
        out.append((pods, x))
    if header is None:
        raise InputError("empty: expected a header line 'pods,throughput' and data", path=path)
    if not out:
        raise InputError("no data rows after the header", path=path)
    return out


def read_csv(path: str | Path) -> list[Point]:
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise InputError("no such file", path=path) from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise InputError(f"cannot read it ({reason})", path=path) from None
    return [Point(n, x, None, str(path)) for n, x in parse_csv(text, path)]


def points_from_sweep(sweep: Sweep, source: str) -> tuple[list[Point], list[Caveat]]:
    """The sweep's complete pod counts as points, and caveats about what was left out."""
    points: list[Point] = []
    notes: list[Caveat] = []
    for p in sweep.points:
        if not p.complete:
            notes.append(
                Caveat(
                    caveats.INCOMPLETE_POINT,
                    f"{source}: {p.pods} pods was interrupted before its ladder finished; "
                    "left out (resume the sweep to measure it).",
                )
            )
            continue
        points.append(Point(p.pods, p.x_slo, p.x_max, source))
        if p.x_slo is None:
            notes.append(
                Caveat(
                    caveats.NO_SLO_PASS,
                    f"{source}: at {p.pods} pods no offered rate met the SLO; this pod count "
                    "is left out of the SLO fit and kept in the x_max fit.",
                )
            )
        elif p.steps and p.x_slo >= max(s.offered_rps for s in p.steps):
            notes.append(
                Caveat(
                    caveats.NOT_BRACKETED,
                    f"{source}: at {p.pods} pods even the highest offered rate "
                    f"({p.x_slo:,.0f}/s) met the SLO, so capacity there is at least that, "
                    "not exactly that; the fit underestimates this pod count.",
                )
            )
        dropped = sum(s.dropped for s in p.steps)
        if dropped:
            notes.append(
                Caveat(
                    caveats.DROPPED,
                    f"{source}: at {p.pods} pods the load generator dropped {dropped:,} "
                    "requests it was due to send; where it did, it may have been the "
                    "bottleneck rather than the service.",
                )
            )
    return points, notes


def gather(sweep_paths: Sequence[str | Path], csv_path: str | Path | None) -> Measurements:
    """Load every sweep file and the CSV, and pool their points."""
    points: list[Point] = []
    sweeps: list[tuple[str, Sweep]] = []
    notes: list[Caveat] = []
    for path in sweep_paths:
        sweep = load_sweep(path)
        pts, cav = points_from_sweep(sweep, str(path))
        points += pts
        notes += cav
        sweeps.append((str(path), sweep))
    if csv_path is not None:
        points += read_csv(csv_path)
    return Measurements(tuple(sorted(points, key=lambda p: p.pods)), tuple(sweeps), tuple(notes))


def _number(cell: str, column: str, path: str | Path, where: str) -> float:
    text = cell.strip()
    try:
        value = float(text)
    except ValueError:
        raise InputError(
            f"{column} {_short(text)} is not a number", path=path, where=where
        ) from None
    if not math.isfinite(value):
        raise InputError(f"{column} {_short(text)} is not a finite number", path=path, where=where)
    if value < 0:
        raise InputError(f"{column} {text} is negative", path=path, where=where)
    return value


def _short(text: str) -> str:
    shown = repr(text)
    return shown if len(shown) <= 40 else f"{shown[:30]}... ({len(text)} characters)"


def _whole(value: float, column: str, path: str | Path, where: str) -> int:
    if value < 1 or value != int(value):
        raise InputError(f"{column} {value:g} must be a whole number ≥ 1", path=path, where=where)
    return int(value)
