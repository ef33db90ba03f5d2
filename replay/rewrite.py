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

    [ worker (2 hex) | run nonce (hex) ... ] [ serial (9 hex) ] [ ordinal (3 hex) ]
     constant per worker and shape           per request        per distinct id in the record

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

SERIAL, STAMP, READ = 0, 1, 2
SERIAL_DIGITS = 9
ORDINAL_DIGITS = 3
TAG_DIGITS = SERIAL_DIGITS + ORDINAL_DIGITS
MAX_SERIAL = 16**SERIAL_DIGITS - 1
MAX_ORDINAL = 16**ORDINAL_DIGITS - 1
MAX_WORKERS = 256
MIN_ID_LENGTH = TAG_DIGITS + 4  # 2 worker digits and at least 2 nonce digits before the tag

_ORDINALS = tuple(b"%03x" % i for i in range(MAX_ORDINAL + 1))
_MILLIS = tuple(b"%03dZ" % i for i in range(1000))
_ISO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


class RewriteError(ValueError):
    """A record that cannot be rewritten safely (an id too short to mint uniquely, a bad span)."""


def serial_hex(serial: int) -> bytes:
    """The per-request part of every minted id."""
    return b"%09x" % serial


_SECONDS: dict[str, int] = {}  # 'YYYY-MM-DDTHH:MM:SS' -> epoch seconds, parsed once each


