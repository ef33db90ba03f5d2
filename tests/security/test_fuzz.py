"""The fuzz suite: valid corpora, results files and sweep files, mutated (bit flips,
truncation at every boundary, bytes inserted, declared sizes made huge, fields given the
wrong type), then read by the command a user would run on them. Each must succeed or say
what is wrong in one line with exit status 2: never a traceback (the commands run in this
process, so any exception fails the test), within 2 s and 300 MB.

Memory is measured per example: the kernel's peak-RSS mark is reset before each run
(`/proc/self/clear_refs`, value 5) and read after it (VmHWM), so the figure is what that
one command needed above the test process's own size. 2 s is some 40 times what these
inputs take on an idle core: the bound catches a loop over a declared count or an inflated
bomb, not ordinary noise on a busy machine.
"""

from __future__ import annotations

import json
import re
import struct
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgpack
import pytest
from hostile import META, Ran, corpus_bytes, good_record, invoke
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import planner.cli  # noqa: F401 - imported once here, not inside a timed example
import replay.cli  # noqa: F401
from capture.corpus import CorpusMeta, Record, write_corpus

SECONDS = 2.0
MEGABYTES = 300


def fuzz(examples: int) -> settings:
    """Bounded: a few hundred examples over the whole suite, none saved between runs."""
    return settings(
        max_examples=examples,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        database=None,
    )


def _status_kb(field: str) -> int:
    text = Path("/proc/self/status").read_text()
    found = re.search(rf"^{field}:\s+(\d+) kB", text, re.M)
    return int(found.group(1)) if found else 0


def _measured(run: Callable[[], Ran]) -> Ran:
    """Run a command in this process; its time and the peak RSS above the start, in MB."""
    try:
        Path("/proc/self/clear_refs").write_text("5")  # reset the peak-RSS mark
    except OSError:
        pytest.skip("this kernel does not let a process reset its peak RSS")
    before = _status_kb("VmRSS")
    started = time.monotonic()
    ran = run()
    seconds = time.monotonic() - started
    return Ran(ran.status, ran.stdout, ran.stderr, seconds, (_status_kb("VmHWM") - before) / 1024)


def _check(ran: Ran, command: str, ok: tuple[int, ...] = (0,)) -> None:
    assert ran.seconds < SECONDS, f"{ran.seconds:.1f} s"
    assert ran.peak_rss_mb < MEGABYTES, f"{ran.peak_rss_mb:.0f} MB"
    if ran.status in ok:
        return
    lines = [ln for ln in ran.stderr.splitlines() if ln.strip()]
    assert ran.status == 2, (ran.status, ran.stderr)
    assert len(lines) == 1 and lines[0].startswith(f"{command}: error: "), ran.stderr


# --- mutations ---------------------------------------------------------------------------


@st.composite
def mutated(draw: st.DrawFn, data: bytes) -> bytes:
    """`data` with one to three byte-level changes."""
    out = bytearray(data)
    for _ in range(draw(st.integers(1, 3))):
        if not out:
            break
        at = draw(st.integers(0, len(out) - 1))
        kind = draw(st.sampled_from(["flip", "truncate", "huge", "insert", "zero"]))
        if kind == "flip":
            out[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "truncate":
            del out[at:]
        elif kind == "huge":  # a declared size or count made as large as its field allows
            width = draw(st.sampled_from([2, 4, 8]))
            out[at : at + width] = b"\xff" * width
        elif kind == "insert":
            out[at:at] = draw(st.binary(min_size=1, max_size=8))
        else:
            width = draw(st.sampled_from([1, 4, 8]))
            out[at : at + width] = bytes(width)
    return bytes(out)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.sampled_from([10**400, -1, 0, 2**63, 10**12])
    | st.floats(allow_nan=False)
    | st.sampled_from([1e300, -1e300, 5e-324])
    | st.text(max_size=12)
    | st.sampled_from(["\x1b[2J", "HISTFAAAAA", "<script>", "\r\nX: y"]),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)


