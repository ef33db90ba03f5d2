"""The compiled span finder's answer for a body, checked against the reference walk and
json.loads (for tests/capture/test_spanwalk*.py)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from capture.spans import body_spans, compiled_body_spans, walked_body_spans

try:
    from capture import _spanwalk
except ImportError:  # test_it_is_built says what to check
    _spanwalk = None

NOT_BUILT = (
    "capture._spanwalk is not built: `pip install -e .` compiles it (its output names the "
    "compiler error); it needs gcc and the Python headers (Debian: python3-dev)"
)


def native(body: bytes) -> Any:
    """What the extension itself answers for `body`."""
    assert _spanwalk is not None, NOT_BUILT
    return _spanwalk.body_spans(body)


def checked(body: bytes) -> Any:
    """The extension's answer for `body`, asserted None or exactly the walk's: its spans,
    and a byte range holding the walk's trace id; json.loads reads every body it answers
    for. The Python wrapper and span finding agree with it and with the walk."""
    answer = native(body)
    walked = walked_body_spans(body)
    if answer is not None:
        try:
            json.loads(body)
        except (ValueError, RecursionError) as exc:
            pytest.fail(f"answered {answer!r} for bytes json.loads rejects ({exc})")
        spans, start, end = answer
        assert spans == walked[0]
        if walked[1] is None:
            assert (start, end) == (-1, -1)
        else:
            assert 0 <= start <= end <= len(body)
            assert body[start:end].decode("utf-8") == walked[1]
        assert compiled_body_spans(body) == walked
    else:
        assert compiled_body_spans(body) is None
    assert body_spans(body) == walked
    return answer
