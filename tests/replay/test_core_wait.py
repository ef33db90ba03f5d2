"""Time a worker waited for a core while sending (replay/core_wait.py): the kernel's run
delay read for real under a competing process on the same core, the note's thresholds, the
`done` info through the worker protocol, and the note in a real run's results."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import replay_command, replay_env

from replay import protocol
from replay.core_wait import (
    CoreWait,
    core_wait_note,
    host_steal_ns,
    run_delay_ns,
    steal_note,
    steal_of,
)

needs_schedstat = pytest.mark.skipif(
    run_delay_ns() is None, reason="this kernel does not expose /proc/thread-self/schedstat"
)

HOG = (
    "import os, sys, time\n"
    "os.sched_setaffinity(0, {int(sys.argv[1])})\n"
    "end = time.monotonic() + float(sys.argv[2])\n"
    "print('hogging', flush=True)\n"
    "while time.monotonic() < end: pass\n"
)


@pytest.fixture
def hog() -> Iterator[Callable[[int, float], None]]:
    """hog(cpu, seconds): a process spinning on `cpu` for at most `seconds`, running when
    this returns; stopped by its pid at teardown."""
    procs: list[subprocess.Popen[str]] = []

    def start(cpu: int, seconds: float) -> None:
        proc = subprocess.Popen(
            [sys.executable, "-c", HOG, str(cpu), str(seconds)], stdout=subprocess.PIPE, text=True
        )
        procs.append(proc)
        assert proc.stdout is not None and proc.stdout.readline().strip() == "hogging"

    yield start
    for proc in procs:
        proc.terminate()
        proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()


def one_cpu() -> int:
    return min(os.sched_getaffinity(0))


BURN = (
    "import os, sys, time\n"
    "from replay.core_wait import run_delay_ns\n"
    "os.sched_setaffinity(0, {int(sys.argv[1])})\n"
    "before, cpu0, wall0 = run_delay_ns(), time.process_time(), time.monotonic()\n"
    "while time.process_time() - cpu0 < 0.4 and time.monotonic() - wall0 < 20: pass\n"
    "print(run_delay_ns() - before)\n"
)


@needs_schedstat
def test_the_run_delay_grows_while_another_process_holds_the_core(
    hog: Callable[[int, float], None],
) -> None:
    """0.4 s of CPU on a core a spinning process also wants: the kernel makes it wait about
    as long (it shares the core); the bound is a third of that, for a busy machine."""
    cpu = one_cpu()
    hog(cpu, 30)
    done = subprocess.run(
        [sys.executable, "-c", BURN, str(cpu)], capture_output=True, text=True, timeout=60,
        env=replay_env(),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) >= 130_000_000


@needs_schedstat
def test_core_wait_counts_from_begin_to_end_once() -> None:
    """Asleep is not waiting: 0.2 s asleep shows as (much) less than 0.1 s of wait, the
    wake-up's own wait on a busy machine included."""
    wait = CoreWait()
    assert wait.info() == {}
    start = time.monotonic_ns()
    wait.begin(start)
    time.sleep(0.2)
    wait.end(start + 2_000_000_000)
    info = wait.info()
    assert info["sending_ns"] == 2_000_000_000
    assert 0 <= info["core_wait_ns"] < 100_000_000
    wait.end(start + 5_000_000_000)  # a second end changes nothing
    assert wait.info() == info


def test_core_wait_is_silent_where_the_kernel_does_not_say(monkeypatch: Any) -> None:
    monkeypatch.setattr("replay.core_wait.SCHEDSTAT", "/nonexistent/schedstat")
    monkeypatch.setattr("replay.core_wait.STAT", "/nonexistent/stat")
    wait = CoreWait()
    wait.begin(0)
    wait.end(1_000_000_000)
    assert run_delay_ns() is None and host_steal_ns() is None and wait.info() == {}


