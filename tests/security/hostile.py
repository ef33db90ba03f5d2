"""Hostile inputs for the security tests: corpora, results and sweep files built byte by
byte (not with the project's writers, which refuse what these tests need to write), and the
commands run as a user runs them, with their exit status, output, time and peak memory."""

from __future__ import annotations

import struct
import subprocess
import sys
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import msgpack
import zstandard

META = {
    "workload": "t",
    "source": "test",
    "created": "2026-01-01T00:00:00Z",
    "seed": None,
    "extra": {},
}


def good_record(offset_ns: int = 0, **changes: Any) -> list[Any]:
    """A well-formed record in its on-disk field order (docs/corpus-format.md)."""
    fields = {
        "offset_ns": offset_ns,
        "endpoint": "ingest",
        "method": "POST",
        "path": "/api/public/ingestion",
        "headers": [["content-type", "application/json"]],
        "body": b'{"batch": []}',
        "body_ids": [],
        "path_ids": [],
        "trace": None,
        "status": None,
        "latency_ns": None,
    }
    fields.update(changes)
    return list(fields.values())


def corpus_bytes(
    records: Sequence[Any],
    *,
    payload: bytes | None = None,
    frame_records: int | None = None,
    index: Any = None,
    header_records: int | None = None,
    header_chunks: int | None = None,
    metadata: dict[str, Any] | None = None,
) -> bytes:
    """A one-chunk corpus, format version 1, laid out by hand; any part may be replaced."""
    meta = msgpack.packb(META if metadata is None else metadata)
    raw = msgpack.packb(list(records), use_bin_type=True)
    if payload is None:
        payload = zstandard.ZstdCompressor().compress(raw)
    # the frame's and index's first and last offsets (u64 on disk, clamped to it: a record's
    # own offset may be any value the caller wants to see refused)
    offsets = [
        min(max(r[0], 0), 2**64 - 1)
        for r in records
        if isinstance(r, list) and r and isinstance(r[0], int)
    ]
    first, last = (offsets[0], offsets[-1]) if offsets else (0, 0)
    n = len(records) if frame_records is None else frame_records
    chunk_at = 48 + len(meta)
    chunk = struct.pack(">4sIIIQQ", b"CHNK", len(payload), n, zlib.crc32(payload), first, last)
    chunk += payload
    index_at = chunk_at + len(chunk)
    entries = [[chunk_at, n, first, last]] if index is None else index
    packed = msgpack.packb(entries)
    index_part = struct.pack(">4sII", b"INDX", len(packed), zlib.crc32(packed)) + packed
    chunks = header_chunks if header_chunks is not None else 1
    count = header_records if header_records is not None else n
    fields = (b"ATCORPUS", 1, 0, count, last, chunks, index_at)
    unsigned = struct.pack(">8sHHQQIQII", *fields, len(meta), 0)
    crc = zlib.crc32(meta, zlib.crc32(unsigned))
    header = struct.pack(">8sHHQQIQII", *fields, len(meta), crc)
    return header + meta + chunk + index_part


def zstd_frame_declaring(content_size: int, data: bytes = b"\x90") -> bytes:
    """A zstd frame whose header declares `content_size` bytes but which holds `data`
    (one raw block): RFC 8878 section 3.1.1, written out by hand."""
    magic = struct.pack("<I", 0xFD2FB528)
    descriptor = bytes([0b11 << 6])  # 8-byte content size, window descriptor present
    window = bytes([0])  # 1 KiB window
    size = struct.pack("<Q", content_size)
    block = struct.pack("<I", 1 | (0 << 1) | (len(data) << 3))[:3] + data
    return magic + descriptor + window + size + block


@dataclass
class Ran:
    status: int
    stdout: str
    stderr: str
    seconds: float
    peak_rss_mb: float


_REPORT = "__peak_rss_kb__"
_WRAP = (
    "import importlib, re, sys\n"
    "entry, name = sys.argv[1], sys.argv[2]\n"
    "sys.argv = [name, *sys.argv[3:]]\n"
    "module, _, function = entry.partition(':')\n"
    "try:\n"
    "    getattr(importlib.import_module(module), function)(prog_name=name)\n"
    "finally:\n"
    "    status = open('/proc/self/status').read()\n"
    "    peak = int(re.search(r'VmHWM:\\s+(\\d+)', status).group(1))\n"
    f"    sys.stderr.write('\\n{_REPORT} %d\\n' % peak)\n"
)
COMMANDS = {
    "capture": "capture.cli:main",
    "replay": "replay.cli:main",
    "planner": "planner.cli:main",
}


def run_command(command: str, *args: str, timeout: float = 60) -> Ran:
    """`command args` as a user runs it, in a child process that reports its own peak RSS
    on a last stderr line, taken out of the returned stderr. The peak is the kernel's VmHWM
    of the child's own address space: getrusage's ru_maxrss would also count the parent's
    pages, which a forked child carries until it execs."""
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-c", _WRAP, COMMANDS[command], command, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    seconds = time.monotonic() - started
    peak = 0.0
    kept = []
    for line in err.splitlines():
        if line.startswith(_REPORT):
            peak = int(line.split()[1]) / 1024
        else:
            kept.append(line)
    return Ran(proc.returncode, out, "\n".join(kept).strip(), seconds, peak)


def assert_one_line_error(ran: Ran, *needles: str) -> str:
    """Exit status 2, exactly one line on stderr, no traceback; the line is returned."""
    lines = [ln for ln in ran.stderr.splitlines() if ln.strip()]
    assert ran.status == 2, (ran.status, ran.stderr[-2000:])
    assert len(lines) == 1, ran.stderr[-2000:]
    assert "Traceback" not in ran.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def invoke(command: str, *args: str) -> Ran:
    """`command args` in this process (click's runner, standalone mode as a console script
    runs it): no interpreter start-up, for the commands whose imports are heavy."""
    import importlib

    from click.testing import CliRunner

    module, _, function = COMMANDS[command].partition(":")
    main = getattr(importlib.import_module(module), function)
    started = time.monotonic()
    result = CliRunner().invoke(main, list(args), prog_name=command)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return Ran(result.exit_code, result.stdout, result.stderr, time.monotonic() - started, 0.0)
