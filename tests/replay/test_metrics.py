"""Histograms, the worker's recorder and the coordinator's aggregate (replay/histogram.py,
replay/recorder.py, replay/aggregate.py).

The histogram is checked against ``hdrh`` itself, an independent implementation of the same
layout: bucket boundaries, indices, every statistic and the encoded bytes.
"""

from __future__ import annotations

import base64
import random
import struct
import zlib
from collections import Counter

import msgpack
import numpy as np
import pytest
from hdrh import codec as hdrh_codec
from hdrh.histogram import HdrHistogram
from hypothesis import given, settings
from hypothesis import strategies as st

from replay.aggregate import RunAggregate, is_ok, status_matches
from replay.histogram import (
    COUNTS_LEN,
    HIGHEST_EQUIVALENT,
    HIGHEST_US,
    LOWEST_EQUIVALENT,
    MEDIAN_EQUIVALENT,
    LatencyHistogram,
    bucket_indices,
    decode_sparse,
    encode_sparse,
    sparse_from_values,
)
from replay.recorder import IntervalRecorder, fold_series

MS = 1_000_000  # ns
values_us = st.lists(st.integers(min_value=0, max_value=HIGHEST_US), max_size=300)


def hdrh_of(values: list[int]) -> HdrHistogram:
    h = HdrHistogram(1, HIGHEST_US, 3)
    for v in values:
        h.record_value(v)
    return h


def hist_of(values: list[int]) -> LatencyHistogram:
    h = LatencyHistogram()
    h.record_many(values)
    return h


# -- the layout is hdrh's ---------------------------------------------------------------------
def test_bucket_layout_is_hdrhs_for_every_index() -> None:
    h = HdrHistogram(1, HIGHEST_US, 3)
    assert h.counts_len == COUNTS_LEN
    for i in range(COUNTS_LEN):
        v = h.get_value_from_index(i)
        assert LOWEST_EQUIVALENT[i] == v == h.get_lowest_equivalent_value(v)
        assert HIGHEST_EQUIVALENT[i] == h.get_highest_equivalent_value(v)
        assert MEDIAN_EQUIVALENT[i] == h._hdr_median_equiv_value(v)


@pytest.mark.parametrize(
    "value",
    [
        0,  # below the lowest discernible value: bucket 0
        1,
        1023,
        1024,  # first value of the first bucket's upper half
        2047,  # last value with unit resolution
        2048,  # first value with resolution 2
        2049,
        4095,
        4096,
        1_000_000,  # one second
        HIGHEST_US,  # one hour, the clamp value
        2**32 - 1,  # the counts array still covers it
    ],
)
def test_bucket_index_matches_hdrh_at_edges(value: int) -> None:
    h = HdrHistogram(1, HIGHEST_US, 3)
    assert int(bucket_indices([value])[0]) == h._counts_index_for(value)


@settings(deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=HIGHEST_US), min_size=1, max_size=200))
def test_bucket_indices_match_hdrh(values: list[int]) -> None:
    h = HdrHistogram(1, HIGHEST_US, 3)
    assert bucket_indices(values).tolist() == [h._counts_index_for(v) for v in values]


@settings(max_examples=60, deadline=None)
@given(values_us)
def test_statistics_match_hdrh(values: list[int]) -> None:
    ours, theirs = hist_of(values), hdrh_of(values)
    assert ours.count == theirs.get_total_count() == len(values)
    for p in (0.0, 1.0, 25.0, 50.0, 90.0, 99.0, 99.9, 100.0):
        assert ours.percentile(p) == theirs.get_value_at_percentile(p) / 1000
    assert ours.max == theirs.get_max_value() / 1000
    assert ours.min == (theirs.get_min_value() / 1000 if values else 0.0)
    assert ours.mean == pytest.approx(theirs.get_mean_value() / 1000, rel=1e-12)


