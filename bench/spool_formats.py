"""Spool frame formats side by side: what reading one template back costs in each.

    .venv/bin/python bench/spool_formats.py [--corpus ingestion] [--repeat 15]

The corpus's templates are packed into frames of replay/spool.py's FRAME_BYTES in each
format, then read back as `TemplateSpool.read` does (decompress a frame, make each
TimelineEntry and Template), the formats taking turns, best of --repeat turns each:

    zstd + msgpack     each template's fields as a msgpack array (zstd level 1)
    lz4 + msgpack      the same in LZ4 blocks
    lz4 + marshal      marshalled tuples in LZ4 blocks (the spool until 2026-11-29)
    lz4 + flat         replay/frame.py's frames in LZ4 blocks, read back in C as Templates
    lz4 + in place     the same frames, each template read in place (`read_in_place`, one
                       small object pointing into its frame): what a pass over the spool does
    raw + flat         the flat frames uncompressed, read back as Templates (the file is ~4x
                       larger)

Printed: µs per template and bytes per template on disk. msgpack makes every field and
array as Python objects and then the template from them field by field; marshal makes the
tuples in C, and a template is made from its tuple in one call; the flat frame's compiled
reader makes each template's objects straight from the frame's bytes. No network; no file
(frames stay in memory, so this is the decode cost alone). A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import marshal
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import lz4.block
import msgpack
import zstandard

from bench import common
from capture.corpus import CorpusReader
from corpora import BUNDLED, bundled_path
from replay import frame, rewrite, spool
from replay.address import Target
from replay.encoder import Encoder
from replay.pacing import TimelineEntry
from replay.template import Part, Template

Item = tuple[TimelineEntry, Template]


def items_of(corpus: Path) -> list[Item]:
    encoder = Encoder(Target.parse("http://127.0.0.1:9"), "sk-bench", "bench")
    minter = rewrite.IdMinter(0, 1)
    with CorpusReader(corpus) as reader:
        created = rewrite.created_ms(reader.header.meta.created)
        records = list(reader.records())
    return [
        (TimelineEntry(i, r.offset_ns, 1000), rewrite.build_template(
            r, request_start=encoder.request_start, head_end=encoder.head_end, minter=minter,
            created_ms=created,
        ))
        for i, r in enumerate(records)
    ]  # fmt: skip


def plain(template: Template) -> tuple[Any, ...]:
    """`template` as a plain tuple, its body one too (as marshal and msgpack take it)."""
    body = template.body
    return (*template[:7], None if body is None else tuple(body), *template[8:])


def as_msgpack(item: Item) -> bytes:
    entry, template = item
    return msgpack.packb((*entry, *plain(template)))  # type: ignore[no-any-return]


def as_marshal(items: list[Item]) -> bytes:
    """A frame as the spool wrote it with marshal: the entries, then the plain templates."""
    return marshal.dumps(([tuple(e) for e, _t in items], [plain(t) for _e, t in items]))


def from_marshal(data: bytes) -> int:
    """Every (TimelineEntry, Template) of a marshalled frame made; how many."""
    entries, plains = marshal.loads(data)
    new = tuple.__new__
    made = [
        (
            new(TimelineEntry, e),
            new(Template, (*t[:7], None if t[7] is None else Part(*t[7]), *t[8:])),
        )
        for e, t in zip(entries, plains, strict=True)
    ]
    return len(made)


def frames(items: list[Item]) -> list[list[Item]]:
    """`items` cut where the spool would cut them (packed size >= FRAME_BYTES)."""
    out: list[list[Item]] = [[]]
    size = 0
    for item in items:
        out[-1].append(item)
        size += len(item[1].fmt) + spool.ITEM_BYTES
        if size >= spool.FRAME_BYTES:
            out.append([])
            size = 0
    return [f for f in out if f]


def reader(
    blobs: list[bytes], decompress: Callable[[bytes], bytes], unpack: str
) -> Callable[[], int]:

    def run() -> int:
        n = 0
        for blob in blobs:
            data = decompress(blob)
            if unpack == "marshal":
                n += from_marshal(data)
                continue
            if unpack == "flat":
                n += len(frame.unpack_frame(data))
                continue
            if unpack == "in place":
                n += len(frame.read_in_place(data, True))
                continue
            unpacker = msgpack.Unpacker(use_list=True, raw=False)
            unpacker.feed(data)
            found: Iterable[Any] = unpacker
            for record, offset_ns, gap_ns, *fields in found:
                TimelineEntry(record, offset_ns, gap_ns)
                body = fields[7]
                fields[7] = Part(*body) if body is not None else None
                Template(*fields)
                n += 1
        return n

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", default="ingestion", help="bundled name or path")
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    path = Path(bundled_path(args.corpus)) if args.corpus in BUNDLED else Path(args.corpus)
    items = items_of(path)
    cut = frames(items)
    packed = [b"".join(as_msgpack(i) for i in f) for f in cut]
    marshalled = [as_marshal(f) for f in cut]
    flat = [frame.pack_frame([e for e, _t in f], [t for _e, t in f]) for f in cut]
    zc, zd = zstandard.ZstdCompressor(level=1), zstandard.ZstdDecompressor()

    def lz4_decompress(blob: bytes) -> bytes:
        return lz4.block.decompress(blob)

    def as_is(blob: bytes) -> bytes:
        return blob

    formats = {
        "zstd + msgpack": ([zc.compress(p) for p in packed], zd.decompress, "msgpack"),
        "lz4 + msgpack": ([lz4.block.compress(p) for p in packed], lz4_decompress, "msgpack"),
        "lz4 + marshal": ([lz4.block.compress(f) for f in marshalled], lz4_decompress, "marshal"),
        "lz4 + flat": ([lz4.block.compress(f) for f in flat], lz4_decompress, "flat"),
        "lz4 + in place": ([lz4.block.compress(f) for f in flat], lz4_decompress, "in place"),
        "raw + flat": (flat, as_is, "flat"),
    }
    runs = {name: reader(*spec) for name, spec in formats.items()}
    best = dict.fromkeys(formats, float("inf"))
    for _ in range(args.repeat):
        for name, run in runs.items():  # taking turns: a busy spell hits every format
            started = time.perf_counter()
            n = run()
            best[name] = min(best[name], (time.perf_counter() - started) / n)
    print(f"date      {common.today()}")
    print(f"machine   {common.machine()}")
    print(f"load avg  {common.load1():.2f} at the end")
    print(f"flat      read by {'replay/_frame.c' if frame.COMPILED else 'Python (not compiled)'}")
    print(f"corpus    {path.name}: {len(items):,} templates in {len(cut)} frames")
    print()
    print("| format | read back, per template | ÷ zstd + msgpack | on disk, per template |")
    print("| --- | ---: | ---: | ---: |")
    for name, (blobs, _d, _u) in formats.items():
        size = sum(len(b) for b in blobs) / len(items)
        ratio = best[name] / best["zstd + msgpack"]
        print(f"| {name} | {best[name] * 1e6:.2f} µs | {ratio:.2f} | {size:,.0f} B |")


if __name__ == "__main__":
    main()
