"""Scenarios in a run's measurements and results: one aggregate per scenario beside the
whole run's, the results' ``scenarios`` block, per-second ``timeline[i].scenarios`` and
``active_vus``, ``meta.scenarios``, rebuilding them for `replay merge`, and the summary's
per-scenario lines.

Additive to replay-results/1 (docs/results-format.md): a run without scenarios has none
of these keys.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from replay.aggregate import RunAggregate
from replay.histogram import decode_sparse
from replay.recorder import METRICS, Delta, SeriesDelta, read_delta
from replay.results import (
    ResultsError,
    RunMeta,
    _series_json,
    build_results,
)

NS = 1_000_000_000
KEPT = ("totals", "latency_ms", "latency_uncorrected_ms", "send_lag_ms", "endpoints")


@dataclass
class ScenarioAggregates:
    """Each scenario's RunAggregate, its active VUs per interval and worker, and what
    meta.scenarios says of it."""

    meta: list[dict[str, Any]]
    aggregates: dict[str, RunAggregate] = field(default_factory=dict)
    vus: dict[str, dict[int, dict[int, int]]] = field(default_factory=dict)
    _inflight: dict[tuple[int, int], dict[str, int]] = field(default_factory=dict)
    _latest_vus: dict[tuple[str, int], int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for entry in self.meta:
            self.aggregates.setdefault(str(entry["name"]), RunAggregate())

    def add(self, payload: bytes, whole: RunAggregate) -> Delta:
        """One worker's delta into the whole run and its scenario's aggregate."""
        d = read_delta(payload)
        if d.scenario is None:
            whole.add(payload)
            return d
        inflight = self._inflight.setdefault((d.interval, d.worker), {})
        inflight[d.scenario] = d.inflight
        self._add(whole, d, sum(inflight.values()))
        self._add(self.aggregates.setdefault(d.scenario, RunAggregate()), d, d.inflight)
        if d.vus is not None:
            self.vus.setdefault(d.scenario, {}).setdefault(d.interval, {})[d.worker] = d.vus
            self._latest_vus[(d.scenario, d.worker)] = d.vus
        return d

    def latest_vus(self) -> int:
        """Active VUs of every scenario and worker, as last reported (live metrics)."""
        return sum(self._latest_vus.values())

    @staticmethod
    def _add(into: RunAggregate, d: Delta, inflight: int) -> None:
        into.add_interval(
            d.interval,
            worker=d.worker,
            offered=d.offered,
            inflight=inflight,
            dropped=d.dropped,
            series=d.series,
        )

    def set_durations(self, run_s: float) -> None:
        """Each scenario's rates over its own length (within the run's)."""
        for entry in self.meta:
            agg = self.aggregates[entry["name"]]
            length = float(entry.get("duration_s") or 0) or run_s
            agg.set_duration(max(min(length, run_s), 0.001))

    def active_vus(self, name: str, k: int) -> int | None:
        by_worker = self.vus.get(name, {}).get(k)
        return sum(by_worker.values()) if by_worker is not None else None


def scenario_meta(scenarios: Sequence[Any], run_ns: int) -> list[dict[str, Any]]:
    """meta.scenarios: name, executor, start_s, duration_s and the load it was told to offer
    (``rate`` and ``stages`` of ``target_rps`` for arrival rates, ``vus`` or ``start_vus``
    and ``stages`` of ``target_vus`` for VUs)."""
    out = []
    for s in scenarios:
        length = s.length_ns or max(run_ns - s.start_ns, 0)
        entry: dict[str, Any] = {
            "name": s.name,
            "executor": s.executor,
            "start_s": s.start_ns / NS,
            "duration_s": length / NS,
        }
        if s.executor == "constant-arrival-rate":
            entry["rate"] = s.rate
        elif s.executor == "ramping-arrival-rate":
            entry["rate"] = s.start_rate
            entry["stages"] = [{"duration_s": d / NS, "target_rps": t} for d, t in s.stages]
        elif s.executor == "constant-vus":
            entry["vus"] = s.vus
        elif s.executor == "ramping-vus":
            entry["start_vus"] = s.start_vus
            entry["stages"] = [{"duration_s": d / NS, "target_vus": int(t)} for d, t in s.stages]
        else:
            entry["scale"], entry["speed"] = s.scale, s.speed
        out.append(entry)
    return out


def add_scenarios(results: dict[str, Any], scen: ScenarioAggregates) -> dict[str, Any]:
    """Add meta.scenarios, the scenarios block and each timeline second's scenarios."""
    results["meta"]["scenarios"] = scen.meta
    blocks = {}
    stub = RunMeta(corpus=None, target=None, model="")
    for entry in scen.meta:
        name = entry["name"]
        built = build_results(scen.aggregates[name], stub, [])
        blocks[name] = {"executor": entry.get("executor"), **{k: built[k] for k in KEPT}}
    results["scenarios"] = blocks
    for row in results["timeline"]:
        k = row["t"]
        per: dict[str, Any] = {}
        total_vus = 0
        for entry in scen.meta:
            name = entry["name"]
            view = scen.aggregates[name].interval(k)
            cell: dict[str, Any] = {
                "offered": view.offered,
                "requests": view.requests,
                "errors": view.errors,
                "dropped": view.dropped,
                "inflight": view.inflight,
                "dropped_by_endpoint": scen.aggregates[name].interval_dropped(k),
            }
            vus = scen.active_vus(name, k)
            if vus is not None:
                cell["active_vus"] = vus
                total_vus += vus
            cell["series"] = [_series_json(s) for s in scen.aggregates[name].interval_series(k)]
            per[name] = cell
        row["active_vus"] = total_vus
        row["scenarios"] = per
    return results


