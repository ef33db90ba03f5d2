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
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from types import FrameType
from typing import TYPE_CHECKING, Any, TextIO

import msgpack

from capture.errors import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_INTERRUPTED
from capture.units import NS
from replay import protocol, thresholds
from replay.aggregate import RunAggregate
from replay.config import WorkerConfig
from replay.plan import RunPlan
from replay.probe import MAX_PENDING
from replay.protocol import LoadStage
from replay.recorder import read_delta
from replay.results import RunMeta, build_results, write_results
from replay.segments import share
from replay.summary import render_progress, render_summary
from replay.target import RunTarget
from replay.visibility import VisibilityAggregate

if TYPE_CHECKING:
    from replay.live import LiveMetrics, MetricsServer
    from replay.scenario_results import ScenarioAggregates
    from replay.scrape import TargetScraper

START_MARGIN_NS = 250_000_000
START_AT_MARGIN_NS = 50_000_000  # --start-at: the least time the workers get to hear it
READY_TIMEOUT_S = 120.0  # a loading worker silent this long (no "loading" message) is stuck
LOADING_SAID: dict[LoadStage, str] = {"read": "", "spool": "building templates: "}
STOP_TIMEOUT_S = 8.0  # after `stop`, how long workers get to say done before being killed


@dataclass
class _Proc:
    index: int
    popen: subprocess.Popen[bytes]
    control: int  # fd: coordinator -> worker
    data: int  # fd: worker -> coordinator
    unpacker: msgpack.Unpacker = field(default_factory=lambda: msgpack.Unpacker(raw=False))
    stderr_tail: bytearray = field(default_factory=bytearray)
    state: str = "loading"  # loading, ready, running, done, failed, dead
    info: dict[str, Any] = field(default_factory=dict)
    heard: float = field(default_factory=time.monotonic)  # its last message while loading
    loaded: tuple[int, int, int] = (0, 0, 0)  # (stage, records read, of), while loading

    @property
    def live(self) -> bool:
        return self.state in ("loading", "ready", "running")


class RunFailed(Exception):
    """The run could not start (exit 2) or a worker failed before the start."""

    def __init__(self, message: str, code: int = EXIT_BAD_INPUT) -> None:
        super().__init__(message)
        self.code = code


