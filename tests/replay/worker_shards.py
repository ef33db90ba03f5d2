"""Shards of a corpus built as a worker builds them, for the tests of the spool, the lead and
chunk sharding (no network): `config` for a worker, `shard` to load one (closed after each
test by tests/replay/conftest.py), and `builder`, the worker's template builder."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from capture.corpus import CorpusReader
from replay import rewrite
from replay.address import Target
from replay.config import WorkerConfig
from replay.encoder import Encoder
from replay.shard import Shard

NS = 1_000_000_000
ENCODER = Encoder(Target.parse("http://127.0.0.1:9"), "sk-test", "test")
OPEN: list[Shard] = []


def config(corpus: Path, **kw: Any) -> WorkerConfig:
    """Worker 0 of 1 replaying `corpus`'s timeline for an hour, `kw` changed."""
    options: dict[str, Any] = {
        "worker": 0, "workers": 1, "corpus": str(corpus), "target": "http://127.0.0.1:9",
        "api_key": "k", "project_id": None, "model": "timeline", "duration_ns": 3600 * NS,
        "nonce": 3, **kw,
    }  # fmt: skip
    return WorkerConfig(**options)


def builder(cfg: WorkerConfig) -> Callable[[Any, int], rewrite.Template]:
    """The template builder of the worker `cfg` describes."""
    minter = rewrite.IdMinter(cfg.worker, cfg.nonce, cfg.segment, cfg.segments)
    with CorpusReader(cfg.corpus) as reader:
        created = rewrite.created_ms(reader.header.meta.created)

    def build(record: Any, index: int) -> rewrite.Template:
        return rewrite.build_template(
            record, request_start=ENCODER.request_start, head_end=ENCODER.head_end,
            minter=minter, created_ms=created, where=f"record {index}",
        )  # fmt: skip

    return build


def shard(cfg: WorkerConfig, **kw: Any) -> Shard:
    """The shard of the worker `cfg` describes, loaded (`kw`: Shard's own options)."""
    OPEN.append(Shard(cfg, builder(cfg), **kw))
    return OPEN[-1]


def close_all() -> None:
    """Close every shard `shard` opened (their spool files go)."""
    while OPEN:
        OPEN.pop().close()