# -- codec -------------------------------------------------------------------------------------
@settings(max_examples=60, deadline=None)
@given(values_us)
def test_encoding_is_byte_for_byte_hdrhs_and_round_trips(values: list[int]) -> None:
    ours = hist_of(values)
    encoded = ours.encode()
    assert encoded == hdrh_of(values).encode().decode("ascii")
    assert LatencyHistogram.decode(encoded) == ours
    assert encode_sparse(ours.to_sparse()) == encoded
    sparse = decode_sparse(encoded, clamped=3)
    assert LatencyHistogram.from_sparse(sparse) == LatencyHistogram.decode(encoded, clamped=3)
    # And hdrh reads ours: the standard format other HdrHistogram tools read.
    assert HdrHistogram.decode(encoded).get_total_count() == len(values)


@settings(deadline=None)
@given(st.text(max_size=80))
def test_decoding_text_that_is_not_a_histogram_is_a_value_error(text: str) -> None:
    with pytest.raises(ValueError, match="HdrHistogram"):
        LatencyHistogram.decode(text)


@settings(max_examples=60, deadline=None)
@given(st.integers(min_value=0, max_value=10_000), st.data())
def test_corrupted_encodings_never_crash(seed: int, data: st.DataObject) -> None:
    rng = random.Random(seed)
    encoded = list(hist_of([rng.randrange(1, 10**7) for _ in range(50)]).encode())
    i = data.draw(st.integers(min_value=0, max_value=len(encoded) - 1))
    encoded[i] = data.draw(st.sampled_from("ABCDEFGHIJ+/=0123456789abcdef"))
    text = "".join(encoded)
    try:
        decoded = LatencyHistogram.decode(text)
    except ValueError:
        return
    assert decoded.count >= 0  # decoded to *some* histogram: also fine, never a crash


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300), st.booleans())
def test_valid_envelopes_around_garbage_counts_never_crash(body: bytes, true_length: bool) -> None:
    # Past base64, zlib and the cookies, the varint decoder (C, in pyhdrh) sees the bytes.
    header = hdrh_codec.PayloadHeader()
    header.cookie = hdrh_codec.get_encoding_cookie()
    header.payload_len = len(body) if true_length else len(body) + 7
    header.significant_figures = 3
    header.lowest_trackable_value = 1
    header.highest_trackable_value = HIGHEST_US
    header.conversion_ratio_bits = 1
    compressed = zlib.compress(bytes(header) + body)
    outer = hdrh_codec.ExternalHeader()
    outer.cookie = hdrh_codec.get_compression_cookie()
    outer.length = len(compressed)
    try:
        LatencyHistogram.decode(base64.b64encode(bytes(outer) + compressed))
    except ValueError as exc:
        assert "HdrHistogram" in str(exc)


def test_a_histogram_with_another_range_is_refused() -> None:
    other = HdrHistogram(1, 60_000_000, 2)
    other.record_value(5000)
    with pytest.raises(ValueError, match="range"):
        LatencyHistogram.decode(other.encode())


# -- recording ---------------------------------------------------------------------------------
def test_values_above_one_hour_are_clamped_and_counted_never_dropped() -> None:
    h = hist_of([5, HIGHEST_US + 1, 10 * HIGHEST_US])
    assert h.count == 3
    assert h.clamped == 2
    assert h.max == HIGHEST_EQUIVALENT[bucket_indices([HIGHEST_US])[0]] / 1000
    single = LatencyHistogram()
    for v in (5, HIGHEST_US + 1, 10 * HIGHEST_US):
        single.record(v)
    assert single == h


def test_negative_values_are_recorded_as_zero() -> None:
    h = hist_of([-5, -1, 0])
    assert h.count == 3 and h.max == 0.0 and h.clamped == 0


