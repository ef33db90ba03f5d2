"""Synthetic traffic: the guide's shapes, its proportions, determinism and exact id spans."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from capture.arrivals import arrival_offsets_ns
from capture.corpus import CorpusReader, IdKind, Record
from capture.synth import (
    MIXED_SHARES,
    PROJECT_PLACEHOLDER,
    SynthSpec,
    synthesize,
    write_synth_corpus,
)

SECOND = 1_000_000_000
TIMESTAMP = re.compile(rb'"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)"')


def oracle_spans(
    body: bytes, trace_ids: list[str], observation_ids: list[str]
) -> list[tuple[int, int, int]]:
    """Spans found by searching the finished body: an independent check of the builder."""
    found = []
    for ids, own, ref in (
        (trace_ids, IdKind.TRACE, IdKind.TRACE_REF),
        (observation_ids, IdKind.OBSERVATION, IdKind.OBSERVATION_REF),
    ):
        for value in ids:
            needle, kind = value.encode(), own
            at = body.find(needle)
            while at >= 0:
                found.append((at, len(needle), int(kind)))
                kind = ref
                at = body.find(needle, at + 1)
    found += [(m.start(1), 24, int(IdKind.TIMESTAMP)) for m in TIMESTAMP.finditer(body)]
    return sorted(found)


def ingest_records(n_seconds: int = 5, seed: int = 1) -> list[Record]:
    return list(synthesize(SynthSpec("ingestion", 100, n_seconds * SECOND, seed)))


def test_ingest_body_is_the_guides_payload() -> None:
    for record in ingest_records()[:200]:
        trace = json.loads(record.body)
        assert record.method == "POST" and record.path == "/api/public/traces"
        assert trace["id"] == record.trace and len(trace["id"]) == 32
        assert trace["name"] == f"load-test-trace-{trace['id']}"
        assert set(trace) >= {
            "id",
            "name",
            "timestamp",
            "input",
            "output",
            "metadata",
            "observations",
        }
        assert {"model", "tokens"} <= set(trace["metadata"])
        observations = trace["observations"]
        assert observations[0]["type"] == "SPAN"
        assert len(observations) >= 2
        assert all(o["type"] == "GENERATION" for o in observations[1:])
        assert all(o["trace_id"] == trace["id"] for o in observations)
        assert all(o["parent_observation_id"] == observations[0]["id"] for o in observations[1:])
        tokens = trace["metadata"]["tokens"]
        assert tokens["input"] == sum(o["usage"]["input"] for o in observations[1:])
        assert tokens["output"] == sum(o["usage"]["output"] for o in observations[1:])


def test_id_spans_are_exactly_where_the_ids_are() -> None:
    # Spans computed while building equal those found by searching the finished body.
    for record in ingest_records()[:300]:
        trace = json.loads(record.body)
        obs_ids = [o["id"] for o in trace["observations"]]
        assert list(record.body_ids) == oracle_spans(record.body, [trace["id"]], obs_ids)


def test_timestamps_precede_the_send_time() -> None:
    # An agent sends its trace when the run has finished: every time in the body is at or
    # before the moment the record is due (the epoch plus its offset).
    from datetime import UTC, datetime

    epoch = datetime(2026, 1, 1, tzinfo=UTC).timestamp()
    for record in ingest_records()[:100]:
        due = epoch + record.offset_ns / 1e9
        for start, length, kind in record.body_ids:
            if kind == IdKind.TIMESTAMP:
                text = record.body[start : start + length].decode().replace("Z", "+00:00")
                assert datetime.fromisoformat(text).timestamp() <= due + 0.001


def test_variety_follows_the_documented_distributions() -> None:
    records = list(synthesize(SynthSpec("ingestion", 2000, 2 * SECOND, 5)))
    traces = [json.loads(r.body) for r in records]
    observations = np.array([len(t["observations"]) for t in traces])
    # 1 SPAN + 1 + min(Poisson(2.5), 14) GENERATIONs: mean 4.5.
    assert 4.3 < observations.mean() < 4.7
    models = Counter(t["metadata"]["model"] for t in traces)
    assert 0.27 < models["gpt-4o"] / len(traces) < 0.33
    assert len(models) == 6
    sizes = np.array([len(r.body) for r in records])
    assert 1500 < np.median(sizes) < 5000


@pytest.mark.parametrize("workload", ["ingestion", "query", "mixed"])
def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path: Path, workload: str) -> None:
    a = write_synth_corpus(SynthSpec(workload, 50, 4 * SECOND, 11), tmp_path / "a.atc")
    b = write_synth_corpus(SynthSpec(workload, 50, 4 * SECOND, 11), tmp_path / "b.atc")
    c = write_synth_corpus(SynthSpec(workload, 50, 4 * SECOND, 12), tmp_path / "c.atc")
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()


def test_query_workload_gets_only_traces_it_ingested_before() -> None:
    records = list(synthesize(SynthSpec("query", 200, 10 * SECOND, 3)))
    kinds = Counter(r.endpoint for r in records)
    queries = sum(kinds[k] for k in ("list", "get", "search", "metrics", "graphql"))
    for tag in ("list", "get", "search", "metrics", "graphql"):
        assert 0.15 < kinds[tag] / queries < 0.25, tag  # the guide picks uniformly
    ingested: set[str] = set()
    for record in records:
        if record.endpoint == "ingest":
            ingested.add(record.trace or "")
        elif record.endpoint == "get":
            assert record.trace in ingested
            ((start, length, id_kind),) = record.path_ids
            assert record.path[start : start + length] == record.trace
            assert id_kind == IdKind.TRACE_REF
    assert kinds["ingest"] >= 10


def test_query_paths_are_the_guides() -> None:
    records = list(synthesize(SynthSpec("query", 200, 5 * SECOND, 3)))
    by_kind = {r.endpoint: r for r in records}
    assert by_kind["list"].path == "/api/public/traces?limit=50"
    assert by_kind["metrics"].path == "/api/public/metrics/traces?period=day"
    assert re.fullmatch(r"/api/public/traces\?search=\w+&limit=20", by_kind["search"].path)
    graphql = by_kind["graphql"]
    query = json.loads(graphql.body)["query"]
    assert "traces(projectId:" in query and "observations { id type }" in query
    ((start, length, kind),) = graphql.body_ids
    assert graphql.body[start : start + length] == PROJECT_PLACEHOLDER.encode()
    assert kind == IdKind.PROJECT


def test_mixed_workload_keeps_the_guides_proportions() -> None:
    records = list(synthesize(SynthSpec("mixed", 400, 20 * SECOND, 9)))
    kinds = Counter(r.endpoint for r in records)
    total = sum(kinds.values())
    shares = {name: weight for name, weight in MIXED_SHARES}
    per_second = shares["ingest"] + shares["query"] + 3 * shares["dashboard"]
    assert abs(kinds["ingest"] / total - shares["ingest"] / per_second) < 0.02
    assert abs(kinds["project"] / total - shares["dashboard"] / per_second) < 0.005
    assert abs(total / 20 - 400) < 4 * np.sqrt(400 * 20) / 20  # mean rate within 4 sigma
    assert [r.offset_ns for r in records] == sorted(r.offset_ns for r in records)


@settings(max_examples=25, deadline=None)
@given(
    rate=st.floats(5, 500),
    seconds=st.integers(5, 60),
    profile=st.sampled_from(["constant", "diurnal", "bursty"]),
    seed=st.integers(0, 2**32),
)
def test_every_profile_keeps_the_mean_rate(
    rate: float, seconds: int, profile: str, seed: int
) -> None:
    rng = np.random.Generator(np.random.PCG64(seed))
    offsets = arrival_offsets_ns(rng, rate, seconds * SECOND, profile)
    expected = rate * seconds
    # Poisson counts: within 5 sigma, plus slack for the bursty profile's random burst share.
    slack = 5 * np.sqrt(expected) + (0.25 * expected if profile == "bursty" else 0)
    assert abs(offsets.size - expected) <= slack
    assert np.all(np.diff(offsets) >= 0)
    assert offsets.size == 0 or (offsets[0] >= 0 and offsets[-1] < seconds * SECOND)


def test_diurnal_profile_peaks_in_the_middle() -> None:
    rng = np.random.Generator(np.random.PCG64(1))
    offsets = arrival_offsets_ns(rng, 1000, 100 * SECOND, "diurnal")
    counts = np.histogram(offsets, bins=10, range=(0, 100 * SECOND))[0]
    assert counts[4:6].mean() > 3 * counts[[0, 9]].mean()


def test_bursty_profile_has_bursts() -> None:
    rng = np.random.Generator(np.random.PCG64(4))
    offsets = arrival_offsets_ns(rng, 200, 300 * SECOND, "bursty")
    per_second = np.bincount((offsets // SECOND).astype(int), minlength=300)
    assert per_second.max() > 3 * np.median(per_second)


def test_corpus_metadata_names_its_command(tmp_path: Path) -> None:
    spec = SynthSpec("query", 25, 3 * SECOND, 4, profile="diurnal")
    path = write_synth_corpus(spec, tmp_path / "q.atc")
    with CorpusReader(path) as reader:
        meta = reader.header.meta
        assert reader.header.duration_ns == 3 * SECOND
    assert meta.workload == "query" and meta.source == "synth" and meta.seed == 4
    assert meta.extra["command"] == spec.command()
    assert "--profile diurnal" in spec.command()
