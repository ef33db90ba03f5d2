"""Reading a results file's histograms fast: HdrHistogram's V2 encoding decoded with numpy.

A report reads every second's histograms of a run (three per series and second: a four-hour
soak holds tens of thousands). ``decode_sparse`` in replay/histogram.py goes through hdrh,
which allocates and zeroes the full 23,552-bucket array for each one; here the ZigZag
LEB128 counts are decoded straight into sparse form with a few vectorised numpy steps.

Only the encoding replay writes is taken this way (outer cookie 0x1c849314, inner
0x1c849313, index offset 0, 3 significant digits, 1 µs .. 1 hour, ratio 1.0, varints of at
most 8 bytes); anything else, including every damaged string, is handed to
``decode_sparse``, so the result, and the error message, are always the existing decoder's.
"""

from __future__ import annotations

import base64
import binascii
import struct
import zlib
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from replay.histogram import (
    COUNTS_LEN,
    HIGHEST_US,
    LOWEST_US,
    SIGNIFICANT_FIGURES,
    Sparse,
    decode_sparse,
)

_OUTER = struct.Struct(">II")
_INNER = struct.Struct(">IIIIQQd")
_COMPRESSION_COOKIE = 0x1C849304 | 0x10
_ENCODING_COOKIE = 0x1C849303 | 0x10
_LAYOUT = (0, SIGNIFICANT_FIGURES, LOWEST_US, HIGHEST_US, 1.0)  # offset 0, replay's range
IntArray = npt.NDArray[np.int64]
_EMPTY: IntArray = np.zeros(0, np.int64)


class HistogramDecodeError(ValueError):
    """Item ``index`` of a batch is not a histogram; the message is ``decode_sparse``'s."""

    def __init__(self, index: int, message: str) -> None:
        super().__init__(message)
        self.index = index


def decode_histogram(encoded: str, clamped: int = 0) -> Sparse:
    """``decode_sparse(encoded, clamped)``, the same value, without hdrh's dense detour."""
    payload = _payload(encoded)
    fast = None if payload is None else _words([payload])
    if fast is None:
        return decode_sparse(encoded, clamped)
    _, buckets, counts = fast
    return Sparse(buckets, counts, clamped)


def decode_many(encoded: Sequence[str]) -> tuple[IntArray, IntArray, IntArray]:
    """Every histogram of ``encoded`` as (item, bucket, count) rows, sorted by item then
    bucket: one vectorised pass over all of them. HistogramDecodeError names a bad item."""
    payloads = [_payload(s) for s in encoded]
    if all(p is not None for p in payloads):
        fast = _words([p for p in payloads if p is not None])
        if fast is not None:
            return fast
    items, buckets, counts = [], [], []
    for i, s in enumerate(encoded):
        try:
            sparse = decode_histogram(s)
        except ValueError as exc:
            raise HistogramDecodeError(i, str(exc)) from None
        items.append(np.full(sparse.buckets.size, i, np.int64))
        buckets.append(sparse.buckets.astype(np.int64))
        counts.append(sparse.counts.astype(np.int64))
    if not items:
        return _EMPTY, _EMPTY, _EMPTY
    return np.concatenate(items), np.concatenate(buckets), np.concatenate(counts)


def _payload(encoded: str) -> bytes | None:
    """The counts' bytes of replay's plain encoding, or None for anything else."""
    try:
        raw = base64.b64decode(encoded, validate=True)
        if len(raw) < _OUTER.size:
            return None
        cookie, length = _OUTER.unpack_from(raw)
        if cookie != _COMPRESSION_COOKIE or length != len(raw) - _OUTER.size:
            return None
        payload = zlib.decompress(raw[_OUTER.size :])
    except (binascii.Error, ValueError, TypeError, zlib.error):
        return None
    if len(payload) < _INNER.size:
        return None
    header = _INNER.unpack_from(payload)
    if header != (_ENCODING_COOKIE, len(payload) - _INNER.size, *_LAYOUT):
        return None
    return payload[_INNER.size :]


def _words(payloads: Sequence[bytes]) -> tuple[IntArray, IntArray, IntArray] | None:
    """Decode the ZigZag LEB128 words of several payloads at once; None if one is odd."""
    sizes = np.fromiter(map(len, payloads), np.int64, len(payloads))
    data = np.frombuffer(b"".join(payloads), np.uint8)
    if data.size == 0:
        return _EMPTY, _EMPTY, _EMPTY
    ends = np.flatnonzero(data < 0x80)  # the last byte of each word
    bounds = np.cumsum(sizes)
    last = bounds[sizes > 0] - 1
    if ends.size == 0 or not bool(np.all(data[last] < 0x80)):
        return None  # a payload ends inside a word: truncated
    starts = np.empty_like(ends)
    starts[0] = 0
    starts[1:] = ends[:-1] + 1
    lengths = ends - starts + 1
    longest = int(lengths.max())
    if longest > 8:  # a 9-byte word carries 8 bits in its last byte
        return None
    if longest == 1:
        values = data.astype(np.int64)
    else:
        position = np.arange(data.size) - np.repeat(starts, lengths)
        values = np.add.reduceat((data & 0x7F).astype(np.int64) << (7 * position), starts)
    zigzag = (values >> 1) ^ -(values & 1)
    step = np.where(zigzag < 0, -zigzag, 1)  # a negative word is a run of that many zeros
    before = np.cumsum(step) - step
    words = np.diff(np.searchsorted(ends, bounds - 1, side="right"), prepend=0)
    item = np.repeat(np.arange(sizes.size), words)
    first = np.cumsum(words) - words  # each payload's first word
    index = before - np.repeat(before[np.minimum(first, ends.size - 1)], words)
    keep = zigzag > 0
    index, item = index[keep], item[keep]
    if index.size and int(index.max()) >= COUNTS_LEN:
        return None
    return item.astype(np.int64), index, zigzag[keep]