@settings(max_examples=40, deadline=None)
@given(values_us, st.integers(min_value=1, max_value=5), st.randoms(use_true_random=False))
def test_merging_parts_equals_recording_all(
    values: list[int], parts: int, rnd: random.Random
) -> None:
    pieces: list[list[int]] = [[] for _ in range(parts)]
    for v in values:
        pieces[rnd.randrange(parts)].append(v)
    merged = LatencyHistogram()
    for piece in pieces:
        merged.merge(hist_of(piece))
    assert merged == hist_of(values)
    via_sparse = LatencyHistogram()
    for piece in pieces:
        via_sparse.add_sparse(sparse_from_values(piece))
    assert via_sparse == merged


def test_empty_histogram_statistics_are_zero() -> None:
    h = LatencyHistogram()
    assert (h.count, h.min, h.max, h.mean, h.percentile(99)) == (0, 0.0, 0.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="percentile"):
        hist_of([1]).percentile(101)


@pytest.mark.parametrize(
    ("outcome", "ok"),
    [("200", True), ("204", True), ("304", True), ("404", False), ("503", False),
     ("timeout", False), ("refused", False), ("2000", False)],
)  # fmt: skip
def test_ok_is_2xx_and_3xx(outcome: str, ok: bool) -> None:
    assert is_ok(outcome) is ok


@pytest.mark.parametrize(
    ("outcome", "status", "matches"),
    [("503", None, True), ("503", "503", True), ("503", "5xx", True), ("503", "4xx", False),
     ("503", "500", False), ("timeout", "timeout", True), ("timeout", "5xx", False)],
)  # fmt: skip
def test_status_filters(outcome: str, status: str | None, matches: bool) -> None:
    assert status_matches(outcome, status) is matches


# -- the recorder ------------------------------------------------------------------------------
def test_recorder_measures_from_intended_time_and_from_actual_send() -> None:
    rec = IntervalRecorder(worker=3)
    # intended at 0, sent 0.5 ms late, done 0.9 ms after sending: values below 2048 µs are
    # kept exactly.
    rec.record("ingest", "200", 0, 500_000, 1_400_000)
    agg = RunAggregate()
    assert agg.add(rec.flush(interval=7, inflight=2)) == 7
    whole = agg.whole()
    assert whole.histogram("latency").max == 1.4
    assert whole.histogram("latency_uncorrected").max == 0.9
    assert whole.histogram("send_lag").max == 0.5


@pytest.mark.parametrize(
    ("ns", "us"),
    [(1499, 1), (1500, 2), (499, 0), (2_000_000, 2000), (-700, 0)],
)  # nanoseconds are rounded to the nearest microsecond; negative lag is 0
def test_nanoseconds_round_to_nearest_microsecond(ns: int, us: int) -> None:
    rec = IntervalRecorder(0)
    rec.record("get", "200", 0, 0, ns)
    agg = RunAggregate()
    agg.add(rec.flush(0, 0))
    assert agg.whole().histogram("latency").max == us / 1000


def test_flush_counts_series_drops_offers_and_resets() -> None:
    rec = IntervalRecorder(0)
    rec.offered(5)
    for outcome in ("200", "200", "503", "timeout"):
        rec.record("ingest", outcome, 0, 0, MS)
    rec.drop("ingest", 0)
    assert rec.pending() == 4
    delta = msgpack.unpackb(rec.flush(1, 9))
    assert (delta["worker"], delta["interval"], delta["inflight"], delta["offered"]) == (0, 1, 9, 5)
    assert delta["dropped"] == {"ingest": 1}
    assert sorted((s[0], s[1], s[2]) for s in delta["series"]) == [
        ("ingest", "200", 2),
        ("ingest", "503", 1),
        ("ingest", "timeout", 1),
    ]
    again = msgpack.unpackb(rec.flush(2, 0))
    assert (again["offered"], again["dropped"], again["series"]) == (0, {}, [])
    assert rec.pending() == 0


# -- the fold, against a straightforward one -----------------------------------------------------
_HDR = HdrHistogram(1, HIGHEST_US, 3)  # hdrh's own bucket index, one value at a time
Record = tuple[str, str, int, int, int]  # endpoint, outcome, intended, sent, done (ns)


