"""The worker<->coordinator messages: what one end encodes the other decodes, over msgpack."""

from __future__ import annotations

from typing import Any

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from replay import protocol
from replay.protocol import (
    Delta,
    Done,
    DoneInfo,
    Error,
    Loading,
    ProtocolError,
    Ready,
    ReadyInfo,
    Start,
    Stop,
)

ints = st.integers(min_value=0, max_value=2**62)


def _wire(message: Any) -> Any:
    """Through msgpack as the pipes carry it."""
    packed = msgpack.packb(message.encode(), use_bin_type=True)
    return msgpack.unpackb(packed, raw=False)


@given(
    worker=st.integers(0, 255),
    read=ints,
    records=ints,
    stage=st.sampled_from(protocol.LOAD_STAGES),
)
def test_loading_round_trips(worker: int, read: int, records: int, stage: Any) -> None:
    message = Loading(worker, read, records, stage)
    assert protocol.from_worker(_wire(message)) == message


@given(worker=st.integers(0, 255), k=ints, folds=st.lists(st.binary(max_size=64), max_size=12))
def test_delta_round_trips(worker: int, k: int, folds: list[bytes]) -> None:
    message = Delta(worker, k, folds)
    assert protocol.from_worker(_wire(message)) == message


@given(
    info=st.fixed_dictionaries(
        {
            "pid": ints,
            "records": ints,
            "cached": st.booleans(),
            "spooled": ints,
            "spool_bytes": ints,
            "spool_dir": st.text(max_size=40),
        },
        optional={
            "spool_error": st.text(max_size=40),
            "spool_lead_ns": ints,
            "spool_lead_short": ints,
        },
    )
)
def test_ready_round_trips(info: dict[str, Any]) -> None:
    message = Ready(3, ReadyInfo(**info))  # type: ignore[typeddict-item]
    decoded = protocol.from_worker(_wire(message))
    assert decoded == message
    assert ("spool_error" in decoded.info) == ("spool_error" in info)  # type: ignore[union-attr]
    assert ("spool_lead_ns" in decoded.info) == ("spool_lead_ns" in info)  # type: ignore[union-attr]
    assert ("spool_lead_short" in decoded.info) == ("spool_lead_short" in info)  # type: ignore[union-attr]


@given(
    abandoned=ints, serial=ints, intervals=ints, unsent=ints, counted=st.booleans(), skipped=ints
)
def test_done_round_trips(
    abandoned: int, serial: int, intervals: int, unsent: int, counted: bool, skipped: int
) -> None:
    info = DoneInfo(
        abandoned=abandoned,
        serial=serial,
        intervals=intervals,
        unsent=unsent,
        unsent_counted=counted,
        probes_skipped=skipped,
    )
    assert protocol.from_worker(_wire(Done(1, info))) == Done(1, info)


@pytest.mark.parametrize("kind", ["corpus", "target", "internal"])
def test_error_round_trips(kind: Any) -> None:
    message = Error(-1, kind, "record 7: bad span")
    assert protocol.from_worker(_wire(message)) == message


@given(mono=ints, wall=ints)
def test_start_and_stop_round_trip(mono: int, wall: int) -> None:
    assert protocol.to_worker(_wire(Start(mono, wall))) == Start(mono, wall)
    assert protocol.to_worker(_wire(Stop())) == Stop()


def test_the_wire_layout_is_the_documented_one() -> None:
    # docs/replay.md documents these arrays; a change here is a protocol change
    assert Loading(2, 10, 20, "spool").encode() == ["loading", 2, 10, 20, "spool"]
    assert Delta(2, 5, [b"x"]).encode() == ["delta", 2, 5, [b"x"]]
    assert Error(2, "target", "refused").encode() == ["error", 2, "target", "refused"]
    assert Start(7, 8).encode() == ["start", 7, 8]
    assert Stop().encode() == ["stop"]


@pytest.mark.parametrize(
    "raw",
    [
        ["loading", 0, 1, 2],  # the old shape, without a stage
        ["loading", 0, 1, 2, "dance"],
        ["ready", 0, {"pid": 1}],  # fields missing
        ["done", 0, {}],
        ["error", 0, "mystery", "?"],
        ["delta", 0],
        ["hello", 0],
        [],
        None,
        42,
    ],
)
def test_anything_else_from_a_worker_is_a_protocol_error(raw: Any) -> None:
    with pytest.raises(ProtocolError):
        protocol.from_worker(raw)


@pytest.mark.parametrize("raw", [["start", 1], ["start", "x", 2], ["go"], [], None])
def test_anything_else_to_a_worker_is_a_protocol_error(raw: Any) -> None:
    with pytest.raises(ProtocolError):
        protocol.to_worker(raw)


@given(st.lists(st.tuples(st.integers(0, 10**6), st.integers(-1, 10**9)), max_size=20))
def test_probes_round_trip(ended: list[tuple[int, int]]) -> None:
    message = protocol.Probes(2, ended)
    assert protocol.from_worker(_wire(message)) == message