def parse_iso_ms(text: str) -> int | None:
    """Epoch milliseconds of 'YYYY-MM-DDTHH:MM:SS.mmmZ', or None when it is not one."""
    if len(text) != 24 or text[19] != "." or text[23] != "Z" or not text[20:23].isdigit():
        return None
    head = text[:19]
    seconds = _SECONDS.get(head)
    if seconds is None:
        if not _ISO.fullmatch(text):
            return None
        try:
            moment = datetime.strptime(head, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
        except ValueError:
            return None
        if len(_SECONDS) >= 65536:
            _SECONDS.clear()
        seconds = _SECONDS[head] = int(moment.timestamp())
    return seconds * 1000 + int(text[20:23])


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


class Stamps:
    """ISO-8601 timestamps (ms, Z) from epoch ms, formatting each wall-clock second once."""

    __slots__ = ("_prefix",)

    def __init__(self) -> None:
        self._prefix: dict[int, bytes] = {}

    def iso(self, epoch_ms: int) -> bytes:
        second, ms = divmod(epoch_ms, 1000)
        prefix = self._prefix.get(second)
        if prefix is None:
            if len(self._prefix) >= 8192:
                self._prefix.clear()
            moment = datetime.fromtimestamp(second, UTC)
            prefix = moment.strftime("%Y-%m-%dT%H:%M:%S.").encode()
            self._prefix[second] = prefix
        return prefix + _MILLIS[ms]


_TO_SHAPE = str.maketrans(dict.fromkeys(string.ascii_letters + string.digits, "x"))


class IdMinter:
    """The constant prefixes of one worker's minted ids, one per id shape."""

    def __init__(self, worker: int, nonce: int) -> None:
        if not 0 <= worker < MAX_WORKERS:
            raise ValueError(f"worker index {worker} out of range (at most {MAX_WORKERS})")
        self.worker = worker
        noise = hashlib.sha256(b"%d" % nonce).hexdigest()
        self._fill = f"{worker:02x}{noise}"
        self._prefixes: dict[str, bytes] = {}

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


Step = tuple[int, int, tuple[bytes, ...]]  # (hole kind, its argument, the group after it)


class Splice:
    """Bytes with holes, frozen as they are written: groups of literals joined by the serial,
    separated by the other holes (STAMP, READ), and the rendered length while it is fixed."""

    __slots__ = ("first", "group", "length", "pending", "steps")

    def __init__(self) -> None:
        self.first: list[bytes] = []
        self.steps: list[tuple[int, int, list[bytes]]] = []
        self.group = self.first  # the group being written
        self.pending: list[bytes] = []  # literals since the last hole
        self.length: int | None = 0  # None once a READ hole makes it vary

    def text(self, data: bytes) -> None:
        self.pending.append(data)
        if self.length is not None:
            self.length += len(data)

    def serial(self, before: bytes, after: bytes) -> None:
        """`before`, the serial hole, `after` (a minted id: the length does not change)."""
        self.pending.append(before)
        self.group.append(b"".join(self.pending))
        self.pending = [after]

    def hole(self, kind: int, arg: int = 0) -> None:
        """A hole; `length` counts literals only (callers count what fills STAMP and
        SERIAL holes), and a READ hole makes it vary."""
        self.group.append(b"".join(self.pending))
        self.pending = []
        if kind == SERIAL:
            return
        self.group = []
        self.steps.append((kind, arg, self.group))
        if kind == READ:
            self.length = None

    def extend(self, other: Splice) -> None:
        """Append `other` (its holes and literals, in order), group by group."""
        self._join(other.first if other.group is not other.first else other._last())
        for kind, arg, group in other.steps:
            self.hole(kind, arg)
            self._join(other._last() if group is other.group else group)
        if self.length is not None:
            self.length = None if other.length is None else self.length + other.length

    def _last(self) -> list[bytes]:
        return [*self.group, b"".join(self.pending)]

    def _join(self, group: list[bytes]) -> None:
        """Continue the current literal with group[0]; the rest follow after serial holes."""
        self.pending.append(group[0])
        if len(group) > 1:
            self.group.append(b"".join(self.pending))
            self.group.extend(group[1:-1])
            self.pending = [group[-1]]

    def frozen(self) -> tuple[tuple[bytes, ...], tuple[Step, ...]]:
        last = [*self.group, b"".join(self.pending)]
        first = last if self.group is self.first else self.first
        steps = [(k, a, tuple(last if g is self.group else g)) for k, a, g in self.steps]
        return tuple(first), tuple(steps)

    def fixed_length(self) -> int | None:
        """The rendered length, when no hole varies in length (no READ)."""
        return self.length


def render(
    first: tuple[bytes, ...],
    steps: tuple[Step, ...],
    serial: bytes,
    delta_ms: int,
    read: bytes,
    iso: Callable[[int], bytes],
) -> bytes:
    """The hot path: splice one request's serial, shifted timestamps and read target."""
    if not steps:
        return serial.join(first)
    parts = [serial.join(first)]
    append = parts.append
    for kind, arg, group in steps:
        append(iso(arg + delta_ms) if kind == STAMP else read)
        append(serial.join(group))
    return b"".join(parts)


class Template:
    """One record, ready to send many times: see the module docstring."""

    __slots__ = (
        "ack_prefix",
        "ack_suffix",
        "body_first",
        "body_steps",
        "endpoint",
        "first",
        "has_read",
        "head",
        "offset_ns",
        "read_fallback",
        "recorded_ms",
        "steps",
    )

    def __init__(
        self,
        endpoint: str,
        offset_ns: int,
        recorded_ms: int,
        head: Splice,
        body: Splice | None,
        ack: tuple[bytes, bytes] | None,
        read_fallback: bytes,
    ) -> None:
        self.endpoint = endpoint
        self.offset_ns = offset_ns
        self.recorded_ms = recorded_ms  # wall-clock ms the record was (synthetically) sent
        self.first, self.steps = head.frozen()
        if body is None:
            self.body_first: tuple[bytes, ...] | None = None
            self.body_steps: tuple[Step, ...] = ()
        else:
            self.body_first, self.body_steps = body.frozen()
        self.ack_prefix, self.ack_suffix = ack if ack is not None else (b"", b"")
        self.has_read = (head.length is None) or (body is not None and body.length is None)
        self.read_fallback = read_fallback
        self.head = self.first[0].startswith(b"HEAD ")  # its response ends with its head

    @property
    def defines_trace(self) -> bool:
        return bool(self.ack_prefix)

    def trace_id(self, serial: bytes) -> bytes:
        """The minted id of the trace this request ingests (for reads to name later)."""
        return self.ack_prefix + serial + self.ack_suffix

    def render(
        self, serial: bytes, delta_ms: int, read: bytes, iso: Callable[[int], bytes]
    ) -> bytes:
        head = render(self.first, self.steps, serial, delta_ms, read, iso)
        if self.body_first is None:
            return head
        body = render(self.body_first, self.body_steps, serial, delta_ms, read, iso)
        return b"%s%d\r\n\r\n%s" % (head, len(body), body)


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
    """
    path = record.path.encode("utf-8")
    body = bytes(record.body)
    path_spans = _checked(record.path_ids, len(path), where, "path")
    body_spans = _checked(record.body_ids, len(body), where, "body")

    # Pass 1: which ids does this record define? Those get minted (their constant prefix and
    # ordinal, found once per distinct id); references to them follow.
    minted: dict[bytes, tuple[bytes, bytes]] = {}
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
            original = _ascii(raw, where)
            check_id(original, f"{where}: {'trace' if kind == _TRACE else 'observation'} id")
            if len(minted) > MAX_ORDINAL:
                raise RewriteError(f"{where}: more than {MAX_ORDINAL + 1} ids in one record")
            minted[raw] = (minter.prefix(original), _ORDINALS[len(minted)])
            if kind == _TRACE and ack is None:
                ack = minted[raw]

    read_fallback = b""

    def splice(text: bytes, spans: list[tuple[int, int, int]], out: Splice) -> None:
        """Write `text` into `out` with its spans as holes (the hot part of a build)."""
        nonlocal read_fallback
        pos = 0
        grown = len(text)  # minted ids and moved timestamps keep their length
        for start, length, kind in spans:
            raw = text[start : start + length]
            if (
                kind in (_TRACE, _OBSERVATION)
                or (kind == _TRACE_REF and raw in traces)
                or (kind == _OBSERVATION_REF and raw in observations)
            ):
                prefix, ordinal = minted[raw]
                out.serial(text[pos:start] + prefix, ordinal)
            elif kind == _TIMESTAMP and created_ms is not None and (ms := _iso_ms(raw)) is not None:
                out.pending.append(text[pos:start])
                out.hole(STAMP, ms)
            elif kind == _TRACE_REF:
                out.pending.append(text[pos:start])
                out.hole(READ)
                read_fallback = read_fallback or raw
            elif kind == _PROJECT and project_id is not None:
                replacement = project_id.encode("utf-8")
                out.pending.append(text[pos:start] + replacement)
                grown += len(replacement) - length
            else:  # unresolved observation reference, unparseable timestamp: left as recorded
                out.pending.append(text[pos : start + length])
            pos = start + length
        out.pending.append(text[pos:])
        if out.length is not None:
            out.length += grown

    head = Splice()
    head.text(request_start(record.method))
    splice(path, path_spans, head)
    body_splice: Splice | None = None
    if body or record.method in ("POST", "PUT", "PATCH"):
        body_splice = Splice()
        splice(body, body_spans, body_splice)
        body_length = body_splice.fixed_length()
        head.text(head_end(record.headers, body_length))
        if body_length is not None:  # one contiguous template: head and body
            head.extend(body_splice)
            body_splice = None
    else:
        head.text(head_end(record.headers, NO_BODY))
    recorded_ms = (created_ms or 0) + record.offset_ns // 1_000_000
    return Template(
        record.endpoint, record.offset_ns, recorded_ms, head, body_splice, ack, read_fallback
    )


_TRACE, _TRACE_REF = int(IdKind.TRACE), int(IdKind.TRACE_REF)
_OBSERVATION, _OBSERVATION_REF = int(IdKind.OBSERVATION), int(IdKind.OBSERVATION_REF)
_TIMESTAMP, _PROJECT = int(IdKind.TIMESTAMP), int(IdKind.PROJECT)
_SECONDS_RAW: dict[bytes, int] = {}  # parse_iso_ms's cache, by the raw 'YYYY-MM-DDTHH:MM:SS'


def _iso_ms(raw: bytes) -> int | None:
    """parse_iso_ms of raw bytes, without decoding them when the second was seen before."""
    seconds = _SECONDS_RAW.get(raw[:19])
    if (
        seconds is None
        or len(raw) != 24
        or raw[19:20] != b"."
        or raw[23:24] != b"Z"
        or not raw[20:23].isdigit()
    ):
        ms = parse_iso_ms(raw.decode("latin-1"))
        if ms is not None:
            if len(_SECONDS_RAW) >= 65536:
                _SECONDS_RAW.clear()
            _SECONDS_RAW[raw[:19]] = ms // 1000
        return ms
    return seconds * 1000 + int(raw[20:23])


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
