"""make_plan: typed arguments into a RunPlan, or one InputError naming the option at fault."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from capture.errors import InputError
from replay.plan import RunPlan, make_plan
from replay.schedulers import SCHEDULERS, ClosedScheduler, RateScheduler, TimelineScheduler

NS = 1_000_000_000


def test_the_model_follows_from_the_arguments(synth_corpus: Callable[..., Path]) -> None:
    corpus = str(synth_corpus(seconds=2))
    assert make_plan(corpus).model == "timeline"
    assert make_plan(corpus, rate=10.0).model == "rate"
    assert make_plan(corpus, stages=[(NS, 5.0)]).model == "rate"
    assert make_plan(corpus, vus=3).model == "closed"
    # and each model has its scheduler (replay.executors, once imported, adds k6's names)
    assert {
        "timeline": TimelineScheduler,
        "rate": RateScheduler,
        "closed": ClosedScheduler,
    }.items() <= SCHEDULERS.items()


def test_durations(synth_corpus: Callable[..., Path]) -> None:
    corpus = str(synth_corpus(rate=50, seconds=2))
    # stages: their sum; --duration: as given; the timeline: the corpus's period over --speed
    assert make_plan(corpus, stages=[(NS, 5.0), (3 * NS, 1.0)]).duration_ns == 4 * NS
    assert make_plan(corpus, rate=1.0, duration_ns=7 * NS).duration_ns == 7 * NS
    whole = make_plan(corpus).duration_ns
    assert make_plan(corpus, speed=2.0).duration_ns == whole // 2
    assert 1.9 * NS <= whole <= 2.1 * NS


def test_a_plan_is_a_value_the_sweep_can_replace(synth_corpus: Callable[..., Path]) -> None:
    from dataclasses import replace

    plan = make_plan(str(synth_corpus()), rate=1.0, duration_ns=NS, workers=2, seed=5)
    assert isinstance(plan, RunPlan)
    step = replace(plan, rate=40.0, duration_ns=3 * NS)
    assert (step.rate, step.duration_ns, step.workers, step.seed) == (40.0, 3 * NS, 2, 5)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"vus": 2, "rate": 5.0}, "--vus (closed model) cannot be combined"),
        ({"rate": 5.0, "scale": 2.0}, "--scale and --speed apply to the corpus timeline"),
        ({"arrival": "poisson"}, "--arrival poisson needs --rate"),
        ({"arrival": "bursty", "rate": 1.0}, "--arrival bursty"),
        ({"think_ns": NS}, "--think-time needs --vus"),
        ({"stages": [(NS, 1.0)], "duration_ns": NS}, "drop --duration"),
        ({"abort_on_fail": True}, "--abort-on-fail needs at least one --threshold"),
        ({"rate": 1.0, "thresholds": ["nonsense"]}, "--threshold:"),
        ({"model": "closed", "rate": 1.0}, "the closed model needs --vus"),
        ({"model": "rate"}, "the rate model needs --rate or --stage"),
        ({"model": "constant-vus"}, "unknown load model 'constant-vus'"),
    ],
)
def test_bad_combinations_are_one_input_error(
    synth_corpus: Callable[..., Path], kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(InputError) as caught:
        make_plan(str(synth_corpus()), **kwargs)  # type: ignore[arg-type]
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_corpus_that_is_not_there_names_the_bundled_ones(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not a bundled corpus"):
        make_plan("no-such-corpus")
    with pytest.raises(InputError, match="no such"):
        make_plan(str(tmp_path / "missing.atc"))
