"""The report's histogram reading: the batch decoder against replay's own decoder (itself
checked against hdrh), and table percentiles against LatencyHistogram's."""

from __future__ import annotations

import base64
import zlib

import numpy as np
import pytest
from hdrh.histogram import HdrHistogram
from hypothesis import given, settings
from hypothesis import strategies as st

from replay.histogram import LatencyHistogram, decode_sparse, encode_sparse, sparse_from_values
from replay.histogram_decode import HistogramDecodeError, decode_histogram, decode_many
from replay.histogram_table import HistTable

values_us = st.lists(
    st.one_of(
        st.integers(0, 2_000),
        st.integers(0, 10_000_000),
        st.integers(3_000_000_000, 4_000_000_000),  # around the clamp at one hour
        st.integers(10**7, 10**9),
    ),
    max_size=300,
)


@settings(max_examples=60, deadline=None)
@given(st.lists(values_us, min_size=1, max_size=8))
def test_batch_decode_equals_decode_sparse(batches: list[list[int]]) -> None:
    encoded = [encode_sparse(sparse_from_values(v)) for v in batches]
    item, bucket, count = decode_many(encoded)
    for i, s in enumerate(encoded):
        expected = decode_sparse(s)
        mine = item == i
        assert np.array_equal(bucket[mine], expected.buckets)
        assert np.array_equal(count[mine], expected.counts)
        one = decode_histogram(s)
        assert np.array_equal(one.buckets, expected.buckets)
        assert np.array_equal(one.counts, expected.counts)


def test_large_counts_take_multi_byte_words() -> None:
    # one bucket holding 2**40 values needs a 6-byte word; zero runs of thousands need two
    hist = HdrHistogram(1, 3_600_000_000, 3)
    hist.record_value(1500, 2**40)
    hist.record_value(900_000_000, 3)
    encoded = hist.encode().decode("ascii")
    _item, bucket, count = decode_many([encoded])
    expected = decode_sparse(encoded)
    assert np.array_equal(bucket, expected.buckets)
    assert count.tolist() == [2**40, 3]


def test_an_encoding_other_than_replays_goes_to_the_existing_decoder() -> None:
    # another highest trackable value: the existing decoder's message, unchanged
    other = HdrHistogram(1, 60_000_000, 3)
    other.record_value(1000)
    encoded = other.encode().decode("ascii")
    with pytest.raises(ValueError) as mine:
        decode_histogram(encoded)
    with pytest.raises(ValueError) as theirs:
        decode_sparse(encoded)
    assert str(mine.value) == str(theirs.value)


@pytest.mark.parametrize(
    "bad",
    [
        "not base64 at all!",
        base64.b64encode(b"\x1c\x84\x93\x14\x00\x00\x00\x05hello").decode(),
        base64.b64encode(b"\x1c\x84\x93\x14\x00\x00\x00\x04" + zlib.compress(b"x")).decode(),
    ],
)
def test_damaged_strings_name_the_item(bad: str) -> None:
    good = LatencyHistogram().encode()
    with pytest.raises(HistogramDecodeError) as exc:
        decode_many([good, bad])
    assert exc.value.index == 1
    with pytest.raises(ValueError) as theirs:
        decode_sparse(bad)
    assert str(exc.value) == str(theirs.value)


def test_a_truncated_word_is_refused() -> None:
    hist = LatencyHistogram()
    hist.record_many([5000] * 300)  # a count of 300 is a two-byte word
    raw = base64.b64decode(hist.encode())
    payload = zlib.decompress(raw[8:])
    cut = zlib.compress(payload[:-1])
    header = bytearray(raw[:8])
    header[4:8] = len(cut).to_bytes(4, "big")
    # the inner length no longer matches either: the existing decoder decides
    encoded = base64.b64encode(bytes(header) + cut).decode()
    with pytest.raises(ValueError):
        decode_histogram(encoded)


@settings(max_examples=50, deadline=None)
@given(
    st.lists(values_us, min_size=1, max_size=6),
    st.lists(st.floats(0, 100), min_size=1, max_size=5),
)
def test_table_percentiles_equal_latency_histograms(
    groups: list[list[int]], ps: list[float]
) -> None:
    rows = [(g, sparse_from_values(v)) for g, v in enumerate(groups)]
    group = np.concatenate([np.full(s.buckets.size, g, np.int64) for g, s in rows])
    bucket = np.concatenate([s.buckets for _, s in rows])
    count = np.concatenate([s.counts for _, s in rows])
    table = HistTable.from_rows(len(groups), group, bucket, count)
    got = table.percentiles(ps)
    for g, v in enumerate(groups):
        if not v:
            assert np.all(np.isnan(got[g]))
            continue
        hist = LatencyHistogram()
        hist.record_many(v)
        assert got[g].tolist() == hist.percentiles(ps)


@settings(max_examples=60, deadline=None)
@given(st.lists(values_us, min_size=2, max_size=8), st.data())
def test_regroup_adds_counts_exactly(groups: list[list[int]], data: st.DataObject) -> None:
    mapping = np.asarray(
        data.draw(st.lists(st.integers(-1, 2), min_size=len(groups), max_size=len(groups))),
        np.int64,
    )
    rows = [(g, sparse_from_values(v)) for g, v in enumerate(groups)]
    table = HistTable.from_rows(
        len(groups),
        np.concatenate([np.full(s.buckets.size, g, np.int64) for g, s in rows]),
        np.concatenate([s.buckets for _, s in rows]),
        np.concatenate([s.counts for _, s in rows]),
    )
    merged = table.regroup(mapping, 3)
    for target in range(3):
        hist = LatencyHistogram()
        for g, v in enumerate(groups):
            if mapping[g] == target:
                hist.record_many(v)
        assert int(merged.totals()[target]) == hist.count
        mine = merged.bucket[merged.group == target]
        assert np.array_equal(mine, np.flatnonzero(hist.counts))
        assert np.array_equal(merged.count[merged.group == target], hist.counts[mine])
