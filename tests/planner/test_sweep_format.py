"""The sweep file (planner-sweep/1): round trip, derivations, and errors that name the field."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest

from planner.errors import InputError
from planner.points import points_from_sweep
from planner.sweep_format import (
    SCHEMA,
    PodPoint,
    Slo,
    Step,
    load_sweep,
    sweep_from_dict,
    sweep_to_dict,
    write_sweep,
)


def step(offered: float, achieved: float, p99: float | None, errors: int = 0) -> Step:
    return Step(
        offered, achieved, None if p99 is None else p99 / 4, p99, p99, errors, 0, 1000, 10.0
    )


def test_from_steps_derives_x_max_and_x_slo():
    slo = Slo(p99_ms=100, max_error_rate=0.01)
    steps = [
        step(1000, 1000, 40),  # passes
        step(2000, 1995, 90),  # passes: achieved ≥ 99% of offered
        step(2500, 2400, 95),  # fails: achieved 96% of offered
        step(3000, 2600, 400),  # fails: p99; the highest achieved rate
        step(1500, 1500, 99.9, errors=11),  # fails: error rate 1.1%
    ]
    point = PodPoint.from_steps(3, steps, slo)
    assert point.x_max == 2600
    assert point.x_slo == 2000
    assert [s.passed_slo for s in point.steps] == [True, True, False, False, False]


def test_p99_equal_to_the_slo_fails_and_error_rate_equal_to_the_limit_passes():
    slo = Slo(p99_ms=100, max_error_rate=0.01)
    assert not slo.passes(step(100, 100, 100.0))
    assert slo.passes(step(100, 100, 99.0, errors=10))  # 10/1000 = the limit
    assert not slo.passes(step(100, 100, None))  # no completed request: no latency, no pass


def test_no_passing_step_gives_null_x_slo():
    point = PodPoint.from_steps(1, [step(100, 50, 500)], Slo())
    assert point.x_slo is None and point.x_max == 50


def test_round_trip(tmp_path, synth_sweep):
    sweep = synth_sweep([1, 2, 3], 0.05, 0.001, 1000.0, noise=0.02, seed=1)
    path = tmp_path / "s.json"
    write_sweep(sweep, path)
    assert load_sweep(path) == sweep
    assert json.loads(path.read_text())["schema"] == SCHEMA
    assert [p.name for p in tmp_path.iterdir()] == ["s.json"]  # no temporary left behind


def test_with_point_replaces_the_same_pod_count(synth_sweep):
    sweep = synth_sweep([1, 2], 0.05, 0.001, 1000.0)
    again = PodPoint.from_steps(2, [step(10, 10, 5)], sweep.slo)
    updated = sweep.with_point(again)
    assert [p.pods for p in updated.points] == [1, 2]
    assert updated.points[1] == again


def _valid(synth_sweep: Any) -> dict[str, Any]:
    return sweep_to_dict(synth_sweep([1, 2], 0.05, 0.001, 1000.0))


def _set(data: dict[str, Any], path: list[Any], value: Any) -> None:
    for key in path[:-1]:
        data = data[key]
    if value is _DELETE:
        del data[path[-1]]
    else:
        data[path[-1]] = value


_DELETE = object()


@pytest.mark.parametrize(
    ("path", "value", "where"),
    [
        (["schema"], "planner-sweep/2", "schema"),  # an unknown version
        (["slo"], _DELETE, "slo"),
        (["slo", "p99_ms"], "100ms", "slo.p99_ms"),  # a string where a number goes
        (["points"], {}, "points"),
        (["points", 1, "pods"], 1, "points[1].pods"),  # two points at one pod count
        (["points", 0, "pods"], 0, "points[0].pods"),
        (["points", 0, "pods"], 1.5, "points[0].pods"),
        (["points", 0, "x_max"], -3, "points[0].x_max"),  # negative
        (["points", 0, "x_max"], 1.0, "points[0].x_max"),  # disagrees with its steps
        (["points", 0, "x_slo"], None, "points[0].x_slo"),  # disagrees with its steps
        (["points", 0, "steps", 2, "p99_ms"], "abc", "points[0].steps[2].p99_ms"),
        (["points", 0, "steps", 2, "errors"], True, "points[0].steps[2].errors"),
        (["points", 0, "steps", 2, "errors"], 10**9, "points[0].steps[2].errors"),
        (["points", 0, "steps", 2, "offered_rps"], 0, "points[0].steps[2].offered_rps"),
        (["points", 0, "steps", 0, "passed_slo"], False, "points[0].steps[0].passed_slo"),
        (["points", 0, "steps", 0, "dropped"], _DELETE, "points[0].steps[0].dropped"),
        (["points", 0, "steps"], [], "points[0].steps"),  # complete but empty
        (["started"], "yesterday", "started"),
    ],
)
def test_invalid_sweeps_name_the_field(synth_sweep, path, value, where):
    data = copy.deepcopy(_valid(synth_sweep))
    _set(data, path, value)
    with pytest.raises(InputError) as caught:
        sweep_from_dict(data, "s.json")
    assert caught.value.path == "s.json"
    assert caught.value.where == where, str(caught.value)
    assert "\n" not in str(caught.value)


def test_incomplete_point_without_steps_loads_and_is_left_out(synth_sweep):
    data = _valid(synth_sweep)
    data["points"][1] = {"pods": 4, "complete": False, "x_max": 0, "x_slo": None, "steps": []}
    sweep = sweep_from_dict(data, "s.json")
    points, notes = points_from_sweep(sweep, "s.json")
    assert [p.pods for p in points] == [1]
    assert [c.code for c in notes] == ["incomplete_point"]


def test_file_errors(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        load_sweep(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"schema": "planner-sweep/1",\n "points": [}\n')
    with pytest.raises(InputError) as caught:
        load_sweep(bad)
    assert caught.value.where == "line 2"
    top = tmp_path / "list.json"
    top.write_text("[]")
    with pytest.raises(InputError, match="expected an object"):
        load_sweep(top)


def test_the_documented_example_loads():
    # docs/sweep-format.md's example is a valid file: the documentation cannot drift.
    doc = (Path(__file__).parents[2] / "docs" / "sweep-format.md").read_text()
    example = re.search(r"```json\n(.*?)```", doc, re.DOTALL).group(1)
    sweep = sweep_from_dict(json.loads(example), "docs/sweep-format.md")
    (point,) = sweep.points
    assert (point.pods, point.x_max, point.x_slo) == (1, 1843.2, 1700.0)
