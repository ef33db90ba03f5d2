"""What a corpus may hold: the size limits and the shape of a record, index entry and frame.

A corpus is data from a file anybody may have written. Every size it declares (metadata,
index, chunk payload, decompressed chunk, record count, body) is checked against a limit
here before anything of that size is allocated, and every record's fields are checked for
type and for what may go into a request head (`capture.httphead`) before a reader hands the
record on. The writer applies the same checks, so it never writes what a reader refuses.
"""

from __future__ import annotations

import contextlib
from collections.abc import Collection, Sequence
from typing import Any

from capture.httphead import MAX_PATH, head_problem

MAX_BODY = 32 << 20
"""Bytes of one request body (the sandbox accepts 4.5 MB; recorded traffic rarely more)."""
MAX_HEADERS = 256
"""Header lines of one record."""
MAX_TEXT = 64 << 10
"""Characters of any string field (the path is the longest)."""
MAX_CHUNK_RECORDS = 1 << 20
"""Records in one chunk (the writer closes a chunk at 2,048 by default)."""
MAX_CHUNK_RAW = 160 << 20
"""Decompressed bytes of one chunk: at most `MAX_CHUNK_BYTES` of records plus one record."""
MAX_CHUNK_BYTES = 64 << 20
"""The largest `chunk_bytes` a writer may be asked for."""
MAX_META = 1 << 20
"""Bytes of the metadata map."""

UNPACK_LIMITS: dict[str, int] = {
    "max_str_len": MAX_TEXT,
    "max_bin_len": MAX_BODY,
    "max_array_len": MAX_CHUNK_RECORDS,
    "max_map_len": 4096,
    "max_ext_len": MAX_BODY,
}
"""msgpack's limits for a chunk's records: a declared length beyond them is refused before
the bytes are buffered."""

RECORD_FIELDS = 11

_KNOWN_GOOD: set[object] = set()  # (method, headers) of records that passed head_problem
_KNOWN_LIMIT = 1 << 16


def known_head_problem(method: object, path: object, headers: Any) -> str | None:
    """`head_problem`, with what a corpus repeats (a method and its header lines) remembered
    once it has passed: a record then costs a check of its path and one set lookup."""
    if (
        type(path) is str
        and path[:1] == "/"
        and len(path) <= MAX_PATH
        and path.isascii()
        and path.isprintable()  # printable ASCII: 0x20-0x7e
        and " " not in path
    ):
        try:
            if (method, headers) in _KNOWN_GOOD:
                return None
        except TypeError:  # unhashable parts: check them the long way
            pass
    problem = head_problem(method, path, headers)
    if problem is None and len(_KNOWN_GOOD) < _KNOWN_LIMIT:
        with contextlib.suppress(TypeError):
            _KNOWN_GOOD.add((method, headers))
    return problem


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _opt_int(value: object) -> bool:
    return value is None or (_is_int(value) and 0 <= value < 1 << 63)  # type: ignore[operator]


def record_problem(fields: Any, endpoints: Collection[str], spans_type: type) -> str | None:
    """Why a decoded record (a tuple of `RECORD_FIELDS`) cannot be replayed, or None."""
    if type(fields) is tuple and len(fields) == RECORD_FIELDS:  # the common case, at once
        offset, endpoint, method, path, headers, body, body_ids, path_ids = fields[:8]
        if (
            type(offset) is int
            and 0 <= offset < 1 << 63
            and endpoint in endpoints
            and type(body) is bytes
            and type(headers) is tuple
            and len(headers) <= MAX_HEADERS
            and (type(body_ids) is spans_type or body_ids == ())
            and (type(path_ids) is spans_type or path_ids == ())
            and (fields[8] is None or type(fields[8]) is str)
            and _opt_int(fields[9])
            and _opt_int(fields[10])
            and known_head_problem(method, path, headers) is None
        ):
            return None
    if not isinstance(fields, (tuple, list)) or len(fields) != RECORD_FIELDS:
        size = f"of {len(fields)} fields" if isinstance(fields, (tuple, list)) else "a scalar"
        return f"is {size}, not an array of {RECORD_FIELDS}"
    offset, endpoint, method, path, headers, body, body_ids, path_ids = fields[:8]
    trace, status, latency = fields[8:]
    if not _is_int(offset) or not 0 <= offset < 1 << 63:
        return f"offset_ns {offset!r:.40} is not an integer of 0 or more"
    if not isinstance(endpoint, str) or endpoint not in endpoints:
        return f"endpoint {endpoint!r:.40} is not one of {', '.join(endpoints)}"
    if not isinstance(headers, (tuple, list)):
        return "headers is not an array of [name, value] pairs"
    if len(headers) > MAX_HEADERS:
        return f"{len(headers)} headers, more than {MAX_HEADERS}"
    problem = known_head_problem(method, path, headers)
    if problem:
        return problem
    if not isinstance(body, bytes):
        return f"body is {type(body).__name__}, not bytes"
    for name, spans in (("body_ids", body_ids), ("path_ids", path_ids)):
        if not isinstance(spans, spans_type) and spans not in ((), []):
            return f"{name} is {type(spans).__name__}, not a span array"
    if trace is not None and not isinstance(trace, str):
        return f"trace is {type(trace).__name__}, not a string or nil"
    if not _opt_int(status) or not _opt_int(latency):
        return "status and latency_ns must be integers of 0 or more, or nil"
    return None


def writable_problem(
    offset: object, method: object, path: object, headers: Sequence[Any], body: object
) -> str | None:
    """Why the writer must refuse a record: what every reader would refuse, or None."""
    if not _is_int(offset) or not 0 <= offset < 1 << 63:  # type: ignore[operator]
        return f"offset_ns {offset!r:.40} is not an integer of 0 or more"
    if len(headers) > MAX_HEADERS:
        return f"{len(headers)} headers, more than {MAX_HEADERS}"
    problem = known_head_problem(method, path, headers)
    if problem:
        return problem
    if not isinstance(body, (bytes, bytearray, memoryview)):
        return f"body is {type(body).__name__}, not bytes"
    if len(body) > MAX_BODY:
        return f"body of {len(body):,} bytes is larger than {MAX_BODY:,}"
    return None


def index_problem(entries: Any, chunks: int, data_start: int, index_offset: int) -> str | None:
    """Why a decoded index cannot describe `chunks` chunks between the two offsets, or None.

    Entries are [file offset, records, first ns, last ns]: offsets strictly increasing
    inside the data, record counts within the chunk limit, times ordered."""
    if not isinstance(entries, (tuple, list)):
        return f"index is {type(entries).__name__}, not an array"
    if len(entries) != chunks:
        return f"index lists {len(entries)} chunks, header says {chunks}"
    previous_offset, previous_ns = data_start - 1, 0
    for i, entry in enumerate(entries):
        if (
            not isinstance(entry, (tuple, list))
            or len(entry) != 4
            or not all(_is_int(v) and v >= 0 for v in entry)
        ):
            return f"index entry {i} is not [offset, records, first ns, last ns] integers"
        offset, records, first_ns, last_ns = entry
        if not previous_offset < offset < index_offset:
            return f"index entry {i} points outside the file or before the previous chunk"
        if not 0 < records <= MAX_CHUNK_RECORDS:
            return f"index entry {i} counts {records} records (1 to {MAX_CHUNK_RECORDS})"
        if not previous_ns <= first_ns <= last_ns:
            return f"index entry {i}: offsets {first_ns}..{last_ns} ns out of order"
        previous_offset, previous_ns = offset, last_ns
    return None
