"""What a scenario run does before its start: a lane builds only the templates it can send,
and worker processes spawned ahead of the target are reaped when the run never starts."""

from __future__ import annotations

import pytest

from replay.config import WorkerConfig
from replay.lanes import LaneShard, ScenarioWorker, templates_needed
from replay.prespawn import Prespawned
from replay.scenario_file import parse_scenarios
from replay.scenario_plan import make_scenario_plan
from replay.target import RunTarget
from replay.workers import worker_config

S = 1_000_000_000
TARGET = RunTarget("http://127.0.0.1:9", "key", "proj", embedded=False)


def lane_configs(text: str, workers: int = 2) -> list[WorkerConfig]:
    """Worker 0's lanes of a scenario file."""
    plan = make_scenario_plan(parse_scenarios(text, "t.toml"), workers=workers, progress=False)
    cfg = worker_config(plan, TARGET, 0, 1)
    return [WorkerConfig.from_wire(lane) for lane in cfg.scenarios]


def test_vu_lane_needs_what_its_vus_can_iterate() -> None:
    # 3 VUs (2 on worker 0 of 2), a 0.1 s think time, 2 s: at most 2 s / 0.1 s + 1 = 21
    # iterations of one request per VU, doubled, plus 64
    (lane,) = lane_configs(
        '[scenarios.v]\nexecutor = "constant-vus"\ncorpus = "query"\nvus = 3\n'
        'duration = "2s"\nthink_time = "0.1s"\n'
    )
    assert lane.vus == 2
    assert templates_needed(lane) == 2 * (2 * 20 + 2) + 64


@pytest.mark.parametrize(
    "text",
    [
        # no think time: a VU may iterate as fast as the target answers
        '[scenarios.v]\nexecutor = "constant-vus"\ncorpus = "query"\nvus = 3\nduration = "2s"\n',
        # a flow draws from one pool per step, not from the shard in order
        '[scenarios.v]\nexecutor = "constant-vus"\ncorpus = "mixed"\nvus = 1\nduration = "2s"\n'
        'flow = [{ endpoint = "list", think_time = "0.1s" }]\n',
        # a corpus timeline plays records at their own times, skipping none by count
        '[scenarios.t]\nexecutor = "corpus-timeline"\ncorpus = "ingestion"\nduration = "2s"\n',
    ],
)
def test_lanes_that_may_send_any_template(text: str) -> None:
    (lane,) = lane_configs(text)
    assert templates_needed(lane) is None


def test_a_short_rate_lane_builds_a_few_templates_not_its_whole_shard() -> None:
    """10 req/s for 2 s: worker 0 of 2 sends 10 requests. Loading builds no template; the
    lane's first pass builds a bound on what it can send (its schedule plus six standard
    deviations and 64), not its half of the 3,000-record corpus, and later passes reuse
    them in the same order."""
    text = (
        '[scenarios.r]\nexecutor = "constant-arrival-rate"\ncorpus = "ingestion"\n'
        'rate = 10\nduration = "2s"\n'
    )
    (lane,) = lane_configs(text)
    built: list[int] = []
    worker = ScenarioWorker(worker_config(_plan(text), TARGET, 0, 1), None)
    build = worker._builder(lane.corpus)

    def counting(record: object, index: int) -> object:
        built.append(index)
        return build(record, index)

    shard = LaneShard(lane, counting)
    needed = templates_needed(lane)
    assert needed is not None and 10 <= needed < 200
    assert shard.mine == needed and shard.deferred and built == []  # nothing at load
    cycle = shard.cycle()
    first = [next(cycle) for _ in range(needed)]
    assert len(built) == needed and built == sorted(built)  # in corpus order, once each
    again = [next(cycle) for _ in range(needed)]
    assert len(built) == needed  # the second pass builds nothing
    assert [id(t) for t in again] == [id(t) for t in first]


def _plan(text: str) -> object:
    return make_scenario_plan(parse_scenarios(text, "t.toml"), workers=2, progress=False)


def test_prespawned_workers_are_reaped_when_the_run_never_starts() -> None:
    workers = Prespawned(2)
    pids = [p.popen.pid for p in workers.procs]
    assert len(set(pids)) == 2
    workers.close()
    assert all(p.popen.poll() is not None for p in workers.procs)
    workers.close()  # a second close does nothing
    with pytest.raises(RuntimeError):
        workers.take()


def test_prespawned_workers_taken_are_the_takers_to_reap() -> None:
    workers = Prespawned(1)
    procs, selector = workers.take()
    workers.close()  # taken: not reaped here
    assert procs[0].popen.poll() is None
    from replay.workers import reap

    reap(procs, selector)  # (kills and waits)
    assert procs[0].popen.poll() is not None


PATCH_SCRIPT = """
import socket
from importlib import metadata

scans = []
distributions = metadata.distributions
def counted(**kw):
    scans.append(1)
    return distributions(**kw)
metadata.distributions = counted
lookup = metadata.entry_points

from replay.gevent_patch import patch_all
patch_all()

import gevent.socket
assert socket.socket is gevent.socket.socket, "socket not patched"
assert metadata.entry_points is lookup, "entry_points not restored"
print(len(scans))
"""


def test_a_worker_patches_with_one_scan_of_the_installed_packages() -> None:
    """In a fresh interpreter (patching is for worker processes only): everything patched,
    the installed distributions scanned once (gevent alone scans them for every patched
    module), and importlib.metadata as it was."""
    import subprocess
    import sys

    from .conftest import ROOT, replay_env

    done = subprocess.run(
        [sys.executable, "-c", PATCH_SCRIPT],
        capture_output=True,
        text=True,
        timeout=60,
        env=replay_env(),
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) == 1
