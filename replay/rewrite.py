"""Per record, once: the request bytes split at its ids and timestamps; per request: splices.

A corpus record becomes a `Template` when its worker loads it. Everything that stays the same
for every copy of the record is encoded then: the request line, Host, Authorization, the
recorded headers, Content-Length, the body text between spans, the target's project id, and
the constant part of each minted id. What is left are holes, of three kinds:

    SERIAL  the request's serial number, 9 hex digits, the same in every id of the request
    STAMP   a recorded timestamp, moved to the replay clock (ISO-8601, 24 bytes)
    READ    a trace that a read names, pointed at a trace this worker has ingested

Minted ids. Every id a record defines (a trace's or an observation's, kinds TRACE and
OBSERVATION; references of kinds TRACE_REF and OBSERVATION_REF to them follow them) keeps its
length and shape; its characters become

    [ worker (2 hex) | segment | run nonce (hex) ... ] [ serial (9 hex) ] [ ordinal (3 hex) ]
     constant per worker and shape                     per request        per distinct id

where non-alphanumeric characters (a UUID's dashes) stay where they were. The serial counts
this worker's requests; the ordinal numbers the distinct ids within one record. So two
minted ids are equal only if worker, serial and ordinal all are: uniqueness across copies,
loops and workers holds by construction, and the random nonce keeps one run's ids apart from
another's. Ids need 16 characters or more, the last 12 alphanumeric (a 32-hex trace id and
a UUID both qualify); a record with a shorter id is refused with RewriteError.

Because the prefix, serial and ordinal are all fixed length, and a timestamp keeps its 24
bytes, Content-Length is known when the template is built. Only a body that names a trace
it does not define (a READ hole inside a body) has its length counted per request.
"""

from __future__ import annotations

import hashlib
import re
import string
from collections.abc import Callable, Iterable
from datetime import UTC, datetime

from capture.corpus import IdKind, IdSpans, Record
from replay.template import READ as READ
from replay.template import SERIAL as SERIAL
from replay.template import STAMP as STAMP
from replay.template import Part, stamps_of
from replay.template import Stamps as Stamps
from replay.template import Template as Template

SERIAL_DIGITS = 9
SERIAL_FORMAT = b"%%0%dx" % SERIAL_DIGITS  # SERIAL_FORMAT % serial: the serial in hex
ORDINAL_DIGITS = 3
TAG_DIGITS = SERIAL_DIGITS + ORDINAL_DIGITS
MAX_SERIAL = 16**SERIAL_DIGITS - 1
MAX_ORDINAL = 16**ORDINAL_DIGITS - 1
MAX_WORKERS = 256
MIN_ID_LENGTH = TAG_DIGITS + 4  # 2 worker digits and at least 2 nonce digits before the tag

_ORDINALS = tuple(b"%03x" % i for i in range(MAX_ORDINAL + 1))
_ISO = re.compile(rb"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z")


class RewriteError(ValueError):
    """A record that cannot be rewritten safely (an id too short to mint uniquely, a bad span)."""


def serial_hex(serial: int) -> bytes:
    """The per-request part of every minted id."""
    return SERIAL_FORMAT % serial


_SECONDS: dict[bytes, int] = {}  # b'YYYY-MM-DDTHH:MM:SS' -> epoch seconds, parsed once each


def parse_iso_ms(text: str | bytes) -> int | None:
    """Epoch milliseconds of 'YYYY-MM-DDTHH:MM:SS.mmmZ' (as text or as the bytes a record
    holds), or None when it is not one. ASCII digits only; each second is parsed once."""
    raw = text.encode("utf-8") if isinstance(text, str) else text
    if len(raw) != 24 or raw[19] != 0x2E or raw[23] != 0x5A or not raw[20:23].isdigit():
        return None  # (0x2E '.', 0x5A 'Z'; bytes.isdigit() is ASCII digits only)
    head = raw[:19]
    seconds = _SECONDS.get(head)
    if seconds is None:
        if not _ISO.fullmatch(raw):
            return None
        try:
            moment = datetime.strptime(head.decode("ascii"), "%Y-%m-%dT%H:%M:%S")
        except ValueError:
            return None
        if len(_SECONDS) >= 65536:
            _SECONDS.clear()
        seconds = _SECONDS[head] = int(moment.replace(tzinfo=UTC).timestamp())
    return seconds * 1000 + int(raw[20:23])


