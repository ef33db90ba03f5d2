"""The capacity model, the rate limiter and the fault spec as pure functions: no clock, no
sleeping, exhaustive where it is cheap."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from sandbox.capacity import (
    Emulation,
    SharedSchedule,
    admit,
    resize,
    service_multiplier,
    usl_throughput,
)
from sandbox.faults import FaultInjector, FaultSpec, parse_faults
from sandbox.ratelimit import decide

# ------------------------------------------------------------------ USL


@pytest.mark.parametrize(
    ("n", "expected"),
    [
        (1, 300.0),  # one pod: its own rate
        (2, 600 / (1 + 0.05 + 0.002)),  # X(2) = 2L / (1 + s + 2k)
        (8, 2400 / (1 + 0.35 + 0.056)),
    ],
)
def test_usl_formula(n: int, expected: float) -> None:
    assert usl_throughput(n, 300, 0.05, 0.001) == pytest.approx(expected)


def test_service_time_makes_n_busy_servers_deliver_x() -> None:
    e = Emulation(pods=4, pod_rate=100, sigma=0.1, kappa=0.02)
    assert e.pods / e.service_time == pytest.approx(e.throughput)


@pytest.mark.parametrize("cv", [0.0, 0.5, 1.0])
def test_service_multipliers_average_one_quickly(cv: float) -> None:
    values = [service_multiplier(i, cv) for i in range(500)]
    # low-discrepancy: 500 draws already average 1 within 1%
    assert sum(values) / len(values) == pytest.approx(1.0, rel=0.01)
    if cv:
        mean = sum(values) / len(values)
        sd = (sum((v - mean) ** 2 for v in values) / len(values)) ** 0.5
        assert sd / mean == pytest.approx(cv, rel=0.15)


def _simulate(e: Emulation, rate: float, seconds: float, seed: int = 1) -> tuple[float, float]:
    """Poisson arrivals at ``rate`` in virtual time: (throughput, mean latency)."""
    rng = random.Random(seed)
    free = [0.0] * e.pods
    now, done, latencies, seq = 0.0, 0, [], 0
    while now < seconds:
        now += rng.expovariate(rate)
        service = e.service_time * service_multiplier(seq, e.service_cv)
        slot = admit(free, now, service, e.max_wait)
        if slot is None:
            continue
        server, _, finish = slot
        free[server] = finish
        seq += 1
        if finish < seconds:
            done += 1
        latencies.append(finish - now)
    return done / seconds, sum(latencies) / len(latencies)


@pytest.mark.parametrize("pods", [1, 3, 8])
def test_saturated_schedule_delivers_x_of_n(pods: int) -> None:
    e = Emulation(pods=pods, pod_rate=100, sigma=0.05, kappa=0.01)
    throughput, _ = _simulate(e, rate=3 * e.throughput, seconds=60)
    assert throughput == pytest.approx(e.throughput, rel=0.01)


def test_latency_rises_as_load_nears_capacity() -> None:
    e = Emulation(pods=2, pod_rate=100, sigma=0.05, kappa=0.01)
    means = [_simulate(e, rate=f * e.throughput, seconds=200)[1] for f in (0.3, 0.6, 0.9)]
    assert means[0] < means[1] < means[2]
    assert means[0] == pytest.approx(e.service_time, rel=0.25)  # little queueing at 30%
    assert means[2] > 2 * e.service_time


def test_a_full_queue_sheds() -> None:
    # one server, service 1s, queue of 2 (max wait 2s): the 4th simultaneous arrival is shed
    free = [0.0]
    results = []
    for _ in range(5):
        slot = admit(free, 10.0, 1.0, 2.0)
        results.append(slot)
        if slot is not None:
            free[slot[0]] = slot[2]
    assert [r is None for r in results] == [False, False, False, True, True]


def test_overshoot_does_not_move_the_schedule() -> None:
    # A response written late (the caller slept past finish) does not delay the next slot:
    # admission depends only on free_at, which holds the *scheduled* finish.
    free = [0.0]
    first = admit(free, 0.0, 0.01, 1.0)
    assert first is not None
    free[0] = first[2]
    second = admit(free, 0.0, 0.01, 1.0)  # queued behind the first
    assert second is not None and second[1] == pytest.approx(0.01)


def test_resize_keeps_the_earliest_and_adds_free_servers() -> None:
    assert resize([5.0, 1.0, 3.0], 2, now=2.0) == [2.0, 3.0]
    assert resize([5.0], 3, now=2.0) == [5.0, 2.0, 2.0]


def test_shared_schedule_survives_a_reconfigure(tmp_path: Path) -> None:
    path = tmp_path / "c.shm"
    schedule = SharedSchedule.create(path, Emulation(pods=1, pod_rate=10), enabled=True)
    other = SharedSchedule(path)  # as another process would map it
    first, second = other.admit(100.0), schedule.admit(100.0)
    assert first is not None and second is not None
    assert second.start == pytest.approx(first.finish)  # one server, shared
    schedule.configure(Emulation(pods=2, pod_rate=10), enabled=True, now=100.0)
    third = other.admit(100.0)
    assert third is not None and third.start == pytest.approx(100.0)  # the new, free server
    emulation, enabled = other.current()
    assert emulation.pods == 2 and enabled
    assert other.counts() == (3, 0)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"pods": 0},
        {"pods": 300},
        {"pod_rate": 0},
        {"sigma": -0.1},
        {"kappa": 2},
        {"queue_depth": -1},
    ],
)
def test_emulation_rejects_nonsense(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        Emulation(**kwargs)  # type: ignore[arg-type]


# ------------------------------------------------------------------ rate limiter


def test_gcra_allows_a_burst_then_the_rate() -> None:
    # 10/s with a burst of 3: three at t=0 pass, the fourth waits 0.1s
    tat = 0.0
    allowed = []
    for _ in range(4):
        d = decide(tat, 100.0, rate=10, burst=3)
        allowed.append(d.allowed)
        if d.allowed:
            tat = d.tat
    assert allowed == [True, True, True, False]
    refused = decide(tat, 100.0, rate=10, burst=3)
    assert refused.retry_after == pytest.approx(0.1)
    assert refused.remaining == 0
    assert decide(tat, 100.1, rate=10, burst=3).allowed  # one interval later


def test_gcra_headers() -> None:
    d = decide(0.0, 50.0, rate=5, burst=5)
    headers = dict(d.headers())
    assert headers == {
        "X-RateLimit-Limit": "5",
        "X-RateLimit-Remaining": "4",
        "X-RateLimit-Reset": "1",
    }
    refused = decide(60.0, 50.0, rate=5, burst=5)
    assert not refused.allowed and dict(refused.headers())["Retry-After"] == "10"


# ------------------------------------------------------------------ faults


@pytest.mark.parametrize(
    ("text", "spec"),
    [
        ("", FaultSpec()),
        ("error=0.01", FaultSpec(error=0.01)),
        ("error=1%:503", FaultSpec(error=0.01, error_status=503)),
        ("reset=0.005,stall=0.001", FaultSpec(reset=0.005, stall=0.001)),
        ("slow=0.02:200ms", FaultSpec(slow=0.02, slow_median=0.2)),
        ("slow=0.5:1s:1.5", FaultSpec(slow=0.5, slow_median=1.0, slow_sigma=1.5)),
    ],
)
def test_fault_specs_parse(text: str, spec: FaultSpec) -> None:
    assert parse_faults(text) == spec
    assert parse_faults(spec.describe()) == spec  # describe() writes the same syntax


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("boom=0.1", "kind one of"),
        ("error", "kind=rate"),
        ("error=2", "from 0 to 1"),
        ("error=x", "must be a number"),
        ("error=0.1:404", "5xx"),
        ("slow=0.1", "slow=RATE:MEDIAN"),
        ("slow=0.1:fast", "not a duration"),
        ("reset=0.1:5", "only a rate"),
        ("error=0.6,reset=0.6", "must not exceed 1"),
        ("error=0.1,error=0.2", "twice"),
    ],
)
def test_bad_fault_specs_explain_themselves(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_faults(text)


def test_fault_decisions_are_seeded_and_proportional() -> None:
    spec = parse_faults("error=0.1,reset=0.05,slow=0.2:100ms,stall=0.05")
    first = [FaultInjector(spec, seed=7).decide() for _ in range(1)]
    a = FaultInjector(spec, seed=7)
    b = FaultInjector(spec, seed=7)
    seq_a = [a.decide() for _ in range(4000)]
    assert seq_a == [b.decide() for _ in range(4000)]
    assert seq_a[:1] == first
    assert [FaultInjector(spec, seed=7, stream=1).decide() for _ in range(50)] != seq_a[:50]
    counts = {k: sum(1 for f in seq_a if f and f.kind == k) / 4000 for k in spec_kinds()}
    assert counts["error"] == pytest.approx(0.1, abs=0.02)
    assert counts["reset"] == pytest.approx(0.05, abs=0.015)
    assert counts["slow"] == pytest.approx(0.2, abs=0.03)
    assert counts["stall"] == pytest.approx(0.05, abs=0.015)
    delays = sorted(f.delay for f in seq_a if f and f.kind == "slow")
    assert delays[len(delays) // 2] == pytest.approx(0.1, rel=0.15)  # the median is 100ms


def spec_kinds() -> tuple[str, ...]:
    return ("error", "reset", "slow", "stall")
