"""`planner sweep` without a network: the ladder, the runner with a fake system (resume,
interrupts, failures), one step's window, the scale command and readiness, bad input.

Network traffic here goes only to 127.0.0.1: a small HTTP server thread for readiness and
as a --target that the sweep reaches with one TCP connect before the scale command fails.
"""

from __future__ import annotations

import http.server
import json
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest
from click.testing import CliRunner

from planner.cli import main
from planner.errors import InputError
from planner.ladder import HINTED_FACTOR, Ladder, hinted_start
from planner.scaling import ScaleError, check_command, command_for, run_scale_command, wait_ready
from planner.stepper import measure_window
from planner.sweep import (
    Measurement,
    StepFailed,
    SweepConfig,
    SweepError,
    SweepInterrupted,
    run_sweep,
)
from planner.sweep_format import Slo, Step, load_sweep, write_sweep

T, F = True, False

# ----------------------------------------------------------------------------- the ladder

LADDER_CASES = [
    # (history, next rate): Ladder(start=50), factor 2, precision 5%
    ([], 50.0),  # no step yet: the start rate
    ([(50, T)], 100.0),  # a pass ramps up by the factor
    ([(50, T), (100, T)], 200.0),  # ... and again
    ([(50, T), (100, T), (200, F)], 150.0),  # the first failure: bisect between pass and fail
    ([(50, T), (100, T), (200, F), (150, F)], 125.0),  # a lower failure narrows from above
    ([(50, T), (100, T), (200, F), (150, T)], 175.0),  # a higher pass narrows from below
    ([(100, T), (104, F)], None),  # bracket within 5%: done
    ([(100, T), (105, F)], None),  # exactly 5%: done
    ([(100, T), (106, F)], 103.0),  # just over 5%: one more bisection
    ([(50, F)], 25.0),  # the start fails: ramp down by the factor
    ([(50, F), (25, F)], 12.5),  # ... and again
    ([(50, F), (25, T)], 37.5),  # a pass below the failure: bisect
    ([(100, T), (200, F), (150, F), (175, T)], 125.0),  # a pass above a failure (noise) is ignored
    ([(200, F), (100, T), (150, T)], 175.0),  # order does not matter, only the verdicts
    ([(float(r), T) for r in range(1, 13)], None),  # 12 steps: the budget is spent
]


@pytest.mark.parametrize(("history", "expected"), LADDER_CASES)
def test_ladder_next_rate(history: list[tuple[float, bool]], expected: float | None) -> None:
    got = Ladder(start=50.0).next_rate(history)
    assert got == pytest.approx(expected) if expected is not None else got is None


BOUNDED_CASES = [
    # (ladder, history, next rate)
    (Ladder(start=50, max_rate=120), [(50, T)], 100.0),  # below the cap: as usual
    (Ladder(start=50, max_rate=120), [(50, T), (100, T)], 120.0),  # the ramp stops at the cap
    (Ladder(start=50, max_rate=120), [(50, T), (100, T), (120, T)], None),  # the cap passed
    (Ladder(start=500, max_rate=120), [], 120.0),  # a start above the cap starts at the cap
    (Ladder(start=4, min_rate=1), [(4, F)], 2.0),  # ramping down ...
    (Ladder(start=4, min_rate=1), [(4, F), (2, F)], 1.0),  # ... to the floor
    (Ladder(start=4, min_rate=1), [(4, F), (2, F), (1, F)], None),  # nothing met the SLO
    (Ladder(start=0.5, min_rate=1), [], 1.0),  # a start below the floor starts at the floor
    (Ladder(start=170, factor=HINTED_FACTOR), [(170, T)], 212.5),  # hinted: a finer ramp
    (Ladder(start=50, precision=0.1), [(100, T), (109, F)], None),  # a looser precision stops
    (Ladder(start=50, max_steps=2), [(50, T), (100, F)], None),  # a smaller budget
]


@pytest.mark.parametrize(("ladder", "history", "expected"), BOUNDED_CASES)
def test_ladder_bounds(
    ladder: Ladder, history: list[tuple[float, bool]], expected: float | None
) -> None:
    got = ladder.next_rate(history)
    assert got == pytest.approx(expected) if expected is not None else got is None