def created_ms(text: str) -> int | None:
    """Epoch ms of a corpus's `created` (ISO-8601), or None when it has none or it is unreadable
    (its timestamps are then sent as recorded)."""
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


_TO_SHAPE = str.maketrans(dict.fromkeys(string.ascii_letters + string.digits, "x"))
_ALNUM = (string.ascii_letters + string.digits).encode("ascii")
_BYTES_TO_SHAPE = bytes(ord("x") if i in _ALNUM else i for i in range(256))


class IdMinter:
    """The constant prefixes of one worker's minted ids, one per id shape."""

    def __init__(self, worker: int, nonce: int, segment: int = 0, segments: int = 1) -> None:
        if not 0 <= worker < MAX_WORKERS:
            raise ValueError(f"worker index {worker} out of range (at most {MAX_WORKERS})")
        self.worker = worker
        noise = hashlib.sha256(b"%d" % nonce).hexdigest()
        # an execution segment's index, in as many hex digits as the largest needs, keeps
        # the segments' ids apart by construction, whatever nonce each machine drew
        digits = len(f"{segments - 1:x}") if segments > 1 else 0
        self._fill = (
            f"{worker:02x}{segment:0{digits}x}{noise}" if digits else f"{worker:02x}{noise}"
        )
        self._fixed = 2 + digits  # leading characters that must survive in every minted id
        self._prefixes: dict[str, bytes] = {}
        self._by_shape: dict[bytes, bytes] = {}

    def prefix_of(self, raw: bytes, where: str, what: str) -> bytes:
        """prefix() of a `what` id as a record at `where` holds it, checked (RewriteError).
        Both depend only on the id's shape, so each shape is checked and built once."""
        shape = raw.translate(_BYTES_TO_SHAPE)
        cached = self._by_shape.get(shape)
        if cached is None:
            original = _ascii(raw, where)
            check_id(original, f"{where}: {what} id")
            if original[:-TAG_DIGITS].translate(_TO_SHAPE).count("x") < self._fixed:
                raise RewriteError(
                    f"{where}: {what} id {original!r} is too short to hold the worker and "
                    "execution segment in front of its serial: use fewer segments"
                )
            cached = self._by_shape[shape] = self.prefix(original)
        return cached

    def prefix(self, original: str) -> bytes:
        """What replaces `original` before the tag: worker, nonce; separators kept."""
        shape = original[:-TAG_DIGITS].translate(_TO_SHAPE)
        cached = self._prefixes.get(shape)
        if cached is None:
            out, k = [], 0
            for c in shape:
                if c == "x":
                    out.append(self._fill[k % len(self._fill)])
                    k += 1
                else:
                    out.append(c)
            cached = "".join(out).encode("ascii")
            self._prefixes[shape] = cached
        return cached


def check_id(original: str, what: str) -> None:
    if (
        len(original) < MIN_ID_LENGTH
        or not original.isascii()
        or not original[-TAG_DIGITS:].isalnum()
        or original[:-TAG_DIGITS].translate(_TO_SHAPE).count("x") < 4
    ):
        raise RewriteError(
            f"{what} {original!r} cannot be rewritten uniquely: ids need at least "
            f"{MIN_ID_LENGTH} ASCII characters, the last {TAG_DIGITS} letters or digits"
        )


NO_BODY = -1
HeadEnd = Callable[[tuple[tuple[str, str], ...], int | None], bytes]