def reference_bucket(value_us: int) -> tuple[int, bool]:
    """(bucket, clamped) of one value: above one hour counts as one hour, below 0 as 0."""
    clamped = value_us > HIGHEST_US
    return _HDR._counts_index_for(min(max(value_us, 0), HIGHEST_US)), clamped


def reference_hist(values_us: list[int]) -> list[object]:
    """One series' histogram on the wire: uint16 buckets, uint32 counts, clamped."""
    counted = Counter(reference_bucket(v)[0] for v in values_us)
    buckets = sorted(counted)
    return [
        struct.pack(f"<{len(buckets)}H", *buckets),
        struct.pack(f"<{len(buckets)}I", *(counted[b] for b in buckets)),
        sum(reference_bucket(v)[1] for v in values_us),
    ]


def reference_delta(
    ids: dict[tuple[str, str], int],
    worker: int,
    interval: int,
    inflight: int,
    offered: int,
    dropped: list[str],
    records: list[Record],
) -> bytes:
    """The delta of one interval, folded record by record with Counters; ``ids`` numbers
    the series in the order the recorder first saw them (over its whole life)."""
    per_series: dict[tuple[str, str], list[tuple[int, int, int]]] = {}
    for endpoint, outcome, intended, sent, done in records:
        ids.setdefault((endpoint, outcome), len(ids))
        us = [(done - intended + 500) // 1000, (done - sent + 500) // 1000]
        per_series.setdefault((endpoint, outcome), []).append(
            (us[0], us[1], (sent - intended + 500) // 1000)
        )
    series = []
    for key in sorted(per_series, key=ids.__getitem__):
        values = per_series[key]
        hists = [reference_hist([v[m] for v in values]) for m in range(3)]
        series.append([key[0], key[1], len(values), hists])
    delta = {
        "v": 1,
        "worker": worker,
        "interval": interval,
        "inflight": inflight,
        "offered": offered,
        "dropped": dict(Counter(dropped)),
        "series": series,
    }
    packed: bytes = msgpack.packb(delta, use_bin_type=True)
    return packed


HOUR_NS = HIGHEST_US * 1000
offsets_ns = st.one_of(
    st.integers(-3_000, 3_000_000),  # around the exact range: many values share a bucket
    st.integers(-(10**9), 10**10),
    st.integers(0, 4 * HOUR_NS),  # some clamp
    st.sampled_from([HOUR_NS + 499, HOUR_NS + 500, HOUR_NS - 500, -500, -501]),  # rounding
)
records_st = st.lists(
    st.tuples(
        st.sampled_from(["ingest", "list", "get", "search", "e5", "e6", "e7", "e8"]),
        st.sampled_from(["200", "204", "404", "503", "timeout", "reset"]),
        st.integers(0, 2**40),
        offsets_ns,
        offsets_ns,
    ).map(lambda r: (r[0], r[1], r[2], r[2] + r[3], r[2] + r[3] + r[4])),
    max_size=150,
)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.one_of(records_st, records_st.map(lambda rs: [("get", "200", *r[2:]) for r in rs])),
            st.lists(st.sampled_from(["ingest", "get"]), max_size=3),
            st.integers(0, 100),
        ),
        min_size=1,
        max_size=3,
    ),
    st.integers(0, 7),
)
def test_flush_is_byte_for_byte_a_straightforward_fold(
    intervals: list[tuple[list[Record], list[str], int]], worker: int
) -> None:
    rec = IntervalRecorder(worker)
    ids: dict[tuple[str, str], int] = {}
    for k, (records, dropped, offered) in enumerate(intervals):
        rec.offered(offered)
        for record in records:
            rec.record(*record)
        for endpoint in dropped:
            rec.drop(endpoint, 0)
        expected = reference_delta(ids, worker, k, k + 1, offered, dropped, records)
        assert rec.flush(k, k + 1) == expected