def test_each_wait_is_told_where_the_kernel_says_it(monkeypatch: Any, tmp_path: Path) -> None:
    """Without schedstat, the steal alone; a /proc/stat whose steal grows by 40 ticks over
    the sending gives 40 ticks of the machine's 2 cores, on average, as ns."""
    monkeypatch.setattr("replay.core_wait.SCHEDSTAT", "/nonexistent/schedstat")
    stat = tmp_path / "stat"
    monkeypatch.setattr("replay.core_wait.STAT", str(stat))
    stat.write_text(STAT_TEXT.format(steal=1000))
    wait = CoreWait()
    wait.begin(0)
    stat.write_text(STAT_TEXT.format(steal=1040))
    wait.end(3_000_000_000)
    ticks = os.sysconf("SC_CLK_TCK")
    assert wait.info() == {"host_steal_ns": 40 * 10**9 // ticks // 2, "sending_ns": 3 * 10**9}


STAT_TEXT = (
    "cpu  4705 150 1120 1600138 108 0 24 {steal} 0 0\n"
    "cpu0 2311 73 553 800035 54 0 12 500 0 0\n"
    "cpu1 2394 77 567 800103 54 0 12 500 0 0\n"
    "intr 113447 0 9 0 0\n"
    "ctxt 2003371\n"
)


def test_the_steal_is_read_from_the_machine_line_over_its_cores() -> None:
    ticks = os.sysconf("SC_CLK_TCK")
    assert steal_of(STAT_TEXT.format(steal=300)) == 300 * 10**9 // (ticks * 2)
    assert steal_of(STAT_TEXT.format(steal=0)) == 0
    four = STAT_TEXT.format(steal=300).replace(
        "intr", "cpu2 1 1 1 1 1 1 1 1\ncpu3 1 1 1 1 1 1 1 1\nintr"
    )
    assert steal_of(four) == 300 * 10**9 // (ticks * 4)
    assert steal_of("cpu  1 2 3 4 5 6 7\ncpu0 1 2 3 4 5 6 7\n") is None  # no steal field
    assert steal_of("cpu0 1 2 3 4 5 6 7 8\n") is None  # no machine line
    assert steal_of("cpu  1 2 3 4 5 6 7 8\n") is None  # no cores
    assert steal_of("") is None


def test_the_steal_of_this_machine_is_read_and_does_not_go_back() -> None:
    first = host_steal_ns()
    if first is None:
        pytest.skip("this kernel's /proc/stat has no steal time")
    second = host_steal_ns()
    assert second is not None and 0 <= first <= second


@pytest.mark.parametrize(
    ("stolen", "sending", "noted"),
    [
        (490_000_000, 10_000_000_000, True),  # 4.9%
        (50_000_000, 10_000_000_000, True),  # exactly 0.5%
        (40_000_000, 10_000_000_000, False),  # 0.4%
        (19_000_000, 1_000_000_000, False),  # 1.9%, but under 20 ms
        (30_000_000, 0, False),  # never sent
    ],
)
def test_the_steal_note_needs_a_share_and_a_length(stolen: int, sending: int, noted: bool) -> None:
    note = steal_note([{"host_steal_ns": stolen, "sending_ns": sending}])
    assert (note is not None) == noted
    if noted:
        assert note is not None
        assert note.startswith(f"the host took {stolen / 1e9:.2f} s of each core on average")
        assert f"({stolen / sending:.1%} of {sending / 1e9:.1f} s, steal time" in note


def test_the_steal_note_is_one_for_the_run_with_the_most_any_worker_saw() -> None:
    infos = [
        {"host_steal_ns": 60_000_000, "sending_ns": 10_000_000_000},
        {"core_wait_ns": 0, "sending_ns": 10_000_000_000},  # (a kernel without steal)
        {"host_steal_ns": 90_000_000, "sending_ns": 10_000_000_000},
    ]
    note = steal_note(infos)
    assert note is not None and "0.09 s of each core" in note and "(0.9% of 10.0 s," in note
    assert steal_note([{}, {"core_wait_ns": 5}]) is None


@pytest.mark.parametrize(
    ("waited", "sending", "noted"),
    [
        (500_000_000, 5_000_000_000, True),  # 10% of the time, 0.5 s
        (250_000_000, 5_000_000_000, True),  # exactly 5%
        (200_000_000, 10_000_000_000, False),  # 2%: a quiet machine
        (90_000_000, 300_000_000, False),  # 30%, but under 0.1 s
        (100_000_000, 0, False),  # never sent
    ],
)
def test_the_note_needs_a_share_and_a_length(waited: int, sending: int, noted: bool) -> None:
    note = core_wait_note(1, {"core_wait_ns": waited, "sending_ns": sending})
    assert (note is not None) == noted
    if noted:
        assert note is not None
        assert note.startswith(f"worker 1 waited {waited / 1e9:.2f} s for a core while sending")
        assert f"({waited / sending:.1%} of {sending / 1e9:.1f} s)" in note
    assert core_wait_note(0, {}) is None  # an older worker, or no schedstat


def test_done_info_carries_the_wait_through_the_protocol() -> None:
    info = protocol.DoneInfo(
        abandoned=0, serial=10, intervals=2, unsent=0, unsent_counted=True, probes_skipped=0
    )
    info["core_wait_ns"], info["sending_ns"] = 123_456_789, 2_000_000_000
    info["host_steal_ns"] = 45_000_000
    message = json.loads(json.dumps(protocol.Done(3, info).encode()))
    done = protocol.from_worker(message)
    assert isinstance(done, protocol.Done)
    assert done.info["core_wait_ns"] == 123_456_789 and done.info["sending_ns"] == 2_000_000_000
    assert done.info["host_steal_ns"] == 45_000_000


@needs_schedstat
def test_a_run_sharing_its_core_with_a_busy_process_says_so(
    tmp_path: Path,
    synth_corpus: Callable[..., Path],
    tiny_server: Callable[..., str],
    hog: Callable[[int, float], None],
) -> None:
    """A closed-model run (its worker always has work) pinned to a core a spinning process
    also holds: the results' notes say how long the worker waited."""
    url = tiny_server()
    cpu = one_cpu()
    hog(cpu, 60)
    out = tmp_path / "results.json"
    done = subprocess.run(
        replay_command(
            str(synth_corpus()), "--target", url, "--vus", "4", "--workers", "1",
            "--duration", "2s", "--out", str(out), "-q",
        ),
        capture_output=True, text=True, timeout=90, env=replay_env(),
        preexec_fn=lambda: os.sched_setaffinity(0, {cpu}),
    )  # fmt: skip
    assert done.returncode in (0, 99), done.stderr
    notes = json.loads(out.read_text())["meta"]["notes"]
    waits = [n for n in notes if n.startswith("worker 0 waited ")]
    assert len(waits) == 1, notes
    assert "for a core while sending" in waits[0] and "not the target" in waits[0]
