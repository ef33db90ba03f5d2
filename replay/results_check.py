"""The bounds a results file must keep before anything is built from it.

`validate_results` checks the structure of a ``replay-results/1`` document; this module
checks what it declares against what it is, so that a small file cannot make a reader
build or inflate something huge: the timeline holds one entry per second from 0 (as every
writer makes it) and ends near the run's own duration, and every histogram string inflates
to no more than the largest histogram replay can write.
"""

from __future__ import annotations

import base64
import binascii
import math
import zlib
from collections.abc import Mapping
from typing import Any

TAIL_S = 60
"""Seconds a timeline may run past the run's duration: completions after the stop."""
_PAYLOAD_HEADER = 40  # HdrHistogram V2: cookie, length, offset, digits, lowest, highest, ratio
_MAX_VARINT = 9  # bytes of one LEB128 ZigZag count


def max_inflated(counts_len: int) -> int:
    """Bytes the V2 payload of a histogram of `counts_len` buckets inflates to, at most."""
    return _PAYLOAD_HEADER + _MAX_VARINT * counts_len


def histogram_size_problem(encoded: object, counts_len: int) -> str | None:
    """Why an encoded histogram is larger than replay's could be (a zlib bomb), or None.

    The compressed payload is inflated into a buffer of the largest legitimate size and
    no further: nothing beyond that size is ever allocated."""
    limit = max_inflated(counts_len)
    if not isinstance(encoded, (str, bytes)):
        return None  # the structure check names the type
    if len(encoded) > 2 * limit + 64:
        return f"encoded histogram of {len(encoded):,} characters (at most {2 * limit + 64:,})"
    try:
        raw = base64.b64decode(encoded)
    except (binascii.Error, ValueError):
        return None  # the decoder names what is wrong
    inflater = zlib.decompressobj()
    try:
        out = inflater.decompress(raw[8:], limit + 1)
    except zlib.error:
        return None
    if len(out) > limit or inflater.unconsumed_tail:
        return f"histogram inflates past {limit:,} bytes"
    return None


def timeline_problem(results: Mapping[str, Any]) -> str | None:
    """Why the timeline's seconds do not fit the run (`field: what`), or None.

    Entry i must be second i, and the last second no later than the run's duration (plus
    `TAIL_S`): a reader then builds as many seconds as the file lists, never more."""
    duration = results["totals"]["duration_s"]
    if duration < 0:
        return "totals.duration_s: negative"
    last_allowed = math.ceil(duration) + TAIL_S
    for i, entry in enumerate(results["timeline"]):
        t = entry["t"]
        if t != i:
            return f"timeline[{i}].t: {t}, expected {i} (one entry per second from 0)"
        if t > last_allowed:
            return (
                f"timeline[{i}].t: second {t} is past the run's end "
                f"(totals.duration_s {duration:g})"
            )
    return None
