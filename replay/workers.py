"""The coordinator's worker processes: each one's configuration, spawn, death and reaping.

A worker is a clean interpreter (`python -m replay.worker`) with a control pipe (coordinator
-> worker) and a data pipe (worker -> coordinator); its stderr is kept only for its last line,
which names why it died.
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
from typing import Any

import msgpack

from replay.config import WorkerConfig
from replay.plan import RunPlan
from replay.run_start import package_version
from replay.segments import share
from replay.target import RunTarget


@dataclass
class WorkerProc:
    """One worker process as the coordinator sees it: its pipes, state and last words."""

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


def spawn_worker(index: int, selector: selectors.BaseSelector) -> WorkerProc:
    """Start worker `index` and register its data pipe and stderr with `selector`."""
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
    proc = WorkerProc(index, popen, control_w, data_r)
    selector.register(data_r, selectors.EVENT_READ, ("data", proc))
    assert popen.stderr is not None
    os.set_blocking(popen.stderr.fileno(), False)
    selector.register(popen.stderr.fileno(), selectors.EVENT_READ, ("stderr", proc))
    return proc


def worker_config(plan: RunPlan, target: RunTarget, w: int, nonce: int) -> WorkerConfig:
    """Worker w's configuration: the plan, its share of the VUs and in-flight limit."""
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
        nonce=nonce,
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
        user_agent=f"agenttrace-replay/{package_version()}",
        spool_dir=plan.spool_dir,
        build_first=plan.build_first,
        visibility_probe=plan.visibility_probe,
        visibility_timeout_ns=plan.visibility_timeout_ns,
        segment=seg.index,
        segments=seg.count,
    )
    if plan.scenarios:
        from replay.scenario_plan import with_lanes

        return with_lanes(cfg, plan)
    return cfg


def death_message(proc: WorkerProc) -> str:
    """Why a worker whose data pipe closed early is gone: its exit and last stderr line."""
    try:
        code = proc.popen.wait(timeout=2)
    except subprocess.TimeoutExpired:
        code = None
    how = exit_description(code)
    tail = last_line(proc.stderr_tail)
    detail = f": {tail}" if tail else ""
    return f"worker {proc.index} (pid {proc.popen.pid}) died ({how}){detail}"


def reap(procs: list[WorkerProc], selector: selectors.BaseSelector) -> None:
    """Make sure no worker outlives the run: kill, wait, close its pipes and the selector."""
    for proc in procs:
        if proc.popen.poll() is None:
            proc.popen.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.popen.wait(timeout=5)
        for fd in (proc.control, proc.data):
            with contextlib.suppress(OSError):
                os.close(fd)
        if proc.popen.stderr is not None:
            proc.popen.stderr.close()
    selector.close()


def exit_description(code: int | None) -> str:
    if code is None:
        return "still running, killed"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"killed by {name}"
    return f"exit status {code}"


def last_line(data: bytes | bytearray) -> str:
    lines = [ln for ln in data.decode("utf-8", "replace").splitlines() if ln.strip()]
    return lines[-1].strip() if lines else ""