msgpack_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats()
    | st.text(max_size=12)
    | st.binary(max_size=12)
    | st.sampled_from(["GET /x HTTP/1.1\r\n", "a\r\nAuthorization: x", "/p q"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner),
    max_leaves=6,
)
"""What a msgpack field of a corpus can hold (json_values' 10^400 cannot be written)."""


def _leaf_paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    paths = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            paths += _leaf_paths(item, (*prefix, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            paths += _leaf_paths(item, (*prefix, i))
    return paths


@st.composite
def json_mutated(draw: st.DrawFn, doc: Any) -> str:
    """The JSON text of `doc` with one value replaced, one key removed, or bytes mutated."""
    doc = json.loads(json.dumps(doc))
    kind = draw(st.sampled_from(["replace", "replace", "delete", "bytes"]))
    if kind == "bytes":
        return draw(mutated(json.dumps(doc).encode())).decode("utf-8", "replace")
    paths = [p for p in _leaf_paths(doc) if p]
    path = draw(st.sampled_from(paths))
    parent = doc
    for key in path[:-1]:
        parent = parent[key]
    if kind == "delete":
        del parent[path[-1]]
    else:
        parent[path[-1]] = draw(json_values)
    return json.dumps(doc)


def _write(data: bytes | str, suffix: str) -> Path:
    handle = tempfile.NamedTemporaryFile(suffix=suffix, delete=False)  # noqa: SIM115
    with handle:
        handle.write(data.encode() if isinstance(data, str) else data)
    return Path(handle.name)


# --- corpora -----------------------------------------------------------------------------


def _valid_corpus() -> bytes:
    """Ten records in four chunks, bodies and headers of several sizes, spans included."""
    records = [
        Record(
            offset_ns=i * 100_000_000,
            endpoint="ingest" if i % 3 else "get",
            method="POST" if i % 3 else "GET",
            path=f"/api/public/traces/{i:04d}",
            headers=(("content-type", "application/json"), ("x-n", str(i))),
            body=b'{"id": "%04d", "pad": "%s"}' % (i, b"x" * (i * 30)),
            body_ids=((8, 4, 0),),
            path_ids=((19, 4, 1),),
            trace=f"{i:04d}",
            status=200,
            latency_ns=1_000_000,
        )
        for i in range(10)
    ]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "c.atc"
        write_corpus(
            path, CorpusMeta("t", "fuzz", "2026-01-01T00:00:00Z"), records, chunk_records=3
        )
        return path.read_bytes()


CORPUS = _valid_corpus()


def _inspect(data: bytes) -> None:
    path = _write(data, ".atc")
    try:
        for flags in ((), ("--json",), ("--recover",)):
            args = ("inspect", str(path), *flags)
            _check(_measured(lambda args=args: invoke("capture", *args)), "capture inspect")
    finally:
        path.unlink()


def test_the_valid_corpus_inspects() -> None:
    ran = invoke("capture", "inspect", str(_write(CORPUS, ".atc")))
    assert ran.status == 0 and "10 in 4 chunks" in ran.stdout, ran.stderr


@fuzz(80)
@given(data=mutated(CORPUS))
def test_mutated_corpora(data: bytes) -> None:
    _inspect(data)


@fuzz(50)
@given(field=st.integers(0, 10), value=msgpack_values, count=st.integers(0, 2**64 - 1))
def test_corpora_with_fields_of_the_wrong_type(field: int, value: Any, count: int) -> None:
    bad = good_record(1_000)
    bad[field] = value
    _inspect(corpus_bytes([good_record(0), bad]))
    _inspect(corpus_bytes([good_record(0), good_record(1)], header_records=count))
    _inspect(corpus_bytes([good_record(0)], index=[[value, 1, 0, 0]]))


@fuzz(30)
@given(size=st.sampled_from([2**32 - 1, 2**40, 2**63, 10**12]), at=st.integers(0, 60))
def test_corpora_declaring_huge_sizes(size: int, at: int) -> None:
    # the header's counts and lengths, and the frame's, set to sizes nothing could hold
    data = bytearray(CORPUS)
    width = 8 if size >= 2**32 else 4
    data[at : at + width] = (
        struct.pack(">Q", size)[-width:] if width == 8 else struct.pack(">I", size)
    )
    _inspect(bytes(data))
    meta_len = len(msgpack.packb(META))
    frame = 48 + meta_len  # the first chunk's frame header: length at +4, records at +8
    for field in (4, 8):
        data = bytearray(corpus_bytes([good_record(0)]))
        data[frame + field : frame + field + 4] = struct.pack(">I", min(size, 2**32 - 1))
        _inspect(bytes(data))


# --- results files -----------------------------------------------------------------------


def _valid_results() -> dict[str, Any]:
    from replay.aggregate import RunAggregate
    from replay.histogram import sparse_from_values
    from replay.recorder import SeriesDelta
    from replay.results import RunMeta, build_results

    aggregate = RunAggregate()
    for second in range(3):
        fast = sparse_from_values([900, 1_100, 2_000 + second])
        slow = sparse_from_values([50_000])
        series = [
            SeriesDelta("ingest", "200", 3, (fast, fast, fast)),
            SeriesDelta("get", "500", 1, (slow, slow, slow)),
        ]
        aggregate.add_interval(second, worker=0, offered=4, inflight=1, dropped={}, series=series)
    aggregate.set_duration(3.0)
    meta = RunMeta(corpus="c", target="http://127.0.0.1:9", model="timeline")
    return build_results(aggregate, meta, [])


RESULTS = _valid_results()


@fuzz(80)
@given(text=json_mutated(RESULTS))
def test_mutated_results_files(text: str) -> None:
    path = _write(text, ".json")
    try:
        ran = _measured(lambda: invoke("replay", "merge", str(path), str(path)))
        _check(ran, "replay merge", ok=(0, 99))
    finally:
        path.unlink()


# --- sweep files -------------------------------------------------------------------------


def _valid_sweep() -> dict[str, Any]:
    capacity = {1: 100.0, 2: 190.0, 3: 270.0, 4: 340.0}
    points = []
    for pods, x in capacity.items():
        step = {
            "offered_rps": x, "achieved_rps": x, "p50_ms": 1.0, "p95_ms": 2.0, "p99_ms": 3.0,
            "errors": 0, "dropped": 0, "requests": int(x * 6), "duration_s": 6.0,
            "passed_slo": True,
        }  # fmt: skip
        points.append({"pods": pods, "x_max": x, "x_slo": x, "steps": [step]})
    return {
        "schema": "planner-sweep/1",
        "target": "http://127.0.0.1:1",
        "slo": {"p99_ms": 100.0, "max_error_rate": 0.01, "min_achieved_ratio": 0.99},
        "started": "2026-01-01T00:00:00+00:00",
        "finished": "2026-01-01T01:00:00+00:00",
        "version": "test",
        "points": points,
    }


SWEEP = _valid_sweep()


@fuzz(60)
@given(text=json_mutated(SWEEP))
def test_mutated_sweep_files(text: str) -> None:
    path = _write(text, ".json")
    try:
        args = ("report", str(path), "--target-rate", "300", "--resamples", "0")
        _check(_measured(lambda: invoke("planner", *args)), "planner report")
    finally:
        path.unlink()


def test_a_sweep_number_too_large_for_a_float_is_one_line() -> None:
    # found by the fuzz run above: 10**400 is valid JSON but no float, and raised
    # OverflowError where the planner checked whether it was finite
    doc = _valid_sweep()
    doc["points"][0]["steps"][0]["offered_rps"] = 10**400
    path = _write(json.dumps(doc), ".json")
    try:
        args = ("report", str(path), "--target-rate", "300", "--resamples", "0")
        _check(_measured(lambda: invoke("planner", *args)), "planner report")
    finally:
        path.unlink()
