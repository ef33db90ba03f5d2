"""What a streamed record costs a worker: at load, and on every pass over its shard.

    .venv/bin/python bench/templates.py [--corpus ingestion mixed query bench] [--records 20000]
                                        [--repeat 5]

A worker keeps its shard's templates in memory when they fit its 48 MB cache; a larger shard
is built once at load and spooled to disk (replay/spool.py), and each pass reads the
templates back ahead of the schedule, on the same core that sends. Without a spool (it
could not be written) every pass decodes each record, matches it to the worker's shard and
builds its template again. This measures those costs per record, through the worker's own
`Shard` with a 1-byte cache (so that nothing is cached):

    decode        CorpusReader.records() alone (zstd + msgpack)
    build         rewrite.build_template() on records already decoded
    load          Worker.load() (build_first): decode + shard + build + spool, once per run
    spooled pass  Shard.cycle() over the spool: what each streamed request costs now
    built pass    decode + shard + build, as every pass did before the spool
    render        Template.render() per request (the part paid by cached shards too)

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
from replay import rewrite
from replay.address import Target
from replay.config import WorkerConfig
from replay.encoder import Encoder
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
    encoder = Encoder(Target.parse("http://127.0.0.1:9"), "sk-bench", "bench")
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
        project_id=None, model="rate", duration_ns=3600 * 10**9, nonce=1, rate=1000.0,
        cache_bytes=1, max_inflight=0, build_first=True,
    )  # fmt: skip
    workers: list[Worker] = []

    def load() -> int:
        worker = Worker(config, None)
        worker.load()  # max_inflight 0: no connection is opened, no request sent
        assert worker.shard is not None and worker.shard.spool is not None
        if workers:
            workers.pop().shard.close()  # type: ignore[union-attr]
        workers.append(worker)
        return worker.shard.mine

    load_s = _best(repeat, load)
    shard = workers[0].shard
    assert shard is not None and shard.spool is not None and shard.spool.count == shard.mine

    def spooled() -> int:
        return sum(1 for _ in itertools.islice(shard.cycle(), len(decoded)))

    def built() -> int:  # what every pass cost before the spool (and costs without one)
        templates = shard._built(shard._walk(everyone=False))
        return sum(1 for _ in itertools.islice(templates, len(decoded)))

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
        "load": load_s,
        "spooled": _best(repeat, spooled),
        "built": _best(repeat, built),
        "spool_bytes": shard.spool.bytes_on_disk / shard.spool.count,
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
    print(
        "| corpus | records | decode | build | load (decode + shard + build + spool) "
        "| spooled pass | built pass (decode + shard + build) | render | spool on disk |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
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
            f"{r['build'] * 1e6:.1f} µs | {r['load'] * 1e6:.1f} µs | "
            f"{r['spooled'] * 1e6:.1f} µs | {r['built'] * 1e6:.1f} µs | "
            f"{r['render'] * 1e6:.1f} µs | {r['spool_bytes']:.0f} B |"
        )
    print("(per record, best of --repeat runs)")


if __name__ == "__main__":
    main()
