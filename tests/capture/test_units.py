"""Durations, rates and factors: parsed once, the same way in every command."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from capture.units import format_duration_ns, parse_duration_ns, parse_factor, parse_rate

S = 1_000_000_000


@pytest.mark.parametrize(
    ("text", "ns"),
    [
        ("90", 90 * S),  # a bare number is seconds
        ("90s", 90 * S),
        ("5m", 300 * S),
        ("2h", 7200 * S),
        ("1h30m", 5400 * S),  # parts add up
        ("250ms", 250_000_000),
        ("1.5s", 1_500_000_000),
        (" 10S ", 10 * S),  # case and spaces do not matter
    ],
)
def test_durations(text: str, ns: int) -> None:
    assert parse_duration_ns(text) == ns


@pytest.mark.parametrize("text", ["", "abc", "-3s", "5 minutes", "1h-2m", "s", "inf", "nan", "3x"])
def test_bad_durations_say_what_is_wrong(text: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_duration_ns(text)
    assert str(info.value)


@given(st.integers(0, 10**6), st.sampled_from(["ms", "s", "m", "h"]))
def test_duration_units_scale(n: int, unit: str) -> None:
    scale = {"ms": 10**6, "s": S, "m": 60 * S, "h": 3600 * S}[unit]
    assert parse_duration_ns(f"{n}{unit}") == n * scale


@pytest.mark.parametrize(
    ("text", "rate"), [("200", 200.0), ("200/s", 200.0), ("1.5k", 1500.0), ("600/m", 10.0)]
)
def test_rates(text: str, rate: float) -> None:
    assert parse_rate(text) == pytest.approx(rate)


@pytest.mark.parametrize("text", ["-1", "0", "abc", "inf", "1/x"])
def test_bad_rates(text: str) -> None:
    with pytest.raises(ValueError, match="rate"):
        parse_rate(text)


@pytest.mark.parametrize(("text", "value"), [("5x", 5.0), ("2.5x", 2.5), ("0.5X", 0.5), ("3", 3.0)])
def test_factors(text: str, value: float) -> None:
    assert parse_factor(text) == value


@pytest.mark.parametrize("text", ["0", "0x", "x5", "-2x", "fivex", "infx"])
def test_bad_factors(text: str) -> None:
    with pytest.raises(ValueError, match="factor"):
        parse_factor(text)


@given(st.integers(1, 10**14))
def test_formatted_durations_parse_back_close(ns: int) -> None:
    text = format_duration_ns(ns)
    assert abs(parse_duration_ns(text) - ns) <= max(ns * 0.05, 60 * S if ns >= 3600 * S else S)