def build_template(
    record: Record,
    *,
    request_start: Callable[[str], bytes],
    head_end: HeadEnd,
    minter: IdMinter,
    created_ms: int | None,
    project_id: str | None = None,
    where: str = "record",
) -> Template:
    """Encode `record` once. `created_ms` is the corpus's wall-clock start (timestamps move by
    the request's intended wall time minus the record's recorded one), None to keep them.

    `request_start(method)` gives b'METHOD /base'; `head_end(headers, content_length)` the
    rest of the head: with Content-Length for a length, none for NO_BODY, and ending in
    'Content-Length: ' for None (the body's length is then written per request).

    This runs once per record sent when a shard is streamed: one pass over the spans finds
    the ids the record defines, a second (`_splice`) writes the format string's pieces.
    """
    path = record.path.encode("utf-8")
    body = bytes(record.body)
    path_spans = _checked(record.path_ids, len(path), where, "path")
    body_spans = _checked(record.body_ids, len(body), where, "body")

    # Pass 1: which ids does this record define? Those get minted (their constant prefix and
    # ordinal, found once per distinct id); references to them follow.
    minted: dict[bytes, tuple[bytes, bytes]] = {}  # id -> (escaped prefix and hole, ordinal)
    traces: set[bytes] = set()
    observations: set[bytes] = set()
    ack: tuple[bytes, bytes] | None = None
    for text, spans in ((path, path_spans), (body, body_spans)):
        for start, length, kind in spans:
            if kind != _TRACE and kind != _OBSERVATION:
                continue
            raw = text[start : start + length]
            (traces if kind == _TRACE else observations).add(raw)
            if raw in minted:
                continue
            if len(minted) > MAX_ORDINAL:
                raise RewriteError(f"{where}: more than {MAX_ORDINAL + 1} ids in one record")
            what = "trace" if kind == _TRACE else "observation"
            prefix = minter.prefix_of(raw, where, what)
            ordinal = _ORDINALS[len(minted)]
            minted[raw] = (prefix.replace(b"%", b"%%") + b"%s", ordinal)
            if kind == _TRACE and ack is None:
                ack = (prefix, ordinal)

    ids = (minted, traces, observations, created_ms)
    project = project_id.encode("utf-8") if project_id is not None else None
    head = [_escaped(request_start(record.method))]
    holes, stamps, reads, _grown, fallback = _splice(path, path_spans, ids, project, head)
    body_part = None
    if body or record.method in ("POST", "PUT", "PATCH"):
        pieces: list[bytes] = []
        body_holes, body_stamps, body_reads, body_length, body_fallback = _splice(
            body, body_spans, ids, project, pieces
        )
        fallback = fallback or body_fallback
        if body_length >= 0:  # one contiguous template: head and body, holes numbered on
            head.append(_escaped(head_end(record.headers, body_length)))
            head += pieces
            if holes:
                body_stamps[::2] = [hole + holes for hole in body_stamps[::2]]
                body_reads = [hole + holes for hole in body_reads]
            stamps += body_stamps
            reads += body_reads
            holes += body_holes
        else:  # a READ hole in the body: its length is written per request
            head.append(_escaped(head_end(record.headers, None)))
            body_part = Part(
                b"".join(pieces), body_holes, stamps_of(body_stamps), tuple(body_reads)
            )
    else:
        head.append(_escaped(head_end(record.headers, NO_BODY)))
    recorded_ms = (created_ms or 0) + record.offset_ns // 1_000_000
    return Template.of(
        record.endpoint,
        record.offset_ns,
        recorded_ms,
        Part(b"".join(head), holes, stamps_of(stamps), tuple(reads)),
        body_part,
        ack,
        fallback,
        bool(reads) or body_part is not None,
    )


_Ids = tuple[dict[bytes, tuple[bytes, bytes]], set[bytes], set[bytes], int | None]


