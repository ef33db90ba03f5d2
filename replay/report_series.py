"""A run's per-second series, read from one or more ``replay-results/1`` documents.

Several documents are runs made side by side: their seconds add up by index, as
``replay merge`` adds them, and every percentile is read from the added histograms. The
series a report plots are columns (numpy arrays, one value per second); the corrected
latency stays as histograms (per second, and per endpoint and second) so that phases,
windows and endpoint groups get exact percentiles. Keys that later versions of the results
file add are read when present (docs/report.md gives their shape): ``active_vus`` and
``scenarios`` per second, ``visibility_lag_ms`` per second.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from capture.cli_errors import InputError
from replay.histogram_decode import HistogramDecodeError, decode_many
from replay.histogram_table import HistTable

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
METRICS = ("latency", "latency_uncorrected", "send_lag")
SCENARIO_COUNTS = ("offered", "requests", "errors", "dropped", "active_vus", "inflight")


class ReportError(InputError, ValueError):
    """Input a report cannot use: the message names the file and the key."""


@dataclass
class ScenarioSeries:
    """One scenario's seconds: counts (absent keys stay None) and p50/p99 in ms."""

    counts: dict[str, IntArray | None]
    p50_ms: FloatArray
    p99_ms: FloatArray
    exact: bool  # percentiles from histograms (or a single file's own figures)


@dataclass
class VisibilitySeries:
    """Ingest-to-visible lag by acknowledgment second: probes answered, timed out, and
    the lag's histograms (µs buckets) per second."""

    count: IntArray
    timeouts: IntArray
    lag: HistTable


@dataclass
class RunSeries:
    """Per-second columns of a run (index = second since the common start)."""

    seconds: int
    offered: IntArray
    requests: IntArray
    ok: IntArray
    errors: IntArray
    dropped: IntArray
    inflight: IntArray
    active_vus: IntArray | None
    errors_by_kind: dict[str, IntArray]
    endpoint_requests: dict[str, IntArray]
    endpoint_ok: dict[str, IntArray]
    endpoint_dropped: dict[str, IntArray]
    latency: HistTable  # group = second
    endpoint_latency: HistTable  # group = endpoint index * seconds + second
    percentiles: dict[str, FloatArray]  # "p50_ms", "p99_uncorrected_ms", ...: per second
    scenarios: dict[str, ScenarioSeries] = field(default_factory=dict)
    visibility: VisibilitySeries | None = None

    @property
    def endpoints(self) -> list[str]:
        return sorted(set(self.endpoint_requests) | set(self.endpoint_dropped))

    def span(self, start: int, end: int) -> slice:
        return slice(max(start, 0), min(max(end, 0), self.seconds))

    def latency_by(
        self, of_second: IntArray, groups: int, endpoints: Sequence[str] | None = None
    ) -> HistTable:
        """Corrected latency with second ``t`` counted in group ``of_second[t]`` (negative:
        left out), over every endpoint or only ``endpoints``."""
        if endpoints is None:
            return self.latency.regroup(of_second, groups)
        names = self.endpoints
        mapping = np.full(self.seconds * max(len(names), 1), -1, np.int64)
        for k, name in enumerate(names):
            if name in endpoints:
                mapping[k * self.seconds : (k + 1) * self.seconds] = of_second
        return self.endpoint_latency.regroup(mapping, groups)

    def latency_over(
        self, spans: Sequence[tuple[int, int]], endpoints: Sequence[str] | None = None
    ) -> HistTable:
        """Corrected latency merged over each span [start, end) of seconds (spans may
        overlap): group i is span i."""
        tables = []
        for start, end in spans:
            of_second = np.full(self.seconds, -1, np.int64)
            of_second[self.span(start, end)] = 0
            tables.append(self.latency_by(of_second, 1, endpoints))
        return _stack(tables)


def rounded(value: float | None, digits: int = 3) -> float | None:
    """``value`` rounded, None for None, NaN or infinity (JSON has no NaN)."""
    if value is None or not math.isfinite(value):
        return None
    return round(float(value), digits)