def merged_scenarios(
    results: Sequence[Mapping[str, Any]], names: Sequence[str]
) -> ScenarioAggregates | None:
    """The scenario aggregates of runs side by side (None when no input has scenarios):
    each timeline second's scenario series added exactly, active VUs summed."""
    if not any("scenarios" in r for r in results):
        return None
    meta: dict[str, dict[str, Any]] = {}
    for r in results:
        for entry in r.get("meta", {}).get("scenarios") or []:
            meta.setdefault(str(entry["name"]), dict(entry))
    scen = ScenarioAggregates(list(meta.values()))
    for source, (r, name) in enumerate(zip(results, names, strict=True)):
        for i, row in enumerate(r["timeline"]):
            for scenario, cell in (row.get("scenarios") or {}).items():
                where = f"{name}: timeline[{i}].scenarios.{scenario}"
                agg = scen.aggregates.setdefault(scenario, RunAggregate())
                try:
                    agg.add_interval(
                        int(row["t"]),
                        worker=source,
                        offered=int(cell["offered"]),
                        inflight=int(cell.get("inflight", 0)),
                        dropped=dict(cell.get("dropped_by_endpoint") or {}),
                        series=[_series(s, where) for s in cell.get("series", [])],
                    )
                except (KeyError, TypeError, ValueError) as exc:
                    raise ResultsError(f"{where}: {exc}") from None
                if "active_vus" in cell:
                    by_worker = scen.vus.setdefault(scenario, {}).setdefault(int(row["t"]), {})
                    by_worker[source] = int(cell["active_vus"])
        for scenario, block in (r.get("scenarios") or {}).items():
            entry = meta.get(scenario)
            if entry is not None and "duration_s" not in entry:
                entry["duration_s"] = block["totals"]["duration_s"]
    return scen


def _series(s: Mapping[str, Any], where: str) -> SeriesDelta:
    clamped = s.get("clamped") or [0, 0, 0]
    hists = []
    for m, metric in enumerate(METRICS):
        try:
            hists.append(decode_sparse(s[metric], clamped[m]))
        except (KeyError, ValueError) as exc:
            raise ResultsError(f"{where}: series {metric}: {exc}") from None
    return SeriesDelta(
        str(s["endpoint"]), str(s["outcome"]), int(s["requests"]), (hists[0], hists[1], hists[2])
    )


def render_scenarios(results: Mapping[str, Any]) -> str:
    """The summary's per-scenario lines (empty without scenarios)."""
    blocks = results.get("scenarios") or {}
    if not blocks:
        return ""
    lines = ["  SCENARIOS", ""]
    for name, block in blocks.items():
        totals, lat = block["totals"], block["latency_ms"]
        requests, errors = totals["requests"], totals["errors"]
        failed = f"{errors / requests * 100:.2f}%" if requests else "-"
        p99 = "-" if lat.get("p99") is None else f"{lat['p99']:,.2f}ms"
        p50 = "-" if lat.get("p50") is None else f"{lat['p50']:,.2f}ms"
        lines.append(
            f"  {name} ({block.get('executor') or '?'}): {requests:,} requests "
            f"{totals['achieved_rps']:,.1f}/s (offered {totals['offered']:,}), "
            f"p50 {p50} p99 {p99}, failed {failed}, dropped {totals['dropped']:,}"
        )
    lines.append("")
    return "\n".join(lines) + "\n"
