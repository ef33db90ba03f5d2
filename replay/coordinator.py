"""The coordinator: spawn the workers, start them together, gather deltas, report, finish.

Each worker is a clean interpreter (`python -m replay.worker`) with a control and a data
pipe (messages: replay/protocol.py). Once every worker is ready, all get one start instant
on CLOCK_MONOTONIC, so every schedule runs on the same clock. Ctrl-C, an abort or a dead
worker stop the others; what ran is written either way, and nothing waits forever: every
wait has a deadline, after which workers are killed.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import sys
import time
from types import FrameType
from typing import TYPE_CHECKING, Any, TextIO

import msgpack

from capture.errors import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_INTERRUPTED
from capture.units import NS
from replay import protocol, thresholds
from replay.aggregate import RunAggregate
from replay.plan import RunPlan
from replay.protocol import LoadStage
from replay.recorder import read_delta
from replay.run_end import assemble_results, exit_status, probes_skipped, run_notes, write_and_show
from replay.run_start import RunFailed, iso, serve_metrics, start_instant
from replay.summary import render_progress
from replay.target import RunTarget
from replay.visibility import VisibilityAggregate
from replay.workers import WorkerProc, death_message, reap, spawn_worker, worker_config

if TYPE_CHECKING:
    from replay.live import LiveMetrics, MetricsServer
    from replay.prespawn import Prespawned
    from replay.scenario_results import ScenarioAggregates
    from replay.scrape import TargetScraper

READY_TIMEOUT_S = 120.0  # a loading worker silent this long (no "loading" message) is stuck
LOADING_SAID: dict[LoadStage, str] = {"read": "", "spool": "building templates: "}
STOP_TIMEOUT_S = 8.0  # after `stop`, how long workers get to say done before being killed


class Coordinator:
    def __init__(
        self,
        plan: RunPlan,
        target: RunTarget,
        *,
        stdout: TextIO | None = None,
        stderr: TextIO | None = None,
        prespawned: Prespawned | None = None,
    ) -> None:
        self.plan = plan
        self.prespawned = prespawned  # workers already importing: taken over by _spawn
        self.target = target
        self.stdout = stdout or sys.stdout
        self.stderr = stderr or sys.stderr
        self.aggregate = RunAggregate()
        self.procs: list[WorkerProc] = []
        self.selector: selectors.BaseSelector = selectors.DefaultSelector()
        self.packer = msgpack.Packer(use_bin_type=True)
        self.nonce = int.from_bytes(os.urandom(8), "big") >> 1  # msgpack: int64
        self.interrupted = False
        self.aborted: str | None = None  # why the run stopped early (threshold, failure)
        self.failure: str | None = None
        self.failure_code = EXIT_FAILED
        self.stop_sent = False
        self.start_ns = 0
        self.started_at = ""
        self.start_late_ns = 0  # --start-at: how much later than it this segment started
        self.paced_until_ns = 0
        self.notes: list[str] = []
        self.live: LiveMetrics | None = None
        self.scraper: TargetScraper | None = None
        self.visibility: VisibilityAggregate | None = None
        self.metrics_server: MetricsServer | None = None
        self.scenarios: ScenarioAggregates | None = None
        if plan.scenarios:
            from replay.scenario_results import ScenarioAggregates, scenario_meta

            self.scenarios = ScenarioAggregates(scenario_meta(plan.scenarios, plan.duration_ns))

    # --- processes -----------------------------------------------------------------------

    def _spawn(self) -> None:
        if self.prespawned is not None:
            self.selector.close()
            self.procs, self.selector = self.prespawned.take()
        for w in range(self.plan.workers):
            if w < len(self.procs):
                proc = self.procs[w]
                proc.heard = time.monotonic()  # (its wait for the target was not loading)
            else:
                proc = spawn_worker(w, self.selector)
                self.procs.append(proc)
            self._send(proc, worker_config(self.plan, self.target, w, self.nonce).to_wire())

    def _send(self, proc: WorkerProc, message: Any) -> None:
        with contextlib.suppress(OSError):  # if it died, its data pipe will say so
            os.write(proc.control, self.packer.pack(message))

    def _pump(self, timeout: float) -> None:
        """Wait up to `timeout` for worker output and handle all of it."""
        for key, _mask in self.selector.select(timeout):
            kind, proc = key.data
            fd = key.fd
            try:
                chunk = os.read(fd, 1 << 20)
            except BlockingIOError:
                continue
            except OSError:
                chunk = b""
            if kind == "stderr":
                if chunk:
                    proc.stderr_tail += chunk
                    del proc.stderr_tail[:-4096]
                else:
                    self.selector.unregister(fd)
                continue
            if not chunk:
                self.selector.unregister(fd)
                self._lost(proc)
                continue
            proc.unpacker.feed(chunk)
            for message in proc.unpacker:
                self._handle(proc, message)

    def _handle(self, proc: WorkerProc, raw: Any) -> None:
        try:
            message = protocol.from_worker(raw)
        except protocol.ProtocolError as exc:
            self._fail(f"worker {proc.index}: {exc}", EXIT_FAILED)
            return
        if isinstance(message, protocol.Delta):  # one interval: its folds' recorder deltas
            for payload in message.folds:
                if self.scenarios is not None:
                    delta = self.scenarios.add(payload, self.aggregate)
                    if self.live is not None:
                        self.live.add(delta, delta.scenario or "")
                        self.live.vus = self.scenarios.latest_vus()
                    continue
                if self.live is None:
                    self.aggregate.add(payload)
                else:  # read once, for both
                    decoded = read_delta(payload)
                    self.aggregate.add(decoded)
                    self.live.add(decoded)
            # Merge the folds' histograms now (interval_series merges what it reads), so an
            # interval keeps one part per series and metric, not one per fold.
            self.aggregate.interval_series(message.interval)
        elif isinstance(message, protocol.Probes):
            if self.visibility is None:
                self.visibility = VisibilityAggregate()
            try:
                self.visibility.add(message.ended)
            except ValueError as exc:
                self._fail(f"worker {proc.index}: {exc}", EXIT_FAILED)
        elif isinstance(message, protocol.Loading):  # a long corpus: still reading it
            proc.heard = time.monotonic()
            stage = protocol.LOAD_STAGES.index(message.stage)
            proc.loaded = (stage, message.read, message.records)
        elif isinstance(message, protocol.Ready):
            proc.state = "ready"
            proc.info = dict(message.info)
        elif isinstance(message, protocol.Done):
            proc.state = "done"
            proc.info.update(message.info)
            self.aggregate.retire(proc.index)
            if self.live is not None:
                self.live.retire(proc.index)
        else:
            proc.state = "failed"
            self.aggregate.retire(proc.index)
            code = EXIT_BAD_INPUT if message.kind in ("corpus", "target") else EXIT_FAILED
            text = message.text
            self._fail(f"worker {proc.index}: {text}" if message.kind == "internal" else text, code)

    def _lost(self, proc: WorkerProc) -> None:
        """The data pipe closed: fine after done, a death otherwise."""
        if proc.state in ("done", "failed"):
            return
        proc.state = "dead"
        self.aggregate.retire(proc.index)
        self._fail(death_message(proc), EXIT_FAILED)

    def _fail(self, message: str, code: int) -> None:
        if self.failure is None:
            self.failure, self.failure_code = message, code
        self._stop_all()

    def _stop_all(self) -> None:
        if self.stop_sent:
            return
        self.stop_sent = True
        self.paced_until_ns = self.paced_until_ns or time.monotonic_ns()
        for proc in self.procs:
            if proc.live:
                self._send(proc, protocol.Stop().encode())

    # --- the run -------------------------------------------------------------------------

    def _on_sigint(self, _signum: int, _frame: FrameType | None) -> None:
        if self.interrupted:  # a second Ctrl-C: no more waiting
            for proc in self.procs:
                if proc.popen.poll() is None:
                    proc.popen.kill()
        self.interrupted = True

    def run(self) -> int:
        """The whole run; returns the exit status. Raises RunFailed before the start."""
        self._serve_metrics()
        previous = signal.signal(signal.SIGINT, self._on_sigint)
        try:
            self._spawn()
            self._barrier()
            self._gather()
        finally:
            reap(self.procs, self.selector)
            signal.signal(signal.SIGINT, previous)
        try:
            return self._finish()
        finally:
            if self.metrics_server is not None:
                self.metrics_server.close()

    def _serve_metrics(self) -> None:
        """--metrics-port: live metrics from before the workers start."""
        served = serve_metrics(self.plan, self.stderr)
        if served is not None:
            self.live, self.metrics_server = served

    def _barrier(self) -> None:
        """Wait for every worker's `ready`: as long as each loading worker keeps saying how
        far it has read (a corpus of tens of millions of records takes minutes), showing it."""
        shown = time.monotonic()
        while any(p.state == "loading" for p in self.procs):
            if self.failure is not None:
                raise RunFailed(self.failure, self.failure_code)
            if self.interrupted:
                raise RunFailed("interrupted before the start", EXIT_INTERRUPTED)
            now = time.monotonic()
            loading = [p for p in self.procs if p.state == "loading"]
            if any(now - p.heard > READY_TIMEOUT_S for p in loading):
                raise RunFailed(
                    f"workers not ready: silent for {READY_TIMEOUT_S:.0f}s while loading",
                    EXIT_FAILED,
                )
            if self.plan.progress and now - shown >= 1 and any(p.loaded[2] for p in loading):
                shown = now
                stage, read, _ = min(p.loaded for p in loading)  # the furthest behind
                total = max(p.loaded[2] for p in loading)
                doing = LOADING_SAID[protocol.LOAD_STAGES[stage]]
                self.stderr.write(f"replay loading: {doing}{read:,} of {total:,} records read\n")
                self.stderr.flush()
            self._pump(0.1)
        if self.failure is not None:
            raise RunFailed(self.failure, self.failure_code)
        spooled = sum(int(p.info.get("spooled", 0)) for p in self.procs)
        if spooled and self.plan.progress:
            size = sum(int(p.info.get("spool_bytes", 0)) for p in self.procs)
            where = sorted({str(p.info["spool_dir"]) for p in self.procs if p.info.get("spooled")})
            self.stderr.write(
                f"replay loading: {spooled:,} templates spooled to {', '.join(where)} "
                f"({size / 1e6:,.1f} MB, removed when the workers exit)\n"
            )
        self.start_ns, wall_ns, self.start_late_ns = start_instant(self.plan, self.stderr)
        self.started_at = iso(wall_ns)
        if self.plan.scrape:
            from replay.scrape import TargetScraper

            self.scraper = TargetScraper(
                self.plan.scrape, self.plan.scrape_metrics, self.plan.scrape_interval_s
            )
            self.scraper.start(self.start_ns)
        for proc in self.procs:
            proc.state = "running"
            self._send(proc, protocol.Start(self.start_ns, wall_ns).encode())

    def _gather(self) -> None:
        plan = self.plan
        end = self.start_ns + plan.duration_ns
        hard_end = end + plan.timeout_ns + 15 * NS  # past this, workers are hung
        if plan.visibility_probe:  # workers wait for their last probes
            hard_end += plan.visibility_timeout_ns + 2 * NS
        stop_deadline: float | None = None
        tty = self.stderr.isatty()
        next_progress = self.start_ns + NS + NS // 5
        shown = 0.0
        while any(p.live for p in self.procs):
            now = time.monotonic_ns()
            if self.interrupted and not self.stop_sent:
                self._stop_all()
            if self.stop_sent and stop_deadline is None:
                stop_deadline = time.monotonic() + STOP_TIMEOUT_S
            if (stop_deadline is not None and time.monotonic() > stop_deadline) or now > hard_end:
                self._kill_stuck()
                break
            self._pump(max(0.0, min(0.1, (next_progress - now) / NS)))
            now = time.monotonic_ns()
            if now >= next_progress:
                next_progress += NS
                shown = self._progress(shown, tty)
        if not self.paced_until_ns:
            self.paced_until_ns = min(time.monotonic_ns(), end)
        if plan.progress and tty:
            self.stderr.write("\n")
            self.stderr.flush()

    def _kill_stuck(self) -> None:
        for proc in self.procs:
            if proc.live:
                proc.state = "dead"
                self.aggregate.retire(proc.index)
                proc.popen.kill()
                if self.failure is None and not self.interrupted:
                    self.failure = f"worker {proc.index} (pid {proc.popen.pid}) did not finish"

    def _progress(self, shown: float, tty: bool) -> float:
        """One line per completed interval: overwritten on a terminal, appended otherwise."""
        snapshot = self.aggregate.latest()
        if snapshot.elapsed_s <= shown or snapshot.elapsed_s <= 0:
            return shown
        self._check_thresholds(snapshot.interval.index)
        if self.plan.progress:
            line = render_progress(snapshot, self.plan.duration_ns / NS, tty)
            self.stderr.write(f"\r{line}\x1b[K" if tty else f"{line}\n")
            self.stderr.flush()
        return float(snapshot.elapsed_s)

    def _check_thresholds(self, k: int) -> None:
        """--abort-on-fail: judge what interval k decided; stop at the first failure."""
        if not (self.plan.abort_on_fail and self.plan.thresholds) or self.stop_sent:
            return
        scenarios = self.scenarios.aggregates if self.scenarios is not None else None
        judged = thresholds.evaluate_interval(
            list(self.plan.thresholds), self.aggregate, k, scenarios
        )
        for verdict in judged:
            if not verdict.ok:
                self.aborted = f"threshold {verdict.threshold} failed after {k + 1}s"
                self._stop_all()
                return

    def _finish(self) -> int:
        plan = self.plan
        paced_s = max((self.paced_until_ns - self.start_ns) / NS, 0.001)
        self.aggregate.set_duration(min(paced_s, plan.duration_ns / NS))
        infos = [p.info for p in self.procs]
        notes = self.notes + run_notes(
            plan,
            self.target,
            self.aggregate,
            infos,
            interrupted=self.interrupted,
            aborted=self.aborted,
            failure=self.failure,
        )
        if self.scraper is not None:
            self.scraper.stop()
            notes.extend(self.scraper.notes())
        if plan.visibility_probe and self.visibility is None:
            self.visibility = VisibilityAggregate()  # probing, and nothing was acknowledged
        if self.visibility is not None:
            notes.extend(probes_skipped(self.visibility, infos))
        scen = self.scenarios
        if scen is not None:
            scen.set_durations(self.aggregate.duration_s)
        verdicts = thresholds.evaluate(
            list(plan.thresholds),
            self.aggregate,
            scen.aggregates if scen is not None else None,
            visibility=self.visibility,
        )
        results = assemble_results(
            plan,
            self.target,
            self.aggregate,
            verdicts,
            notes,
            started_at=self.started_at,
            start_late_ns=self.start_late_ns,
            scenarios=scen,
            scraper=self.scraper,
            visibility=self.visibility,
        )
        write_and_show(plan, results, self.failure, self.stdout, self.stderr)
        return exit_status(
            verdicts,
            interrupted=self.interrupted,
            failure=self.failure,
            failure_code=self.failure_code,
        )