def rate(num: npt.ArrayLike, den: npt.ArrayLike) -> FloatArray:
    """num / den elementwise, NaN where den is 0."""
    n, d = np.asarray(num, np.float64), np.asarray(den, np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(d > 0, n / d, np.nan)


def _stack(tables: Sequence[HistTable]) -> HistTable:
    """One table whose group i is the single group of ``tables[i]``."""
    if not tables:
        empty = np.zeros(0, np.int64)
        return HistTable(0, empty, empty, empty)
    group = np.concatenate([np.full(t.count.size, i, np.int64) for i, t in enumerate(tables)])
    bucket = np.concatenate([t.bucket for t in tables])
    count = np.concatenate([t.count for t in tables])
    return HistTable(len(tables), group, bucket, count)


def _int(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ReportError(f"{where}: expected a count (an integer >= 0), found {value!r}")
    return value


def _number(value: Any, where: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not np.isfinite(value):
        raise ReportError(f"{where}: expected a number or null, found {value!r}")
    return float(value)


def load_series(documents: Sequence[Mapping[str, Any]], names: Sequence[str]) -> RunSeries:
    """The per-second series of validated results documents, added by second index."""
    n = max((len(d["timeline"]) for d in documents), default=0)
    cols = {k: np.zeros(n, np.int64) for k in ("offered", "requests", "ok", "errors", "dropped")}
    inflight = np.zeros(n, np.int64)
    vus = np.zeros(n, np.int64)
    has_vus = False
    by_kind: dict[str, IntArray] = {}
    ep_req: dict[str, IntArray] = {}
    ep_ok: dict[str, IntArray] = {}
    ep_drop: dict[str, IntArray] = {}
    strings: list[list[str]] = [[], [], []]
    where: list[str] = []
    item_second: list[int] = []
    item_endpoint: list[str] = []
    scenario_rows: list[tuple[int, str, Mapping[str, Any], str]] = []
    vis_rows: list[tuple[int, Mapping[str, Any], str]] = []
    for doc, name in zip(documents, names, strict=True):
        for i, entry in enumerate(doc["timeline"]):
            at = f"{name}: timeline[{i}]"
            if entry["t"] != i:
                raise ReportError(f"{at}.t: {entry['t']} where {i} was expected (one per second)")
            for key, col in cols.items():
                col[i] += entry[key]
            inflight[i] += entry["inflight"]
            if "active_vus" in entry:
                has_vus = True
                vus[i] += _int(entry["active_vus"], f"{at}.active_vus")
            for endpoint, d in entry["dropped_by_endpoint"].items():
                ep_drop.setdefault(endpoint, np.zeros(n, np.int64))[i] += d
            for j, s in enumerate(entry["series"]):
                endpoint, outcome, count = s["endpoint"], s["outcome"], s["requests"]
                ep_req.setdefault(endpoint, np.zeros(n, np.int64))[i] += count
                if _is_ok(outcome):
                    ep_ok.setdefault(endpoint, np.zeros(n, np.int64))[i] += count
                else:
                    by_kind.setdefault(outcome, np.zeros(n, np.int64))[i] += count
                for m, metric in enumerate(METRICS):
                    strings[m].append(s[metric])
                where.append(f"{at}.series[{j}]")
                item_second.append(i)
                item_endpoint.append(endpoint)
            scenarios = entry.get("scenarios")
            if scenarios is not None:
                if not isinstance(scenarios, dict):
                    raise ReportError(f"{at}.scenarios: expected an object keyed by scenario")
                for sc, value in scenarios.items():
                    if not isinstance(value, dict):
                        raise ReportError(f"{at}.scenarios.{sc}: expected an object")
                    scenario_rows.append((i, str(sc), value, f"{at}.scenarios.{sc}"))
            if entry.get("visibility_lag_ms") is not None:
                vis = entry["visibility_lag_ms"]
                if not isinstance(vis, dict):
                    raise ReportError(f"{at}.visibility_lag_ms: expected an object")
                vis_rows.append((i, vis, f"{at}.visibility_lag_ms"))

    endpoints = sorted(set(ep_req) | set(ep_drop))
    seconds = np.asarray(item_second, np.int64)
    ep_index = np.asarray([endpoints.index(e) for e in item_endpoint], np.int64)
    columns = (("p50_ms", "p99_ms"), ("p50_uncorrected_ms", "p99_uncorrected_ms"),
             ("send_lag_p50_ms", "send_lag_p99_ms"))  # fmt: skip
    percentiles: dict[str, FloatArray] = {}
    latency = endpoint_latency = None
    for m, metric in enumerate(METRICS):  # one metric at a time: memory for one
        item, bucket, count = _decode_chunked(strings[m], where, metric)
        strings[m] = []
        table = HistTable.from_rows(len(item_second), item, bucket, count)
        del item, bucket, count
        per_second = table.regroup(seconds, n)
        if m == 0:
            latency = per_second
            endpoint_latency = table.regroup(ep_index * n + seconds, n * max(len(endpoints), 1))
        del table
        p = per_second.percentiles([50, 99])
        percentiles[columns[m][0]], percentiles[columns[m][1]] = p[:, 0], p[:, 1]
    assert latency is not None and endpoint_latency is not None
    return RunSeries(
        seconds=n,
        offered=cols["offered"],
        requests=cols["requests"],
        ok=cols["ok"],
        errors=cols["errors"],
        dropped=cols["dropped"],
        inflight=inflight,
        active_vus=vus if has_vus else None,
        errors_by_kind=dict(sorted(by_kind.items(), key=lambda kv: -int(kv[1].sum()))),
        endpoint_requests=ep_req,
        endpoint_ok=ep_ok,
        endpoint_dropped=ep_drop,
        latency=latency,
        endpoint_latency=endpoint_latency,
        percentiles=percentiles,
        scenarios=_scenarios(scenario_rows, n, len(documents)),
        visibility=_visibility(vis_rows, n),
    )


DECODE_CHUNK = 2048
"""Histograms decoded per vectorised pass: bounds the decoder's scratch memory."""


def _decode_chunked(
    strings: Sequence[str], where: Sequence[str], metric: str
) -> tuple[IntArray, IntArray, IntArray]:
    parts = []
    for start in range(0, len(strings), DECODE_CHUNK):
        try:
            item, bucket, count = decode_many(strings[start : start + DECODE_CHUNK])
        except HistogramDecodeError as exc:
            raise ReportError(f"{where[start + exc.index]}.{metric}: {exc}") from None
        parts.append((item + start, bucket, count))
    if not parts:
        empty = np.zeros(0, np.int64)
        return empty, empty, empty
    return tuple(np.concatenate([p[k] for p in parts]) for k in range(3))  # type: ignore[return-value]


def _is_ok(outcome: str) -> bool:
    return len(outcome) == 3 and outcome[0] in "23" and outcome.isdigit()


def _scenarios(
    rows: Sequence[tuple[int, str, Mapping[str, Any], str]], n: int, files: int
) -> dict[str, ScenarioSeries]:
    """Per scenario: counts added up; p50/p99 from ``series`` histograms when given, else
    the file's own figures (with several files, the highest: an upper bound)."""
    out: dict[str, ScenarioSeries] = {}
    hist_rows: dict[str, list[tuple[int, str, str]]] = {}
    for i, name, value, at in rows:
        sc = out.get(name)
        if sc is None:
            sc = out[name] = ScenarioSeries(
                {k: None for k in SCENARIO_COUNTS},
                np.full(n, np.nan),
                np.full(n, np.nan),
                exact=files == 1,
            )
        for key in SCENARIO_COUNTS:
            if key in value:
                col = sc.counts[key]
                if col is None:
                    col = sc.counts[key] = np.zeros(n, np.int64)
                col[i] += _int(value[key], f"{at}.{key}")
        series = value.get("series")
        if series is not None:
            if not isinstance(series, list):
                raise ReportError(f"{at}.series: expected a list")
            for j, s in enumerate(series):
                if not isinstance(s, dict) or not isinstance(s.get("latency"), str):
                    raise ReportError(f"{at}.series[{j}].latency: expected a histogram string")
                hist_rows.setdefault(name, []).append((i, s["latency"], f"{at}.series[{j}]"))
            continue
        for key, figures in (("p50_ms", sc.p50_ms), ("p99_ms", sc.p99_ms)):
            v = _number(value.get(key), f"{at}.{key}")
            if v is not None:
                figures[i] = v if np.isnan(figures[i]) else max(figures[i], v)
    for name, items in hist_rows.items():
        sc = out[name]
        try:
            item, bucket, count = decode_many([s for _, s, _ in items])
        except HistogramDecodeError as exc:
            raise ReportError(f"{items[exc.index][2]}.latency: {exc}") from None
        second = np.asarray([i for i, _, _ in items], np.int64)
        table = HistTable.from_rows(n, second[item], bucket, count)
        p = table.percentiles([50, 99])
        sc.p50_ms, sc.p99_ms, sc.exact = p[:, 0], p[:, 1], True
    return out


def _visibility(
    rows: Sequence[tuple[int, Mapping[str, Any], str]], n: int
) -> VisibilitySeries | None:
    if not rows:
        return None
    count = np.zeros(n, np.int64)
    timeouts = np.zeros(n, np.int64)
    strings, seconds, places = [], [], []
    for i, value, at in rows:
        count[i] += _int(value.get("count", 0), f"{at}.count")
        timeouts[i] += _int(value.get("timeouts", 0), f"{at}.timeouts")
        hist = value.get("histogram")
        if hist is not None:
            if not isinstance(hist, str):
                raise ReportError(f"{at}.histogram: expected a histogram string")
            strings.append(hist)
            seconds.append(i)
            places.append(at)
    try:
        item, bucket, counts = decode_many(strings)
    except HistogramDecodeError as exc:
        raise ReportError(f"{places[exc.index]}.histogram: {exc}") from None
    second = np.asarray(seconds, np.int64)
    lag = HistTable.from_rows(n, second[item] if item.size else item, bucket, counts)
    return VisibilitySeries(count, timeouts, lag)