def test_flush_of_more_series_than_fit_a_byte_is_the_straightforward_fold() -> None:
    rng = random.Random(5)
    records: list[Record] = []
    for i in range(900):
        intended = rng.randrange(2**40)
        sent = intended + rng.randrange(-1000, 10**6)
        done = sent + rng.choice([rng.randrange(10**9), 5 * HOUR_NS])
        records.append((f"e{i % 300}", "200" if i % 7 else "503", intended, sent, done))
    rec = IntervalRecorder(1)
    for record in records:
        rec.record(*record)
    ids: dict[tuple[str, str], int] = {}
    assert rec.flush(0, 0) == reference_delta(ids, 1, 0, 0, 0, [], records)
    assert len(ids) > 256


@settings(max_examples=150, deadline=None)
@given(
    st.integers(1, 40),
    st.lists(
        st.tuples(
            st.integers(0, 39),
            st.one_of(
                st.integers(-5, 5000),
                st.integers(-(10**6), 2 * HIGHEST_US),
                st.sampled_from([HIGHEST_US, HIGHEST_US + 1]),
            ),
        ),
        max_size=300,
    ),
    st.sampled_from([None, True, False]),
)
def test_fold_series_counts_what_a_counter_counts(
    n_series: int, pairs: list[tuple[int, int]], dense: bool | None
) -> None:
    pairs = [(s % n_series, v) for s, v in pairs]
    series = np.array([s for s, _ in pairs], dtype=np.int64)
    values = np.array([v for _, v in pairs], dtype=np.int64)
    folded = fold_series(series, n_series, values, dense=dense)
    assert folded.bounds.tolist()[0] == 0 and len(folded.bounds) == n_series + 1
    for s in range(n_series):
        mine = [v for t, v in pairs if t == s]
        counted = Counter(reference_bucket(v)[0] for v in mine)
        lo, hi = folded.bounds[s], folded.bounds[s + 1]
        assert folded.buckets[lo:hi].tolist() == sorted(counted)
        assert folded.counts[lo:hi].tolist() == [counted[b] for b in sorted(counted)]
        assert folded.clamped[s] == sum(reference_bucket(v)[1] for v in mine)
    assert folded.bounds[-1] == len(folded.buckets) == len(folded.counts)


def test_aggregate_counts_ok_errors_dropped_and_sums_inflight() -> None:
    agg = RunAggregate()
    for worker, outcomes in ((0, ["200", "301", "404"]), (1, ["503", "reset", "200"])):
        rec = IntervalRecorder(worker)
        rec.offered(4)
        for o in outcomes:
            rec.record("list", o, 0, 0, MS)
        rec.drop("list", 0)
        agg.add(rec.flush(0, inflight=10 + worker))
    view = agg.interval(0)
    assert (view.requests, view.ok, view.errors, view.dropped) == (6, 3, 3, 2)
    assert (view.offered, view.offered_rps, view.achieved_rps, view.inflight) == (8, 8.0, 6.0, 21)
    assert agg.whole().errors(status="5xx") == 1


@settings(max_examples=25, deadline=None)
@given(st.permutations(list(range(6))))
def test_deltas_merge_the_same_in_any_order(order: list[int]) -> None:
    rng = np.random.default_rng(4)
    deltas = []
    for worker in range(2):
        rec = IntervalRecorder(worker)
        for k in range(3):
            for v in rng.integers(1, 10**9, 20).tolist():
                rec.record("ingest" if v % 2 else "get", "200", 0, 0, v)
            deltas.append(rec.flush(k, k))
    in_order, shuffled = RunAggregate(), RunAggregate()
    for d in deltas:
        in_order.add(d)
    for i in order:
        shuffled.add(deltas[i])
    assert shuffled.timeline == in_order.timeline
    for metric in ("latency", "latency_uncorrected", "send_lag"):
        assert shuffled.whole().histogram(metric) == in_order.whole().histogram(metric)


