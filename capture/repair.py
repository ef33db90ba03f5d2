"""`capture repair`: the whole chunks of a damaged or unfinished corpus, as a valid corpus.

A recorder killed mid-run (kill -9, a crash, a full disk) leaves ``FILE.partial``: a header
without an index, then whole chunks, then perhaps the start of one more. Read with recovery
(``CorpusReader(recover=True)``), the frames that are whole are found by walking them; each
is checked (CRC-32) and decoded on its own. `repair` copies the records of every chunk that
passes into a new corpus with the same metadata, skips any that does not (counted), and
notes in ``extra.repaired`` what it kept and dropped. A complete corpus is copied as it is.
The source is only read: `repair OUT.partial -o OUT` (what a killed recorder leaves, to the
name it was recording to) leaves OUT.partial as it was.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from capture.corpus import (
    CorpusError,
    CorpusMeta,
    CorpusReader,
    CorpusWriter,
    CorruptChunkError,
    partial_path,
)


@dataclass(frozen=True)
class RepairReport:
    output: Path
    records: int
    chunks_kept: int
    chunks_dropped: int
    complete: bool  # whether the source was a finished corpus
    dropped: tuple[str, ...]  # why each dropped chunk was dropped


def repair(source: str | os.PathLike[str], output: str | os.PathLike[str]) -> RepairReport:
    """Write the readable records of `source` to `output`; raises CorpusError if `source`
    is not a corpus at all (no readable header)."""
    if Path(output).resolve() == Path(source).resolve():
        raise CorpusError(output, "the repaired corpus must go to another file than its source")
    final = Path(output)
    if partial_path(final).resolve() == Path(source).resolve():
        # `repair OUT.partial -o OUT`: the writer's own OUT.partial is the source, so it
        # writes beside it and the result is renamed into place at the end
        output = final.with_name(final.name + ".repaired")
    with CorpusReader(source, recover=True) as reader:
        header = reader.header
        kept = dropped = records = 0
        reasons: list[str] = []
        last_ns = 0
        meta = header.meta
        with CorpusWriter(output, meta, meta_reserve=1024) as writer:
            for chunk in header.chunks:
                try:
                    chunk_records = reader.read_chunk(chunk)
                except CorruptChunkError as exc:
                    dropped += 1
                    reasons.append(exc.detail)
                    continue
                if chunk_records and chunk_records[0].offset_ns < last_ns:
                    dropped += 1
                    reasons.append(f"chunk {chunk.number} goes back in time")
                    continue
                writer.write_all(chunk_records)
                if chunk_records:
                    last_ns = chunk_records[-1].offset_ns
                records += len(chunk_records)
                kept += 1
            extra = dict(meta.extra)
            extra["repaired"] = {
                "from": Path(source).name,
                "complete": header.complete,
                "records": records,
                "chunks_kept": kept,
                "chunks_dropped": dropped,
            }
            writer.set_meta(CorpusMeta(meta.workload, meta.source, meta.created, meta.seed, extra))
            writer.close(
                duration_ns=max(header.duration_ns, last_ns) if header.complete else last_ns
            )
    if Path(output) != final:
        os.replace(output, final)
    return RepairReport(final, records, kept, dropped, header.complete, tuple(reasons))