@pytest.mark.parametrize(
    ("measured", "pods", "expected"),
    [
        ([], 2, None),  # nothing measured: a blind start
        ([(1, 100.0)], 2, 170.0),  # 85% of linear scaling from 1 pod
        ([(1, 100.0), (2, 190.0)], 4, 323.0),  # from the nearest count below
        ([(4, 340.0)], 2, 144.5),  # only a count above: 85% of its per-pod share
        ([(2, 190.0), (8, 570.0)], 4, 323.0),  # a count below is preferred to one above
        ([(3, 0.0)], 4, None),  # no capacity there to scale from
    ],
)
def test_hinted_start(measured: list[tuple[int, float]], pods: int, expected: float | None) -> None:
    got = hinted_start(measured, pods)
    assert got == pytest.approx(expected) if expected is not None else got is None


@pytest.mark.parametrize(
    "kwargs",
    [
        {"start": 0},
        {"start": 1, "factor": 1.0},
        {"start": 1, "precision": 0},
        {"start": 1, "max_steps": 0},
    ],
)
def test_ladder_refuses_nonsense(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        Ladder(**kwargs)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- the runner


@dataclass
class FakeSystem:
    """A deployment whose SLO holds up to ``capacity[pods]``; records what it was asked."""

    capacity: dict[int, float]
    out: Path | None = None
    interrupt_at: int | None = None  # raise KeyboardInterrupt at this measurement (1-based)
    fail_scale_at: int | None = None
    pods: int = 0
    scaled: list[int] = field(default_factory=list)
    rates: list[tuple[int, float]] = field(default_factory=list)
    steps_on_disk: list[int] = field(default_factory=list)

    def scale(self, pods: int) -> None:
        self.scaled.append(pods)
        if pods == self.fail_scale_at:
            raise ScaleError(f"--scale-cmd for {pods} pods exited with status 1: quota")
        self.pods = pods

    def measure(self, rate: float) -> Measurement:
        if self.out is not None and self.out.exists():
            self.steps_on_disk.append(sum(len(p.steps) for p in load_sweep(self.out).points))
        self.rates.append((self.pods, rate))
        if len(self.rates) == self.interrupt_at:
            raise KeyboardInterrupt
        cap = self.capacity[self.pods]
        ok = rate <= cap
        step = Step(
            offered_rps=rate,
            achieved_rps=rate if ok else cap,
            p50_ms=5.0,
            p95_ms=20.0,
            p99_ms=40.0 if ok else 400.0,
            errors=0,
            dropped=0,
            requests=round(rate * 6),
            duration_s=6.0,
        )
        return Measurement(step, None)


CAPACITY = {1: 100.0, 2: 190.0, 3: 270.0, 4: 344.0}


def config(tmp_path: Path, pods: tuple[int, ...] = (1, 2, 3, 4), **kw: object) -> SweepConfig:
    base = SweepConfig(pods=pods, out=tmp_path / "sweep.json", target="http://127.0.0.1:9")
    return replace(base, **kw)  # type: ignore[arg-type]


def test_sweep_brackets_every_capacity_within_the_precision(tmp_path: Path) -> None:
    system = FakeSystem(CAPACITY, out=tmp_path / "sweep.json")
    sweep = run_sweep(config(tmp_path), measure=system.measure, scale=system.scale)
    assert system.scaled == [1, 2, 3, 4]
    assert sweep.finished is not None
    for point in sweep.points:
        cap = CAPACITY[point.pods]
        assert point.complete
        assert point.x_slo is not None
        assert cap / 1.05 <= point.x_slo <= cap  # the last pass, within 5% of the first fail
        assert point.x_max == pytest.approx(cap)  # the failing steps achieved the capacity
        assert len(point.steps) <= 12
    assert load_sweep(tmp_path / "sweep.json") == sweep


def test_later_pod_counts_start_from_the_nearest_measured_one(tmp_path: Path) -> None:
    system = FakeSystem(CAPACITY)
    sweep = run_sweep(config(tmp_path), measure=system.measure, scale=system.scale)
    first_at = {pods: rate for pods, rate in reversed(system.rates)}
    assert first_at[1] == 50.0  # --start-rate
    x1 = sweep.points[0].x_slo
    assert x1 is not None
    assert first_at[2] == pytest.approx(0.85 * x1 * 2)
    assert len(sweep.points[1].steps) < len(sweep.points[0].steps)  # the hint saves steps


def test_the_file_is_written_after_every_step(tmp_path: Path) -> None:
    system = FakeSystem(CAPACITY, out=tmp_path / "sweep.json")
    run_sweep(config(tmp_path, pods=(1, 2)), measure=system.measure, scale=system.scale)
    # before measurement k the file on disk already holds the k - 1 steps before it
    assert system.steps_on_disk == list(range(len(system.rates)))


def test_interrupt_keeps_the_steps_and_resume_continues_the_ladder(tmp_path: Path) -> None:
    (tmp_path / "ref").mkdir()
    reference = FakeSystem(CAPACITY)
    whole = run_sweep(
        config(tmp_path / "ref", pods=(1, 2, 3)), measure=reference.measure, scale=reference.scale
    )
    steps_at_1 = len(whole.points[0].steps)
    interrupt_at = steps_at_1 + 3  # the third step at 2 pods
    first = FakeSystem(CAPACITY, interrupt_at=interrupt_at)
    with pytest.raises(SweepInterrupted) as caught:
        run_sweep(config(tmp_path, pods=(1, 2, 3)), measure=first.measure, scale=first.scale)
    assert caught.value.pods == 2
    kept = load_sweep(tmp_path / "sweep.json")
    assert [(p.pods, p.complete, len(p.steps)) for p in kept.points] == [
        (1, True, steps_at_1),
        (2, False, 2),  # the interrupted third step is not recorded
    ]
    assert kept.finished is None
    second = FakeSystem(CAPACITY)
    resumed = run_sweep(
        config(tmp_path, pods=(1, 2, 3), resume=True), measure=second.measure, scale=second.scale
    )
    assert second.scaled == [2, 3]  # 1 pod was complete: not even scaled to
    assert second.rates[0] == first.rates[-1]  # the ladder resumes at the interrupted rate
    assert resumed.points == whole.points  # the same result as without the interruption
    assert resumed.started == kept.started and resumed.finished is not None


def test_resume_measures_only_the_pod_counts_not_yet_complete(tmp_path: Path) -> None:
    system = FakeSystem(CAPACITY)
    two = run_sweep(config(tmp_path, pods=(1, 2)), measure=system.measure, scale=system.scale)
    assert [p.complete for p in two.points] == [True, True]
    again = FakeSystem(CAPACITY)
    sweep = run_sweep(config(tmp_path, resume=True), measure=again.measure, scale=again.scale)
    assert again.scaled == [3, 4]
    assert {pods for pods, _ in again.rates} == {3, 4}
    assert sweep.points[:2] == two.points  # kept as measured
    assert [p.pods for p in sweep.points] == [1, 2, 3, 4]


def test_a_failed_scale_command_stops_and_keeps_what_was_measured(tmp_path: Path) -> None:
    system = FakeSystem(CAPACITY, fail_scale_at=3)
    with pytest.raises(SweepError) as caught:
        run_sweep(config(tmp_path), measure=system.measure, scale=system.scale)
    assert caught.value.code == 2
    assert "exited with status 1: quota" in str(caught.value)
    kept = load_sweep(tmp_path / "sweep.json")
    assert [(p.pods, p.complete) for p in kept.points] == [(1, True), (2, True)]
    assert system.scaled == [1, 2, 3]  # and nothing after the failure


def test_a_load_generator_failure_keeps_its_exit_status(tmp_path: Path) -> None:
    def measure(rate: float) -> Measurement:
        raise StepFailed("replay: worker 0 (pid 1) died (killed by SIGKILL)", 1)

    with pytest.raises(SweepError) as caught:
        run_sweep(config(tmp_path), measure=measure, scale=lambda pods: None)
    assert caught.value.code == 1
    assert "worker 0" in str(caught.value)


@pytest.mark.parametrize(
    ("prepare", "changes", "message"),
    [
        ("file", {}, "already exists: --resume continues that sweep"),  # never overwrite silently
        (None, {"resume": True}, "no such file to resume"),  # nothing to resume
        ("file", {"resume": True, "slo": Slo(p99_ms=50.0)}, "p99 < 100 ms"),  # another SLO
        ("file", {"resume": True, "target": "http://127.0.0.1:10"}, "the file measured"),
        ("file", {"resume": True, "corpus": "mixed"}, "the file replayed"),  # another workload
        ("file", {"resume": True, "extra": {"sandbox": {"pod_rate": 1}}}, "embedded sandbox"),
    ],
)
def test_what_cannot_be_resumed_is_refused(
    tmp_path: Path, prepare: str | None, changes: dict[str, object], message: str
) -> None:
    if prepare == "file":
        system = FakeSystem(CAPACITY)
        run_sweep(config(tmp_path, pods=(1,)), measure=system.measure, scale=system.scale)
    system = FakeSystem(CAPACITY)
    with pytest.raises(InputError, match=message):
        run_sweep(config(tmp_path, **changes), measure=system.measure, scale=system.scale)
    assert system.rates == []  # refused before measuring anything


def test_overwrite_replaces_an_earlier_sweep(tmp_path: Path) -> None:
    system = FakeSystem(CAPACITY)
    run_sweep(config(tmp_path, pods=(1, 2)), measure=system.measure, scale=system.scale)
    sweep = run_sweep(
        config(tmp_path, pods=(3,), overwrite=True), measure=system.measure, scale=system.scale
    )
    assert (
        [p.pods for p in load_sweep(tmp_path / "sweep.json").points]
        == [3]
        == [p.pods for p in sweep.points]
    )


# ----------------------------------------------------------------------------- one step


def test_a_step_measures_only_its_window(tmp_path: Path) -> None:
    from replay.aggregate import RunAggregate
    from replay.histogram import sparse_from_values
    from replay.recorder import SeriesDelta

    def series(outcome: str, latencies_ms: list[float]) -> SeriesDelta:
        us = [round(v * 1000) for v in latencies_ms]
        h = sparse_from_values(us)
        return SeriesDelta("ingest", outcome, len(us), (h, h, sparse_from_values([100] * len(us))))

    agg = RunAggregate()
    # second 0 (warm-up): slow and failing; seconds 1-3 (the step): 100 successes each, 2% at
    # 30 ms, one 503 in second 2 and 2 dropped; second 4 (replay's drain interval): slow again
    agg.add_interval(0, worker=0, offered=100, inflight=0, dropped={},
                     series=[series("200", [900.0] * 90), series("503", [5.0] * 10)])  # fmt: skip
    for k in (1, 2, 3):
        parts = [series("200", [10.0] * 98 + [30.0] * 2)]
        if k == 2:
            parts.append(series("503", [2.0]))
        dropped = {"ingest": 2} if k == 3 else {}
        agg.add_interval(k, worker=0, offered=100, inflight=0, dropped=dropped, series=parts)
    agg.add_interval(4, worker=0, offered=0, inflight=0, dropped={},
                     series=[series("200", [2000.0] * 5)])  # fmt: skip
    measured = measure_window(agg, 100.0, warmup_s=1, step_s=3)
    step = measured.step
    assert step.requests == 301 and step.errors == 1 and step.dropped == 2
    assert step.achieved_rps == pytest.approx(300 / 3)
    assert step.offered_rps == 100.0 and step.duration_s == 3.0
    assert step.p50_ms == pytest.approx(10.0, rel=0.01)
    assert step.p99_ms == pytest.approx(30.0, rel=0.01)  # neither the 900 ms nor the 2 s
    assert measured.note is not None and "dropped" in measured.note


# ----------------------------------------------------------------------------- scaling


@pytest.mark.parametrize(
    ("cmd", "shell", "expected"),
    [
        # {pods} in one word of many
        ("kubectl scale deploy/api --replicas={pods}", False,
         ["kubectl", "scale", "deploy/api", "--replicas=3"]),
        # JSON braces survive: replace, not format
        ("""curl -d '{"pods": {pods}}' http://h/admin/pods""", False,
         ["curl", "-d", '{"pods": 3}', "http://h/admin/pods"]),
        # a quoted word stays one word; no shell expands $HOME
        ("echo '$HOME {pods}'", False, ["echo", "$HOME 3"]),
        # --shell: one string for sh -c
        ("scale {pods} && wait-ready", True, "scale 3 && wait-ready"),
    ],
)  # fmt: skip
def test_command_for(cmd: str, shell: bool, expected: object) -> None:
    assert command_for(cmd, 3, shell=shell) == expected


@pytest.mark.parametrize(
    ("cmd", "message"),
    [("kubectl scale deploy/api", "has no {pods}"), ("echo '{pods}", "No closing quotation")],
)
def test_check_command(cmd: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        check_command(cmd, shell=False)


def test_the_scale_command_runs_without_a_shell(tmp_path: Path) -> None:
    out = tmp_path / "pods"
    script = "import sys; open(sys.argv[1], 'w').write(' '.join(sys.argv[2:]))"
    cmd = f'{sys.executable} -c "{script}" {out} {{pods}} ";" echo'
    run_scale_command(cmd, 4, shell=False, timeout_s=30)
    assert out.read_text() == "4 ; echo"  # ';' reached the program as a word


def test_the_scale_command_with_shell(tmp_path: Path) -> None:
    out = tmp_path / "pods"
    run_scale_command(f"echo {{pods}} > {out} && echo done >> {out}", 6, shell=True, timeout_s=30)
    assert out.read_text().split() == ["6", "done"]


@pytest.mark.parametrize(
    ("cmd", "message"),
    [
        (f"{sys.executable} -c \"import sys; print('no such deployment', file=sys.stderr); "
         "sys.exit(3)\" {pods}", "for 2 pods (.*) exited with status 3: no such deployment"),
        ("no-such-program-anywhere {pods}", "no-such-program-anywhere: command not found"),
        (f"{sys.executable} -c \"import time; time.sleep(10)\" {{pods}}", "did not finish within"),
    ],
)  # fmt: skip
def test_scale_command_failures_are_one_clear_line(cmd: str, message: str) -> None:
    with pytest.raises(ScaleError, match=message) as caught:
        run_scale_command(cmd, 2, shell=False, timeout_s=1.0)
    assert "\n" not in str(caught.value)


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_wait_ready_gives_up_after_its_time_with_what_it_last_heard() -> None:
    clock = FakeClock()
    calls: list[float] = []

    def probe(url: str, timeout: float) -> tuple[bool, str]:
        calls.append(clock.now)
        return False, "HTTP 503"

    with pytest.raises(ScaleError, match=r"not ready within 10.0s \(11 attempts; last: HTTP 503\)"):
        wait_ready("http://127.0.0.1:1/ready", 10.0, clock=clock, sleep=clock.sleep, probe=probe)
    assert calls == [float(i) for i in range(11)]  # once a second, bounded by the time


def test_wait_ready_shares_its_budget_with_what_came_before_and_names_the_whole() -> None:
    # The scale command took 3 s of a 10 s budget: 7 s of polling are left, and the
    # error names the 10 s the user gave (CI once saw "within 1.7s" for "2s").
    clock = FakeClock()
    clock.now = 3.0
    calls: list[float] = []

    def probe(url: str, timeout: float) -> tuple[bool, str]:
        calls.append(clock.now)
        return False, "HTTP 503"

    with pytest.raises(ScaleError, match=r"not ready within 10.0s \(8 attempts; last: HTTP 503\)"):
        wait_ready(
            "http://127.0.0.1:1/ready", 10.0, clock=clock, sleep=clock.sleep, probe=probe,
            started=0.0,
        )  # fmt: skip
    assert calls == [float(i) for i in range(3, 11)]


def test_wait_ready_tries_once_even_when_the_budget_is_spent() -> None:
    clock = FakeClock()
    clock.now = 12.0
    attempts = wait_ready(
        "http://127.0.0.1:1/ready", 10.0, clock=clock, sleep=clock.sleep,
        probe=lambda url, timeout: (True, "HTTP 200"), started=0.0,
    )  # fmt: skip
    assert attempts == 1


def test_wait_ready_returns_at_the_first_2xx() -> None:
    clock = FakeClock()
    answers = iter([(False, "connection refused"), (False, "HTTP 503"), (True, "HTTP 200")])
    attempts = wait_ready(
        "http://127.0.0.1:1/ready", 60, clock=clock, sleep=clock.sleep,
        probe=lambda url, timeout: next(answers),
    )  # fmt: skip
    assert attempts == 3 and clock.now == 2.0


@dataclass
class LocalServer:
    url: str
    status: list[int]


@pytest.fixture
def local_server() -> Iterator[LocalServer]:
    """An HTTP server thread on 127.0.0.1 answering every GET with ``status[0]``."""
    status = [503]

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(status[0])
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield LocalServer(f"http://127.0.0.1:{server.server_address[1]}", status)
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def test_wait_ready_over_http(local_server: LocalServer) -> None:
    with pytest.raises(ScaleError, match="last: HTTP 503"):
        wait_ready(local_server.url + "/ready", 1.0, interval_s=0.2)
    local_server.status[0] = 204
    assert wait_ready(local_server.url + "/ready", 1.0, interval_s=0.2) == 1


# ----------------------------------------------------------------------------- the CLI


def sweep_cli(*args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(main, ["sweep", *args])


def one_line_error(result) -> str:  # type: ignore[no-untyped-def]
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("planner sweep: error: ")
    assert "Traceback" not in result.output
    return str(lines[0])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--sandbox", "--pods", "0,1"], "'0' in '0,1' is not a pod count"),
        (["--sandbox", "--pods", "1,2,1"], "names 1 pods twice"),
        (["--sandbox", "--slo", "p95<100ms"], "write p99<LIMIT"),
        (["--sandbox", "--slo", "p99<100"], "give the limit a unit"),
        (["--sandbox", "--max-error-rate", "2"], "not between 0 and 1"),
        (["--sandbox", "--step-duration", "2.5s"], "use whole seconds"),
        (["--sandbox", "--precision", "0"], "must be above 0"),
        (["--sandbox", "--start-rate", "abc"], "is not a rate"),
        (["--sandbox", "--pods", "1,300"], "pods must be from 1 to 256"),
        (["--sandbox", "--target", "http://127.0.0.1:9"], "--target: not with --sandbox"),
        (["--sandbox", "--resume", "--overwrite"], "cannot be combined"),
        (["--pod-rate", "50", "--target", "http://127.0.0.1:9"], "it needs --sandbox"),
        ([], "give --target URL (with --scale-cmd), or --sandbox"),
        (["--target", "http://127.0.0.1:9"], "--scale-cmd: missing"),
        (["--target", "http://127.0.0.1:9", "--scale-cmd", "kubectl scale"], "has no {pods}"),
        (["--target", "http://127.0.0.1:9", "--pods", "3", "--shell"], "--shell: applies to"),
        (["--sandbox", "--corpus", "no-such-corpus"], "--corpus: no-such-corpus: no such file"),
        (["--target", "http://127.0.0.1:9", "--pods", "3"], "cannot connect to http://127.0.0.1:9"),
        (["--sandbox", "--resume"], "no such file to resume"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    out = tmp_path / "sweep.json"
    line = one_line_error(sweep_cli(*args, "--out", str(out)))
    assert message in line
    assert not out.exists()  # nothing was started or written


def test_missing_out_is_one_line() -> None:
    assert "Missing option '--out'" in one_line_error(sweep_cli("--sandbox"))


def test_an_existing_file_is_not_overwritten(tmp_path: Path) -> None:
    out = tmp_path / "sweep.json"
    system = FakeSystem(CAPACITY)
    run_sweep(config(tmp_path, pods=(1,)), measure=system.measure, scale=system.scale)
    before = out.read_text()
    line = one_line_error(sweep_cli("--sandbox", "--out", str(out)))
    assert "already exists" in line
    assert out.read_text() == before


def test_cli_scale_command_failure_exits_2_and_keeps_the_file(
    tmp_path: Path, local_server: LocalServer
) -> None:
    out = tmp_path / "sweep.json"
    fail = f"{sys.executable} -c \"import sys; print('forbidden', file=sys.stderr); sys.exit(3)\""
    result = sweep_cli(
        "--target", local_server.url, "--pods", "1,2", "--scale-cmd", fail + " {pods}",
        "--out", str(out),
    )  # fmt: skip
    assert result.exit_code == 2, result.output
    last = result.stderr.strip().splitlines()[-1]
    assert "exited with status 3: forbidden" in last
    assert f"{out} keeps 0 complete pod counts: continue with --resume" in last
    assert json.loads(out.read_text())["points"] == []


def test_cli_ready_url_timeout_exits_2(tmp_path: Path, local_server: LocalServer) -> None:
    out = tmp_path / "sweep.json"
    result = sweep_cli(
        "--target", local_server.url, "--pods", "1,2", "--scale-cmd", "true {pods}",
        "--ready-url", local_server.url + "/health", "--ready-timeout", "2s", "--out", str(out),
    )  # fmt: skip
    assert result.exit_code == 2, result.output
    last = result.stderr.strip().splitlines()[-1]
    assert f"--ready-url {local_server.url}/health: not ready within 2.0s" in last
    assert "last: HTTP 503" in last


def test_a_written_sweep_file_is_what_the_report_reads(tmp_path: Path) -> None:
    system = FakeSystem(CAPACITY)
    run_sweep(config(tmp_path), measure=system.measure, scale=system.scale)
    result = CliRunner().invoke(
        main, ["report", str(tmp_path / "sweep.json"), "--target-rate", "300", "--resamples", "20"]
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("Pods required for 300/s: 4")
    write_sweep(load_sweep(tmp_path / "sweep.json"), tmp_path / "again.json")  # round trip
