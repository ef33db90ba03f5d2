"""The CSV of measured points: what it accepts, and one clear error naming the line otherwise."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from planner.errors import InputError
from planner.points import gather, parse_csv, read_csv

rows_strategy = st.lists(
    st.tuples(
        st.integers(1, 10_000),
        st.floats(1e-6, 1e9, allow_nan=False, allow_infinity=False),
    ),
    min_size=1,
    max_size=40,
)


@settings(max_examples=100, deadline=None)
@given(rows=rows_strategy, column=st.sampled_from(["pods", "concurrency", " Pods "]))
def test_round_trip(rows, column):
    # Whatever is written as numbers is read back exactly (repr round-trips floats).
    text = f"{column},throughput\n" + "".join(f"{n},{x!r}\n" for n, x in rows)
    assert parse_csv(text, "m.csv") == rows


@settings(max_examples=100, deadline=None)
@given(
    rows=rows_strategy,
    data=st.data(),
    bad=st.sampled_from(["abc", "", "nan", "inf", "-5", "1.5e", "0x10", "1 000"]),
)
def test_a_bad_throughput_names_its_line(rows, data, bad):
    # The header is line 1, so data row i is line i + 2.
    i = data.draw(st.integers(0, len(rows) - 1))
    lines = [f"{n},{x!r}" for n, x in rows]
    lines[i] = f"{rows[i][0]},{bad}"
    text = "pods,throughput\n" + "\n".join(lines) + "\n"
    with pytest.raises(InputError) as caught:
        parse_csv(text, "m.csv")
    assert str(caught.value).startswith(f"m.csv: line {i + 2}: ")


@pytest.mark.parametrize(
    ("text", "where", "fragment"),
    [
        ("n,x\n1,2\n", "line 1", "header"),  # wrong header names
        ("pods,pods,throughput\n1,1,2\n", "line 1", "header"),  # ambiguous header
        ("pods,throughput\n1,100\n2,abc\n", "line 3", "'abc' is not a number"),
        ("pods,throughput\n1,100\n-2,150\n", "line 3", "negative"),
        ("pods,throughput\n1,-100\n", "line 2", "negative"),
        ("pods,throughput\n1,0\n", "line 2", "greater than 0"),
        ("pods,throughput\n1.5,100\n", "line 2", "whole number"),
        ("pods,throughput\n0,100\n", "line 2", "whole number"),
        ("pods,throughput\n1\n", "line 2", "column"),
        ("pods,throughput\n", "", "no data rows"),
        ("", "", "empty"),
    ],
)
def test_bad_csv(text, where, fragment):
    with pytest.raises(InputError) as caught:
        parse_csv(text, "m.csv")
    assert caught.value.where == where
    assert fragment in caught.value.message
    assert "\n" not in str(caught.value)


def test_comments_blank_lines_extra_columns_and_order():
    text = "# measured on staging\n\nthroughput,p99_ms,concurrency\n900,80,1\n\n1700,85,2\n"
    assert parse_csv(text) == [(1, 900.0), (2, 1700.0)]


def test_read_csv_file_errors(tmp_path, cisco_csv):
    with pytest.raises(InputError, match="no such file"):
        read_csv(tmp_path / "missing.csv")
    points = read_csv(cisco_csv)
    assert len(points) == 32 and points[0].pods == 1 and points[-1].capacity == 12074.39


def test_gather_pools_sweeps_and_csv(tmp_path, make_sweep):
    sweep = make_sweep([1, 2, 4], 0.05, 0.001, 1000.0)
    csv = tmp_path / "more.csv"
    csv.write_text("pods,throughput\n8,6000\n")
    measured = gather([sweep], csv)
    assert [p.pods for p in measured.points] == [1, 2, 4, 8]
    n, x = measured.capacity_series()
    assert n == [1, 2, 4, 8] and x[-1] == 6000.0
    assert measured.x_max_series()[0] == [1, 2, 4]  # the CSV has no x_max
