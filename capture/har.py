"""HAR 1.2 archives (browser devtools, Charles, Proxyman, k6's recorder, mitmproxy) as captures.

Each entry's request becomes one `Captured`: `startedDateTime` (ISO 8601 with an offset) is
its time, `request.url` its target, `request.headers` its headers, and the body is
`postData.text` (base64-decoded when the entry says `"encoding": "base64"`, an extension
several tools write) or, without text, `postData.params` form-encoded. Entries may be in any
order: they are sorted by time. A HAR is one JSON document, so it is read whole; its
entries are converted one by one.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from capture.errors import InputError
from capture.intake import Captured


def _fail(path: Path, where: str, message: str) -> InputError:
    return InputError(f"{path}: {where}{': ' if where else ''}{message}")


def _load(path: Path) -> list[Any]:
    try:
        with open(path, "rb") as f:
            doc = json.load(f)
    except FileNotFoundError:
        raise _fail(path, "", "no such file") from None
    except IsADirectoryError:
        raise _fail(path, "", "is a directory, not a HAR file") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise _fail(path, "", f"not a HAR file: not JSON ({exc})") from None
    except OSError as exc:
        raise _fail(path, "", f"cannot read: {exc.strerror}") from None
    log = doc.get("log") if isinstance(doc, dict) else None
    entries = log.get("entries") if isinstance(log, dict) else None
    if not isinstance(entries, list):
        raise _fail(path, "", "not a HAR file: no log.entries list")
    return entries


def _time_ns(value: Any, path: Path, where: str) -> int:
    if not isinstance(value, str):
        raise _fail(path, where, "startedDateTime missing or not a string")
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise _fail(path, where, f"startedDateTime {value[:40]!r} is not ISO 8601") from None
    if moment.tzinfo is None:
        raise _fail(path, where, f"startedDateTime {value[:40]!r} has no time zone")
    seconds = int(moment.timestamp())
    return seconds * 1_000_000_000 + moment.microsecond * 1000


def _body(request: dict[str, Any], path: Path, where: str) -> bytes:
    post = request.get("postData")
    if post is None:
        return b""
    if not isinstance(post, dict):
        raise _fail(path, where, "request.postData is not an object")
    text = post.get("text")
    if isinstance(text, str):
        if post.get("encoding") == "base64":
            try:
                return base64.b64decode(text, validate=True)
            except (binascii.Error, ValueError):
                raise _fail(path, where, "request.postData.text is not valid base64") from None
        return text.encode("utf-8", "surrogatepass")
    params = post.get("params")
    if isinstance(params, list):
        pairs = [
            (str(p.get("name", "")), str(p.get("value", ""))) for p in params if isinstance(p, dict)
        ]
        return urlencode(pairs).encode("ascii")
    return b""


def _entry(entry: Any, path: Path, where: str) -> Captured:
    if not isinstance(entry, dict):
        raise _fail(path, where, "not an object")
    request = entry.get("request")
    if not isinstance(request, dict):
        raise _fail(path, where, "no request object")
    method, url = request.get("method"), request.get("url")
    if not isinstance(method, str) or not isinstance(url, str):
        raise _fail(path, where, "request.method or request.url missing")
    raw_headers = request.get("headers", [])
    if not isinstance(raw_headers, list):
        raise _fail(path, where, "request.headers is not a list")
    headers = tuple(
        (str(h.get("name", "")), str(h.get("value", "")))
        for h in raw_headers
        if isinstance(h, dict)
    )
    return Captured(
        _time_ns(entry.get("startedDateTime"), path, where),
        method,
        url,
        headers,
        _body(request, path, where),
        where,
    )


def read_har(files: list[str | os.PathLike[str]]) -> Iterator[Captured]:
    """Every request of the files, in time order (entries of all files merged)."""
    timeline: list[tuple[int, int, int, Path]] = []  # (time, file, entry index, path)
    loaded: list[list[Any]] = []
    for number, name in enumerate(files):
        path = Path(name)
        entries = _load(path)
        loaded.append(entries)
        for i, entry in enumerate(entries):
            where = f"entry {i}"
            started = entry.get("startedDateTime") if isinstance(entry, dict) else None
            timeline.append((_time_ns(started, path, where), number, i, path))
    timeline.sort()
    for _at, number, i, path in timeline:
        yield _entry(loaded[number][i], path, f"entry {i}")