class Coordinator:
    def __init__(
        self,
        plan: RunPlan,
        target: RunTarget,
        *,
        stdout: TextIO | None = None,
        stderr: TextIO | None = None,
    ) -> None:
        self.plan = plan
        self.target = target
        self.stdout = stdout or sys.stdout
        self.stderr = stderr or sys.stderr
        self.aggregate = RunAggregate()
        self.procs: list[_Proc] = []
        self.selector = selectors.DefaultSelector()
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
        plan = self.plan
        for w in range(plan.workers):
            control_r, control_w = os.pipe()
            data_r, data_w = os.pipe()
            env = dict(os.environ)
            env.pop("PYTHONSTARTUP", None)
            popen = subprocess.Popen(
                [sys.executable, "-m", "replay.worker", str(control_r), str(data_w)],
                pass_fds=(control_r, data_w),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                env=env,
            )
            os.close(control_r)
            os.close(data_w)
            os.set_blocking(data_r, False)
            proc = _Proc(w, popen, control_w, data_r)
            self.procs.append(proc)
            self.selector.register(data_r, selectors.EVENT_READ, ("data", proc))
            assert popen.stderr is not None
            os.set_blocking(popen.stderr.fileno(), False)
            self.selector.register(popen.stderr.fileno(), selectors.EVENT_READ, ("stderr", proc))
            self._send(proc, self._config(w).to_wire())

    def _config(self, w: int) -> WorkerConfig:
        plan, target = self.plan, self.target
        seg = plan.segment
        cfg = WorkerConfig(
            worker=w,
            workers=plan.workers,
            corpus=plan.corpus,
            target=target.url,
            api_key=target.api_key,
            project_id=target.project_id,
            model=plan.model,
            duration_ns=plan.duration_ns,
            nonce=self.nonce,
            seed=plan.seed,
            scale=plan.scale,
            speed=plan.speed,
            rate=plan.rate,
            arrival=plan.arrival,
            stages=list(plan.stages),
            vus=share(plan.vus, seg.index, seg.count, w, plan.workers),
            think_ns=plan.think_ns,
            max_inflight=max(1, share(plan.max_inflight, seg.index, seg.count, w, plan.workers)),
            timeout_ns=plan.timeout_ns,
            user_agent=f"agenttrace-replay/{_version()}",
            spool_dir=plan.spool_dir,
            visibility_probe=plan.visibility_probe,
            visibility_timeout_ns=plan.visibility_timeout_ns,
            segment=seg.index,
            segments=seg.count,
        )
        if plan.scenarios:
            from replay.scenario_plan import with_lanes

            return with_lanes(cfg, plan)
        return cfg

    def _send(self, proc: _Proc, message: Any) -> None:
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

    def _handle(self, proc: _Proc, raw: Any) -> None:
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
                self.aggregate.add(payload)
                if self.live is not None:
                    self.live.add(read_delta(payload))
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

    def _lost(self, proc: _Proc) -> None:
        """The data pipe closed: fine after done, a death otherwise."""
        if proc.state in ("done", "failed"):
            return
        proc.state = "dead"
        self.aggregate.retire(proc.index)
        try:
            code = proc.popen.wait(timeout=2)
        except subprocess.TimeoutExpired:
            code = None
        how = _exit_description(code)
        tail = _last_line(proc.stderr_tail)
        detail = f": {tail}" if tail else ""
        self._fail(f"worker {proc.index} (pid {proc.popen.pid}) died ({how}){detail}", EXIT_FAILED)

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

    def _reap(self) -> None:
        """Make sure no worker outlives the run."""
        for proc in self.procs:
            if proc.popen.poll() is None:
                proc.popen.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.popen.wait(timeout=5)
            for fd in (proc.control, proc.data):
                with contextlib.suppress(OSError):
                    os.close(fd)
            if proc.popen.stderr is not None:
                proc.popen.stderr.close()
        self.selector.close()

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
            self._reap()
            signal.signal(signal.SIGINT, previous)
        try:
            return self._finish()
        finally:
            if self.metrics_server is not None:
                self.metrics_server.close()

    def _serve_metrics(self) -> None:
        """--metrics-port: live metrics from before the workers start (RunFailed if the
        address cannot be bound)."""
        plan = self.plan
        if plan.metrics_listen is None:
            return
        from replay.live import LiveMetrics, MetricsServer

        self.live = LiveMetrics(str(plan.segment), vus=plan.vus)
        host, port = plan.metrics_listen
        try:
            self.metrics_server = MetricsServer(self.live, host, port)
        except OSError as exc:
            raise RunFailed(f"--metrics-port {host}:{port}: {exc.strerror or exc}") from None
        if plan.progress:
            self.stderr.write(f"replay: live metrics at {self.metrics_server.url}\n")
            self.stderr.flush()

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
        self.start_ns, wall_ns = self._start_instant()
        self.started_at = _iso(wall_ns)
        if self.plan.scrape:
            from replay.scrape import TargetScraper

            self.scraper = TargetScraper(
                self.plan.scrape, self.plan.scrape_metrics, self.plan.scrape_interval_s
            )
            self.scraper.start(self.start_ns)
        for proc in self.procs:
            proc.state = "running"
            self._send(proc, protocol.Start(self.start_ns, wall_ns).encode())

    def _start_instant(self) -> tuple[int, int]:
        """(monotonic, wall) ns of the start: START_MARGIN_NS from now, or --start-at when
        given (a segment ready within --max-start-skew after it starts that late; later, it
        refuses rather than skew the run). Wall and monotonic clocks are read together."""
        plan = self.plan
        mono, wall = time.monotonic_ns(), time.time_ns()
        if plan.start_at_ns is None:
            return mono + START_MARGIN_NS, wall + START_MARGIN_NS
        earliest = wall + START_AT_MARGIN_NS
        late = earliest - plan.start_at_ns
        if late > plan.max_start_skew_ns:
            raise RunFailed(
                f"ready at {_iso(wall)}, {late / NS:.3f}s after --start-at {_iso(plan.start_at_ns)}"
                f" (more than --max-start-skew {plan.max_start_skew_ns / NS:g}s): not starting "
                "a skewed segment; give a later --start-at",
                EXIT_BAD_INPUT,
            )
        self.start_late_ns = max(late, 0)
        start_wall = max(plan.start_at_ns, earliest)
        if plan.progress and start_wall - wall > NS:
            self.stderr.write(
                f"replay: ready; starting at {_iso(start_wall)} "
                f"(--start-at, in {(start_wall - wall) / NS:,.1f}s)\n"
            )
            self.stderr.flush()
        return mono + (start_wall - wall), start_wall

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
        notes = list(self.notes)
        if self.target.embedded:
            notes.append("target: the embedded sandbox (started for this run, stopped after it)")
        if self.interrupted:
            notes.append("interrupted (Ctrl-C or SIGTERM): results cover what ran")
        if self.aborted:
            notes.append(f"stopped early: {self.aborted}")
        if self.failure:
            notes.append(f"failed: {self.failure}; results are partial")
        abandoned = sum(int(p.info.get("abandoned", 0)) for p in self.procs)
        if abandoned:
            notes.append(f"{abandoned} requests still in flight at the stop were not counted")
        unsent = sum(int(p.info.get("unsent", 0)) for p in self.procs)
        if unsent:
            cut_short = any(p.info.get("unsent_counted") is False for p in self.procs)
            notes.append(
                f"{'at least ' if cut_short else ''}{unsent:,} requests came due but were never "
                "sent (the load generator fell behind its schedule): counted as dropped"
            )
        late = sum(int(p.info.get("built_late", 0)) for p in self.procs)
        if late:
            notes.append(
                f"the spool was built slower than the schedule: {late:,} requests were built "
                "by the sending core when needed instead of ahead (see the send lag)"
            )
        at_limit = self.aggregate.whole().dropped() - unsent
        if at_limit > 0:
            notes.append(
                f"{at_limit:,} requests were dropped because they came due while a worker had "
                f"--max-inflight requests outstanding ({plan.max_inflight:,} in all): a slow "
                "target, or too few connections for its latency"
            )
        for p in self.procs:
            why = p.info.get("spool_error")
            if why:
                notes.append(
                    f"worker {p.index}: {why}; it decoded and built every request as it sent "
                    "it instead (more CPU per request)"
                )
        if self.scraper is not None:
            self.scraper.stop()
            notes.extend(self.scraper.notes())
        if plan.visibility_probe and self.visibility is None:
            self.visibility = VisibilityAggregate()  # probing, and nothing was acknowledged
        if self.visibility is not None:
            self.visibility.skipped = sum(int(p.info.get("probes_skipped", 0)) for p in self.procs)
            if self.visibility.skipped:
                notes.append(
                    f"{self.visibility.skipped:,} visibility probes were not started: each "
                    f"worker polls at most {MAX_PENDING} traces at once"
                )
        scen = self.scenarios
        if scen is not None:
            scen.set_durations(self.aggregate.duration_s)
        verdicts = thresholds.evaluate(
            list(plan.thresholds),
            self.aggregate,
            scen.aggregates if scen is not None else None,
            visibility=self.visibility,
        )
        meta = RunMeta(
            corpus=plan.corpus_label,
            target=self.target.url,
            model=plan.model,
            scale=plan.scale,
            speed=plan.speed,
            rate=plan.rate if plan.model == "rate" else None,
            workers=plan.workers,
            started=self.started_at,
            ended=_iso(time.time_ns()),
            version=_version(),
            host_cores=os.cpu_count() or 1,
            command_line=plan.command_line,
            notes=notes,
            segment=None if plan.segment.whole else str(plan.segment),
            start_at=None if plan.start_at_ns is None else _iso(plan.start_at_ns),
            start_late_ms=None if plan.start_at_ns is None else self.start_late_ns / 1e6,
        )
        results = build_results(self.aggregate, meta, verdicts)
        if scen is not None:
            from replay.scenario_results import add_scenarios

            add_scenarios(results, scen)
        if self.scraper is not None:
            results["scrape"] = self.scraper.results()
        if self.visibility is not None:
            self.visibility.add_to_results(results)
        if plan.out:
            write_results(plan.out, results)
        self.stdout.write(render_summary(results))
        self.stdout.flush()
        if self.failure:
            self.stderr.write(f"replay: {self.failure}\n")
            if plan.out:
                self.stderr.write(f"replay: partial results written to {plan.out}\n")
        if self.interrupted:
            return EXIT_INTERRUPTED
        if self.failure:
            return self.failure_code
        return thresholds.exit_status(verdicts)


def _exit_description(code: int | None) -> str:
    if code is None:
        return "still running, killed"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"killed by {name}"
    return f"exit status {code}"


def _last_line(data: bytes | bytearray) -> str:
    lines = [ln for ln in data.decode("utf-8", "replace").splitlines() if ln.strip()]
    return lines[-1].strip() if lines else ""


def _iso(wall_ns: int) -> str:
    moment = datetime.fromtimestamp(wall_ns / NS, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _version() -> str:
    try:
        return version("agenttrace-loadtools")
    except PackageNotFoundError:
        return "unknown"