def test_latest_waits_for_the_slowest_live_worker() -> None:
    agg = RunAggregate()
    fast, slow = IntervalRecorder(0), IntervalRecorder(1)
    for k in range(3):
        fast.record("get", "200", 0, 0, MS)
        agg.add(fast.flush(k, 0))
    slow.record("get", "200", 0, 0, MS)
    agg.add(slow.flush(0, 0))
    assert agg.complete() == 0
    assert agg.latest().elapsed_s == 1.0
    assert agg.latest().requests == 4  # totals count every delta so far
    agg.retire(1)  # the slow worker finished or died: stop waiting for it
    assert agg.complete() == 2 and agg.latest().interval.index == 2


def test_empty_aggregate() -> None:
    agg = RunAggregate()
    snap = agg.latest()
    assert (snap.elapsed_s, snap.requests, snap.interval.p99_ms) == (0.0, 0, None)
    assert agg.timeline == [] and agg.intervals == 0 and list(agg.windows(5)) == []


@pytest.mark.parametrize(
    "delta",
    [b"", b"\x00\x01garbage", msgpack.packb([1, 2]), msgpack.packb({"v": 99}),
     msgpack.packb({"v": 1, "worker": 0, "interval": 0, "inflight": 0, "offered": 0,
                    "dropped": {}, "series": [["get", "200", 2, [[b"", b"", 0]] * 3]]})],
)  # fmt: skip
def test_malformed_deltas_are_value_errors(delta: bytes) -> None:
    with pytest.raises(ValueError, match="delta"):
        RunAggregate().add(delta)


def test_windows_slide_by_one_second_over_full_windows_only() -> None:
    agg = RunAggregate()
    rec = IntervalRecorder(0)
    for k in range(6):
        for _ in range(k + 1):  # k+1 requests in second k
            rec.record("get", "200", 0, 0, MS)
        agg.add(rec.flush(k, 0))
    spans = [(w.start, w.end, w.requests()) for w in agg.windows(3)]
    assert spans == [(0, 3, 6), (1, 4, 9), (2, 5, 12), (3, 6, 15)]
    with pytest.raises(ValueError, match="whole number"):
        list(agg.windows(1.5))


@settings(max_examples=30, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 11),  # second
            st.sampled_from(["ingest", "get"]),
            st.sampled_from(["200", "503", "timeout"]),
            st.integers(0, 10**9),  # latency, ns
        ),
        max_size=120,
    ),
    st.integers(1, 5),
    st.lists(
        st.tuples(
            st.sampled_from(["latency", "send_lag"]),
            st.sampled_from([None, "ingest"]),
            st.sampled_from([None, "503", "5xx"]),
        ),
        min_size=1,
        max_size=3,
    ),
)
def test_sliding_windows_by_running_sums_equal_windows_summed_afresh(
    requests: list[tuple[int, str, str, int]],
    width: int,
    selections: list[tuple[str, str | None, str | None]],
) -> None:
    agg = RunAggregate()
    rec = IntervalRecorder(0)
    for second in range(12):
        for s, endpoint, outcome, latency in requests:
            if s == second:
                rec.record(endpoint, outcome, 0, latency // 3, latency)
        agg.add(rec.flush(second, 0))
    for window in agg.windows(width):
        fresh = agg.window(window.start, window.end)
        assert window.requests() == fresh.requests() and window.errors() == fresh.errors()
        for metric, tag, status in selections:  # interleaved, as evaluate asks
            assert window.histogram(metric, tag, status) == fresh.histogram(metric, tag, status)


def test_duration_defaults_to_the_intervals_and_can_be_set() -> None:
    agg = RunAggregate()
    rec = IntervalRecorder(0)
    rec.record("get", "200", 0, 0, MS)
    agg.add(rec.flush(4, 0))
    assert agg.duration_s == 5.0
    agg.set_duration(4.25)
    assert agg.whole().seconds == 4.25
    with pytest.raises(ValueError, match="positive"):
        agg.set_duration(0)
