"""GoReplay's .gor files (`gor --input-raw :80 --output-file requests.gor`) as captures.

A .gor file is a sequence of records, each

    <type> <id> <timestamp ns> [<latency ns>]\\n
    <the raw HTTP message>
    \\n🐵🙈🙉\\n

where type 1 is a request, 2 the original response and 3 a replayed response. Only requests
are kept. The message is parsed as HTTP/1.x: request line, headers, and a body sized by
Content-Length or chunked transfer coding (decoded here). Files ending in `.gz` are read
through gzip, as GoReplay writes them. Reading is line by line, one record held at a time;
a record without its separator, or larger than 64 MiB, is an error naming the file and the
record's number and line.
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from capture.errors import InputError
from capture.intake import Captured

SEPARATOR_LINE = "🐵🙈🙉\n".encode()
REQUEST = b"1"
RESPONSES = (b"2", b"3")  # the original response, a replayed one: skipped
MAX_RECORD = 65 << 20  # a record (head and body) larger than this is an error


def _fail(path: Path, where: str, message: str) -> InputError:
    return InputError(f"{path}: {where}: {message}")


def _open(path: Path) -> IO[bytes]:
    try:
        if path.name.endswith(".gz"):
            return gzip.open(path, "rb")  # type: ignore[return-value]
        return open(path, "rb")
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory, not a .gor file") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror}") from None


def _raw_records(path: Path) -> Iterator[tuple[int, int, bytes]]:
    """(record number from 1, line it starts on, bytes before its separator)."""
    number, start_line, line_no = 1, 1, 0
    buffer: list[bytes] = []
    size = 0
    with _open(path) as f:
        try:
            for line in f:
                line_no += 1
                if line == SEPARATOR_LINE:
                    raw = b"".join(buffer)
                    yield number, start_line, raw[:-1] if raw.endswith(b"\n") else raw
                    number, start_line, buffer, size = number + 1, line_no + 1, [], 0
                    continue
                buffer.append(line)
                size += len(line)
                if size > MAX_RECORD:
                    raise _fail(path, f"record {number} (line {start_line})", "larger than 65 MiB")
        except (OSError, EOFError) as exc:
            raise _fail(
                path, f"record {number} (line {start_line})", f"unreadable: {exc}"
            ) from None
    if any(part.strip() for part in buffer):
        raise _fail(
            path, f"record {number} (line {start_line})", "ends without its 🐵🙈🙉 separator line"
        )


def _dechunk(data: bytes, path: Path, where: str) -> bytes:
    out = bytearray()
    pos = 0
    while True:
        end = data.find(b"\r\n", pos)
        if end < 0:
            raise _fail(path, where, "chunked body ends inside a chunk size line")
        try:
            size = int(data[pos:end].split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise _fail(path, where, f"bad chunk size {data[pos:end][:20]!r}") from None
        if size == 0:
            return bytes(out)
        start = end + 2
        if start + size > len(data):
            raise _fail(path, where, "chunked body is truncated")
        out += data[start : start + size]
        pos = start + size + 2


def parse_request(
    raw: bytes, path: Path, where: str
) -> tuple[str, str, tuple[tuple[str, str], ...], bytes]:
    """(method, target, headers, body) of a raw HTTP/1.x request."""
    head_end = raw.find(b"\r\n\r\n")
    sep = 4
    if head_end < 0:
        head_end, sep = raw.find(b"\n\n"), 2
    if head_end < 0:
        head_end, sep = len(raw), 0
    lines = raw[:head_end].decode("latin-1").splitlines()
    parts = lines[0].split(" ") if lines else []
    if len(parts) != 3 or not parts[2].startswith("HTTP/"):
        raise _fail(
            path, where, f"not an HTTP request line: {ascii(lines[0][:60]) if lines else ''}"
        )
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if not colon:
            raise _fail(path, where, f"header line without a colon: {line[:60]!a}")
        headers.append((name.strip(), value.strip()))
    body = raw[head_end + sep :]
    fields = {k.lower(): v for k, v in headers}
    if "chunked" in fields.get("transfer-encoding", "").lower():
        body = _dechunk(body, path, where)
    elif "content-length" in fields:
        try:
            length = int(fields["content-length"])
        except ValueError:
            raise _fail(path, where, f"bad Content-Length {fields['content-length']!r}") from None
        body = body[:length]
    return parts[0], parts[1], tuple(headers), body


def read_gor(files: list[str | os.PathLike[str]]) -> Iterator[Captured]:
    """The request records of the files, file after file, in file order (the importer's
    reorder window sorts what GoReplay wrote slightly out of order)."""
    for name in files:
        path = Path(name)
        for number, line, raw in _raw_records(path):
            where = f"record {number} (line {line})"
            header, _, message = raw.partition(b"\n")
            meta = header.split(b" ")
            if len(meta) < 3:
                raise _fail(path, where, f"bad record header {header[:60]!a}")
            if meta[0] in RESPONSES:
                continue
            if meta[0] != REQUEST:
                raise _fail(
                    path, where, f"bad record type {meta[0][:20].decode('latin-1')!a} (1, 2 or 3)"
                )
            try:
                at_ns = int(meta[2])
            except ValueError:
                raise _fail(path, where, f"bad timestamp {meta[2][:30]!a}") from None
            method, target, headers, body = parse_request(message, path, where)
            yield Captured(at_ns, method, target, headers, body, where)
