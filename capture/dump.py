"""`capture dump`: a corpus's records as JSON, one object per record, for people and scripts.

Each record is `{"t_s", "method", "path", "headers", "body"}`: the offset in seconds, the
request line's parts, headers as [name, value] pairs and the body as text, or
`"body_b64"` (base64) instead of `"body"` when it is not UTF-8. JSON's own escaping
(`ensure_ascii`) keeps every control or non-ASCII character out of the terminal.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterator
from typing import Any, TextIO

from capture.corpus import CorpusReader, Record


def record_json(record: Record) -> dict[str, Any]:
    out: dict[str, Any] = {
        "t_s": record.offset_ns / 1e9,
        "method": record.method,
        "path": record.path,
        "headers": [list(h) for h in record.headers],
    }
    try:
        out["body"] = bytes(record.body).decode("utf-8")
    except UnicodeDecodeError:
        out["body_b64"] = base64.b64encode(bytes(record.body)).decode("ascii")
    return out


def _records(reader: CorpusReader, limit: int | None) -> Iterator[dict[str, Any]]:
    for n, record in enumerate(reader):
        if limit is not None and n >= limit:
            return
        yield record_json(record)


def write_dump(
    path: str | os.PathLike[str], out: TextIO, *, limit: int | None = None, jsonl: bool = False
) -> int:
    """Write the records as JSON Lines (`jsonl`) or as one indented JSON array; the count.
    The file is opened (and its header checked) before anything is written."""
    count = 0
    with CorpusReader(path) as reader:
        if not jsonl:
            out.write("[")
        for obj in _records(reader, limit):
            if jsonl:
                out.write(json.dumps(obj, ensure_ascii=True) + "\n")
            else:
                text = json.dumps(obj, ensure_ascii=True, indent=2).replace("\n", "\n  ")
                out.write(("," if count else "") + "\n  " + text)
            count += 1
    if not jsonl:
        out.write("\n]\n" if count else "]\n")
    return count
