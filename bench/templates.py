"""What a streamed record costs a worker before it is sent: decode, shard, build its template.

    .venv/bin/python bench/templates.py [--corpus ingestion mixed query bench] [--records 20000]
                                        [--repeat 5]

A worker keeps its shard's templates in memory when they fit its 48 MB cache; a larger shard
is streamed, and then every record it sends is first decoded from the corpus, matched to the
worker's shard and built into a template (replay/rewrite.py) ahead of the schedule, on the
same core that sends. This measures that preparation per record, through the worker's own
`Shard` with a 1-byte cache (so that nothing is cached), split into its parts:

    decode      CorpusReader.records() alone (zstd + msgpack)
    build       rewrite.build_template() on records already decoded
    streamed    Shard.cycle(): decode + shard + build, as the worker does it
    render      Template.render() per request (the part paid by cached shards too)

`bench` is the 1.8 KB-body corpus of the other benchmarks (bench/common.py). Best of
--repeat runs of --records records (or the whole corpus if smaller). No network.
A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common
from capture.corpus import CorpusReader, Record
from corpora import bundled_path
from replay import rewrite, wire
from replay.config import WorkerConfig
from replay.worker import Worker


def _best(repeat: int, run: Callable[[], int]) -> float:
    """Seconds per item, the best of `repeat` runs of `run` (which returns its item count)."""
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        items = run()
        best = min(best, (time.perf_counter() - started) / max(items, 1))
    return best


def measure(corpus: Path, records: int, repeat: int) -> dict[str, float]:
    encoder = wire.Encoder(wire.Target.parse("http://127.0.0.1:9"), "sk-bench", "bench")
    minter = rewrite.IdMinter(0, 1)
    with CorpusReader(corpus) as reader:
        created = rewrite.created_ms(reader.header.meta.created)
        decoded: list[Record] = list(itertools.islice(reader.records(), records))

    def decode() -> int:
        with CorpusReader(corpus) as reader:
            return sum(1 for _ in itertools.islice(reader.records(), records))

    def build_one(record: Record) -> rewrite.Template:
        return rewrite.build_template(
            record, request_start=encoder.request_start, head_end=encoder.head_end,
            minter=minter, created_ms=created,
        )  # fmt: skip

    def build() -> int:
        for record in decoded:
            build_one(record)
        return len(decoded)

    config = WorkerConfig(
        worker=0, workers=1, corpus=str(corpus), target="http://127.0.0.1:9", api_key="k",
        project_id=None, model="rate", duration_ns=10**9, nonce=1, rate=1000.0, cache_bytes=1,
        max_inflight=0,
    )  # fmt: skip
    worker = Worker(config, None)
    worker.load()  # max_inflight 0: no connection is opened, no request sent
    assert worker.shard is not None and worker.shard.cached is None

    def streamed() -> int:
        assert worker.shard is not None
        return sum(1 for _ in itertools.islice(worker.shard.cycle(), len(decoded)))

    templates = [build_one(record) for record in decoded]
    stamps = rewrite.Stamps()

    def render() -> int:
        for serial, template in enumerate(templates):
            template.render(b"%09x" % serial, 1000, b"", stamps.iso)
        return len(templates)

    return {
        "records": len(decoded),
        "decode": _best(repeat, decode),
        "build": _best(repeat, build),
        "streamed": _best(repeat, streamed),
        "render": _best(repeat, render),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", nargs="+", default=["ingestion", "mixed", "query", "bench"])
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    print(f"date      {common.today()}")
    print(f"machine   {common.machine()}")
    print(f"load avg  {common.load1():.2f} at the start")
    print()
    print("| corpus | records | decode | build | streamed (decode + shard + build) | render |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name in args.corpus:
        if name == "bench":
            path, _ = common.cached_corpus(args.records)
        elif Path(name).exists():
            path = Path(name)
        else:
            path = bundled_path(name)
        r = measure(path, args.records, args.repeat)
        print(
            f"| {name} | {int(r['records']):,} | {r['decode'] * 1e6:.1f} µs | "
            f"{r['build'] * 1e6:.1f} µs | {r['streamed'] * 1e6:.1f} µs | "
            f"{r['render'] * 1e6:.1f} µs |"
        )
    print("(per record, best of --repeat runs)")


if __name__ == "__main__":
    main()
