"""Scenario runs second by second: each arrival-rate scenario offers, in every full second of
the results' timeline, what its rate curve puts in that second, and a ramping-VUs scenario
runs, in every second, the VUs its stages give at mid-second. Against a real loopback
server; the expected counts are worked out here from the file's numbers, not by the code
under test. Offered counts are the schedule's (requests that came due), so they do not
depend on how fast this machine is; nothing here asserts on latency."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

from .test_scenarios import ROOT, replay_command, replay_env

# car's hits are due at 25 ms + n * 50 ms and rar's 10 ms after the instants its curve
# crosses a whole number: a start_time keeps them off the second boundaries, where the
# worker's once-a-second fold and a request due at the same instant could fall either way.
FILE = """
[scenarios.car]
executor = "constant-arrival-rate"
corpus = "ingestion"
rate = 20
duration = "4s"
start_time = "25ms"

[scenarios.rar]
executor = "ramping-arrival-rate"
corpus = "ingestion"
start_rate = 0
stages = [
  { duration = "2s", target = 30 },
  { duration = "2s", target = 30 },
  { duration = "2s", target = 0 },
]
start_time = "10ms"

[scenarios.rvu]
executor = "ramping-vus"
corpus = "query"
start_vus = 0
stages = [
  { duration = "3s", target = 3 },
  { duration = "1s", target = 3 },
  { duration = "2s", target = 1 },
]
think_time = "0.1s"
graceful_stop = "0.5s"
"""

# rar's rate r(t) in requests per second, piecewise linear: (start s, end s, from, to)
RAR = [(0, 2, 0, 30), (2, 4, 30, 30), (4, 6, 30, 0)]
RAR_START = Fraction(1, 100)


def rar_due(t: Fraction) -> Fraction:
    """Requests of rar due before run time t: the area under r from its start_time to t."""
    u = t - RAR_START
    area = Fraction(0)
    for start, end, a, b in RAR:
        if u <= start:
            break
        x = min(u, Fraction(end)) - start  # how far into this piece
        slope = Fraction(b - a, end - start)
        area += a * x + slope * x * x / 2
    return area


# rvu's VUs at mid-second k + 0.5 s (k6's rule: rounded down while ramping up, a VU joins
# once the line reaches it; rounded up while ramping down, one leaves once the line has left
# it). 0 -> 3 over 3 s is the line t: 0.5, 1.5, 2.5 -> 0, 1, 2; then 3 held: 3.5 -> 3;
# then 3 -> 1 over 2 s is the line 3 - (t - 4): 4.5 -> 2.5 -> 3, 5.5 -> 1.5 -> 2.
RVU_AT_MID_SECOND = [0, 1, 2, 3, 3, 2]


def test_offered_and_vus_second_by_second(tiny_server: Callable[..., str], tmp_path: Path) -> None:
    url = tiny_server()
    file = tmp_path / "timeline.toml"
    file.write_text(FILE)
    out = tmp_path / "r.json"
    done = subprocess.run(
        replay_command(
            *("--scenario", str(file), "--target", url, "-q", "--workers", "2"),
            *("--max-inflight", "200", "--out", str(out)),
        ),
        capture_output=True,
        text=True,
        timeout=120,
        env=replay_env(),
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    r = json.loads(out.read_text())
    rows = {row["t"]: row["scenarios"] for row in r["timeline"]}
    assert set(range(6)) <= set(rows), sorted(rows)

    # constant-arrival-rate: 20 in each of the four seconds (hits at 0.025 + 0.05 n s)
    car = [rows[k]["car"]["offered"] for k in range(4)]
    assert all(abs(n - 20) <= 1 for n in car), car
    assert r["scenarios"]["car"]["totals"]["offered"] == 80
    assert all(rows[k]["car"]["offered"] == 0 for k in rows if k >= 4)

    # ramping-arrival-rate: each second's count is the area under the ramp over it
    # (7.5, 22.5, 30, 30, 22.5, 7.5 requests, shifted by the 10 ms start_time)
    for k in range(6):
        expected = rar_due(Fraction(k + 1)) - rar_due(Fraction(k))
        got = rows[k]["rar"]["offered"]
        assert abs(got - expected) <= 1 + expected / 100, (k, got, float(expected))
    assert r["scenarios"]["rar"]["totals"]["offered"] == 120  # the whole area, 120

    # ramping-vus: the stages' count at each mid-second, summed over both workers
    vus = [rows[k]["rvu"]["active_vus"] for k in range(6)]
    assert vus == RVU_AT_MID_SECOND
    # arrival-rate scenarios run no VUs; the row's total is rvu's
    assert all("active_vus" not in rows[k]["car"] for k in range(6))
