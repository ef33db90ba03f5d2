"""The end of a run: the notes that say what went short, the results, and the exit status.

Everything here reads what the run left behind (the aggregate, the workers' `done` info, the
scraper and visibility probes) and turns it into the results file, the summary on stdout
and one exit status; nothing here talks to a worker.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TextIO

from capture.errors import EXIT_INTERRUPTED
from replay import thresholds
from replay.aggregate import RunAggregate
from replay.core_wait import core_wait_note, steal_note
from replay.plan import RunPlan
from replay.probe import MAX_PENDING
from replay.results import RunMeta, build_results, write_results
from replay.run_start import iso, package_version
from replay.summary import render_summary
from replay.target import RunTarget
from replay.visibility import VisibilityAggregate

if TYPE_CHECKING:
    from replay.scenario_results import ScenarioAggregates
    from replay.scrape import TargetScraper
    from replay.thresholds import Verdict

Info = dict[str, Any]


def run_notes(
    plan: RunPlan,
    target: RunTarget,
    aggregate: RunAggregate,
    infos: Sequence[Info],
    *,
    interrupted: bool,
    aborted: str | None,
    failure: str | None,
) -> list[str]:
    """How the run ended and what it did not count: the embedded target, Ctrl-C, an abort,
    a failure, requests abandoned, never sent or dropped at --max-inflight, spool errors.
    `infos` are the workers' `done` info, in worker order."""
    notes: list[str] = []
    if target.embedded:
        notes.append("target: the embedded sandbox (started for this run, stopped after it)")
    if interrupted:
        notes.append("interrupted (Ctrl-C or SIGTERM): results cover what ran")
    if aborted:
        notes.append(f"stopped early: {aborted}")
    if failure:
        notes.append(f"failed: {failure}; results are partial")
    abandoned = sum(int(i.get("abandoned", 0)) for i in infos)
    if abandoned:
        notes.append(f"{abandoned} requests still in flight at the stop were not counted")
    unsent = sum(int(i.get("unsent", 0)) for i in infos)
    if unsent:
        cut_short = any(i.get("unsent_counted") is False for i in infos)
        notes.append(
            f"{'at least ' if cut_short else ''}{unsent:,} requests came due but were never "
            "sent (the load generator fell behind its schedule): counted as dropped"
        )
    for index, info in enumerate(infos):
        lead_ns = int(info.get("spool_lead_ns", 0))
        short = int(info.get("spool_lead_short", 0))
        if short:
            notes.append(
                f"worker {index} built {int(info.get('spooled', 0)):,} templates "
                f"({lead_ns / 1e9:.1f} s, the most it builds before sending), {short:,} fewer "
                "than it reckons it needs to stay ahead of its schedule: this machine builds "
                "too slowly for this run, which may fall behind (see the templates built late, "
                "the send lag and the dropped requests); --build-first builds them all before "
                "sending"
            )
        elif lead_ns:
            reason = (
                "as --build-first asks"
                if plan.build_first
                else "on this machine, building the rest behind its sends would not have kept "
                "ahead of its schedule"
            )
            notes.append(
                f"worker {index} built {int(info.get('spooled', 0)):,} templates "
                f"({lead_ns / 1e9:.1f} s) before sending: {reason}"
            )
    late = sum(int(info.get("built_late", 0)) for info in infos)
    if late:
        notes.append(
            f"the spool was built slower than the schedule: {late:,} requests were built "
            "by the sending core when needed instead of ahead (see the send lag)"
        )
    at_limit = aggregate.whole().dropped() - unsent
    if at_limit > 0:
        notes.append(
            f"{at_limit:,} requests were dropped because they came due while a worker had "
            f"--max-inflight requests outstanding ({plan.max_inflight:,} in all): a slow "
            "target, or too few connections for its latency"
        )
    notes += [n for i, info in enumerate(infos) if (n := core_wait_note(i, info)) is not None]
    stolen = steal_note(infos)
    if stolen is not None:
        notes.append(stolen)
    for index, info in enumerate(infos):
        why = info.get("spool_error")
        if why:
            notes.append(
                f"worker {index}: {why}; it decoded and built every request as it sent "
                "it instead (more CPU per request)"
            )
    return notes


def probes_skipped(visibility: VisibilityAggregate, infos: Sequence[Info]) -> list[str]:
    """Count the visibility probes the workers did not start; a note if there were any."""
    visibility.skipped = sum(int(i.get("probes_skipped", 0)) for i in infos)
    if not visibility.skipped:
        return []
    return [
        f"{visibility.skipped:,} visibility probes were not started: each "
        f"worker polls at most {MAX_PENDING} traces at once"
    ]


def assemble_results(
    plan: RunPlan,
    target: RunTarget,
    aggregate: RunAggregate,
    verdicts: list[Verdict],
    notes: list[str],
    *,
    started_at: str,
    start_late_ns: int,
    scenarios: ScenarioAggregates | None,
    scraper: TargetScraper | None,
    visibility: VisibilityAggregate | None,
) -> dict[str, Any]:
    """The results document: the run's metadata and aggregate, then its scenarios, target
    scrape and visibility probes when the run had them."""
    meta = RunMeta(
        corpus=plan.corpus_label,
        target=target.url,
        model=plan.model,
        scale=plan.scale,
        speed=plan.speed,
        rate=plan.rate if plan.model == "rate" else None,
        workers=plan.workers,
        started=started_at,
        ended=iso(time.time_ns()),
        version=package_version(),
        host_cores=os.cpu_count() or 1,
        command_line=plan.command_line,
        notes=notes,
        segment=None if plan.segment.whole else str(plan.segment),
        start_at=None if plan.start_at_ns is None else iso(plan.start_at_ns),
        start_late_ms=None if plan.start_at_ns is None else start_late_ns / 1e6,
    )
    results = build_results(aggregate, meta, verdicts)
    if scenarios is not None:
        from replay.scenario_results import add_scenarios

        add_scenarios(results, scenarios)
    if scraper is not None:
        results["scrape"] = scraper.results()
    if visibility is not None:
        visibility.add_to_results(results)
    return results


def write_and_show(
    plan: RunPlan,
    results: dict[str, Any],
    failure: str | None,
    stdout: TextIO,
    stderr: TextIO,
) -> None:
    """Write the results file (--out), the summary to stdout, and a failure to stderr."""
    if plan.out:
        write_results(plan.out, results)
    stdout.write(render_summary(results))
    stdout.flush()
    if failure:
        stderr.write(f"replay: {failure}\n")
        if plan.out:
            stderr.write(f"replay: partial results written to {plan.out}\n")


def exit_status(
    verdicts: list[Verdict], *, interrupted: bool, failure: str | None, failure_code: int
) -> int:
    """Ctrl-C first, then a failure's own status, then the thresholds' verdict."""
    if interrupted:
        return EXIT_INTERRUPTED
    if failure:
        return failure_code
    return thresholds.exit_status(verdicts)