def _splice(
    text: bytes, spans: list[tuple[int, int, int]], ids: _Ids, project: bytes | None,
    out: list[bytes],
) -> tuple[int, list[int], list[int], int, bytes]:  # fmt: skip
    """Append `text` to `out` as format-string pieces (literal % doubled, each hole a %s):
    its holes, stamps (hole, recorded ms, ...), READ holes, the length it will have (-1
    when a READ hole makes it vary) and the first trace it reads as recorded."""
    minted, traces, observations, created = ids
    escape = b"%" in text
    holes = 0
    stamps: list[int] = []
    reads: list[int] = []
    grown, fallback = len(text), b""  # minted ids and moved timestamps keep their length
    pos = 0
    for start, length, kind in spans:
        end = start + length
        raw = text[start:end]
        if kind == _TIMESTAMP:
            if created is None:
                continue  # left as recorded: it stays in the next literal
            ms = parse_iso_ms(raw)
            if ms is None:
                continue  # left as recorded
            literal = text[pos:start]
            out += (literal.replace(b"%", b"%%") if escape else literal, b"%s")
            stamps += (holes, ms)
        elif kind == _PROJECT:
            if project is None:
                continue
            literal = text[pos:start]
            out += (
                literal.replace(b"%", b"%%") if escape else literal,
                project.replace(b"%", b"%%"),
            )
            if grown >= 0:
                grown += len(project) - length
            pos = end
            continue  # (no hole)
        else:
            got = minted.get(raw)
            if got is not None and (
                kind in (_TRACE, _OBSERVATION)
                or (kind == _TRACE_REF and raw in traces)
                or (kind == _OBSERVATION_REF and raw in observations)
            ):
                literal = text[pos:start]
                out += (literal.replace(b"%", b"%%") if escape else literal, *got)
            elif kind == _TRACE_REF:  # a trace this record does not define: a read
                literal = text[pos:start]
                out += (literal.replace(b"%", b"%%") if escape else literal, b"%s")
                reads.append(holes)
                fallback = fallback or raw
                grown = -1
            else:  # an unresolved reference: left as recorded
                continue
        holes += 1
        pos = end
    literal = text[pos:]
    out.append(literal.replace(b"%", b"%%") if escape else literal)
    return holes, stamps, reads, grown, fallback


def _escaped(literal: bytes) -> bytes:
    return literal.replace(b"%", b"%%")


_TRACE, _TRACE_REF = int(IdKind.TRACE), int(IdKind.TRACE_REF)
_OBSERVATION, _OBSERVATION_REF = int(IdKind.OBSERVATION), int(IdKind.OBSERVATION_REF)
_TIMESTAMP, _PROJECT = int(IdKind.TIMESTAMP), int(IdKind.PROJECT)
_READ_HOLE = (READ, 0)


def _ascii(raw: bytes, where: str) -> str:
    try:
        return raw.decode("ascii")
    except UnicodeDecodeError:
        raise RewriteError(f"{where}: id {raw!r} is not ASCII") from None


def _checked(
    spans: Iterable[tuple[int, int, int]], size: int, where: str, part: str
) -> list[tuple[int, int, int]]:
    """The spans in order, each inside the text and none overlapping (RewriteError)."""
    if isinstance(spans, IdSpans):
        ordered = list(spans)  # ints already, and usually in order: no sort
    else:
        ordered = [(int(s), int(n), int(k)) for s, n, k in spans]
    for attempt in range(2):
        pos = 0
        for start, length, _kind in ordered:
            if start < pos and attempt == 0:
                break  # out of order: sort, then check again
            if start < pos or length <= 0 or start + length > size:
                raise RewriteError(
                    f"{where}: {part} span ({start}, {length}) overlaps or is out of range"
                )
            pos = start + length
        else:
            return ordered
        ordered.sort()
    return ordered  # pragma: no cover - the second pass returns or raises
