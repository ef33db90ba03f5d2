"""A closed-model VU that finds no template prepared waits for `Ahead`, and its request keeps
the moment the VU was ready: the tool's own wait is part of the latency it reports."""

from __future__ import annotations

import time
from collections import deque
from types import SimpleNamespace
from typing import Any

from replay.schedulers import ClosedScheduler


class Prepared:
    """What the scheduler reads of `Ahead`: the prepared items, and whether the source ended."""

    def __init__(self) -> None:
        self.items: deque[str] = deque()
        self.exhausted = False

    def poke(self) -> None:
        return


def scheduler(start: int) -> tuple[ClosedScheduler, list[tuple[Any, str, int]], Prepared]:
    sent: list[tuple[Any, str, int]] = []
    prepared = Prepared()
    worker = SimpleNamespace(
        cfg=SimpleNamespace(think_ns=0),
        ahead=prepared,
        recorder=SimpleNamespace(offered=lambda: None),
        dispatch=lambda conn, tpl, ready: sent.append((conn, tpl, ready)),
        stopping=False,
        start=start,
        end=start + 10**18,
    )
    closed = ClosedScheduler(worker)  # type: ignore[arg-type]
    return closed, sent, prepared


def test_a_parked_vu_is_sent_with_the_moment_it_was_ready() -> None:
    closed, sent, prepared = scheduler(start=1_000)
    closed.attach(["vu0", "vu1"])  # type: ignore[list-item]
    closed.begin()  # nothing prepared yet: both wait from the start
    assert sent == []
    prepared.items.extend(["t0", "t1", "t2"])
    closed.on_fill()
    assert sent == [("vu0", "t0", 1_000), ("vu1", "t1", 1_000)]
    # vu0's reply came at 5,000, and vu1's at 6,000 after the last template was taken
    closed.done("vu0", 5_000)  # type: ignore[arg-type]
    closed.done("vu1", 6_000)  # type: ignore[arg-type]
    assert sent[-1] == ("vu0", "t2", 5_000)
    prepared.items.append("t3")
    closed.on_fill()  # filled later: vu1's request is still due from 6,000
    assert sent[-1] == ("vu1", "t3", 6_000)


def test_a_parked_scenario_vu_is_sent_with_the_moment_it_was_ready() -> None:
    from replay.executors import VUScheduler

    sent: list[tuple[Any, str, int]] = []
    prepared = Prepared()
    far = time.monotonic_ns() + 10**15  # (the executor compares with the clock)
    worker = SimpleNamespace(
        cfg=SimpleNamespace(think_ns=0, vus=2, lane={"steps": [[0, 2]]}),
        ahead=prepared,
        recorder=SimpleNamespace(offered=lambda: None),
        dispatch=lambda conn, tpl, ready: sent.append((conn, tpl, ready)),
        stopping=False,
        start=0,
        end=far,
    )
    vus = VUScheduler(worker)
    vus.attach(["vu0", "vu1"])  # type: ignore[list-item]
    before = time.monotonic_ns()
    vus.begin()  # the step at 0 has come: both VUs ready now, nothing prepared
    after = time.monotonic_ns()
    assert sent == [] and len(vus.parked) == 2
    while time.monotonic_ns() <= after:  # (filled strictly later)
        pass
    prepared.items.extend(["t0", "t1"])
    vus.on_fill()
    assert [(c, t) for c, t, _r in sent] == [("vu0", "t0"), ("vu1", "t1")]
    assert all(before <= ready <= after for _c, _t, ready in sent)  # not when filled
