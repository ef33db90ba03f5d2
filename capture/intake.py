"""From a captured HTTP request to a corpus record: the one gate every importer goes through.

An importer (HAR, GoReplay, mitmproxy, the export from AgentTrace) yields `Captured`
requests: a wall-clock time, method, target, headers and body as they were seen. `Intake`
turns each into a `Record` or counts why not:

- the endpoint tag comes from method and path; a path that is not AgentTrace's is dropped
  unless a `--path` prefix keeps it (tagged `other`);
- credential headers (Authorization, Cookie, anything whose name holds key, token, secret,
  auth, cookie or password) and connection headers never enter the corpus; a gzip or
  deflate body is stored decoded;
- a head that `capture.httphead.head_problem` refuses is skipped and counted;
- ids and timestamps get spans (`capture.spans.find_spans`); a body that is not JSON is kept
  as it is, an opaque record (counted);
- `--redact` replaces free text (`capture.redact`) before the spans are found.

`write_records` puts them in time order through a bounded reorder window (captures are
nearly sorted; one later than the window allows is sent at the latest time already written,
and counted) and writes the corpus with `created` at the first kept request's time.
"""

from __future__ import annotations

import heapq
import os
import zlib
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from capture.corpus import SECRET_HEADERS, CorpusMeta, CorpusWriter, Record
from capture.corpus_check import MAX_BODY
from capture.httphead import head_problem
from capture.json_body import parsed_or_none
from capture.redact import redact_body, redact_path
from capture.spans import Spans, body_spans, path_spans

CREDENTIAL_WORDS = ("key", "token", "secret", "auth", "cookie", "password")
CONNECTION_HEADERS = frozenset(
    {
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "expect",
        "te",
        "trailer",
        "upgrade",
        "proxy-connection",
        "content-encoding",
        "user-agent",  # (replay sends its own)
        "forwarded",  # the recording network's client addresses
        "x-forwarded-for",
        "x-forwarded-host",
        "x-forwarded-proto",
        "x-forwarded-port",
        "x-real-ip",
    }
)
"""Headers no record keeps, recorded or imported (lower case): they describe the connection
the request came on, or are rewritten by whoever sends the record again (a gzip or deflate
body is kept decoded; another coding keeps its Content-Encoding, added back by the caller)."""
REORDER_WINDOW = 65_536
REORDER_BYTES = 256 << 20  # bodies held for reordering at most
_DECODED = frozenset({"gzip", "x-gzip", "deflate", "identity"})  # stored decoded


class Captured(NamedTuple):
    """One request as an importer saw it. `where` names it in messages (file and record)."""

    at_ns: int  # wall-clock time, ns since the Unix epoch
    method: str
    target: str  # origin form (/path?query) or an absolute URL
    headers: tuple[tuple[str, str], ...]
    body: bytes
    where: str


def is_credential(name: str) -> bool:
    """Whether a header may carry a credential: such headers never enter a corpus."""
    lower = name.lower()
    return lower in SECRET_HEADERS or any(word in lower for word in CREDENTIAL_WORDS)


TRACES = "/api/public/traces"
INGESTION = "/api/public/ingestion"
METRICS = "/api/public/metrics/"
GRAPHQL = "/graphql"
PROJECTS = "/api/projects/"


def endpoint_of(method: str, path: str) -> str | None:
    """The corpus endpoint tag of an AgentTrace API request, or None for any other request
    (another API's path, or a method AgentTrace does not serve there)."""
    route, _, query = path.partition("?")
    method = method.upper()
    if route == TRACES or route == TRACES + "/":
        if method == "POST":
            return "ingest"
        if method == "GET":
            return "search" if _has_param(query, "search") else "list"
        return None
    if route.startswith(TRACES + "/"):
        return "get" if method == "GET" and "/" not in route[len(TRACES) + 1 :] else None
    if route == INGESTION:
        return "batch" if method == "POST" else None
    if route.startswith(METRICS) and len(route) > len(METRICS):
        return "metrics" if method == "GET" else None
    if route == GRAPHQL:
        return "graphql" if method == "POST" else None
    if route.startswith(PROJECTS) and len(route) > len(PROJECTS):
        return "project" if method == "GET" and "/" not in route[len(PROJECTS) :] else None
    return None


def _has_param(query: str, name: str) -> bool:
    return any(part.partition("=")[0] == name for part in query.split("&"))


def origin_form(target: str) -> str:
    """/path?query of a target given as an absolute URL or already in origin form."""
    if target.startswith("/"):
        return target
    parts = urlsplit(target)
    return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")


@dataclass
class Tally:
    """What an import read, wrote and skipped, and why."""

    read: int = 0
    written: int = 0
    opaque: int = 0
    late: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    endpoints: Counter[str] = field(default_factory=Counter)

    def to_json(self) -> dict[str, Any]:
        return {
            "read": self.read,
            "written": self.written,
            "opaque": self.opaque,
            "reordered_late": self.late,
            "skipped": dict(self.skipped),
            "endpoints": dict(self.endpoints),
        }

    def summary(self) -> str:
        skipped = ", ".join(f"{n:,} {why}" for why, n in sorted(self.skipped.items()))
        return (
            f"{self.written:,} of {self.read:,} requests written ({self.opaque:,} opaque)"
            + (f"; skipped {skipped}" if skipped else "")
            + (f"; {self.late:,} later than the reorder window" if self.late else "")
        )


class Intake:
    """Turns captured requests into records (see the module docstring)."""

    def __init__(self, *, keep_paths: Iterable[str] = (), redact: bool = False) -> None:
        self.keep_paths = tuple(keep_paths)
        self.redact = redact
        self.tally = Tally()

    def _skip(self, why: str) -> None:
        self.tally.skipped[why] += 1

    def convert(self, captured: Captured, offset_ns: int) -> Record | None:
        self.tally.read += 1
        path = origin_form(captured.target)
        endpoint = endpoint_of(captured.method, path)
        if endpoint is None:
            if not any(path.startswith(prefix) for prefix in self.keep_paths):
                self._skip("not AgentTrace paths")
                return None
            endpoint = "other"
        headers = tuple(
            (k, v)
            for k, v in captured.headers
            if not k.startswith(":")
            and not is_credential(k)
            and k.lower() not in CONNECTION_HEADERS
        )
        body = self._decoded(captured)
        if body is None:
            return None
        headers += tuple(
            (k, v)
            for k, v in captured.headers
            if k.lower() == "content-encoding" and v.strip().lower() not in _DECODED
        )
        if self.redact:
            body = redact_body(body) if body else body
            path = redact_path(path)
        problem = head_problem(captured.method, path, headers)
        if problem:
            self._skip("invalid request heads")
            return None
        doc = _json_doc(body)
        if body and doc is None:
            self.tally.opaque += 1
        path_ids, path_trace = path_spans(path)
        body_ids, body_trace = body_spans(body, doc) if doc is not None else ((), None)
        spans = Spans(body_ids, path_ids, body_trace or path_trace)
        self.tally.written += 1
        self.tally.endpoints[endpoint] += 1
        return Record(
            offset_ns=offset_ns,
            endpoint=endpoint,
            method=captured.method,
            path=path,
            headers=headers,
            body=body,
            body_ids=spans.body_ids,
            path_ids=spans.path_ids,
            trace=spans.trace,
        )

    def _decoded(self, captured: Captured) -> bytes | None:
        encoding = next(
            (v.strip().lower() for k, v in captured.headers if k.lower() == "content-encoding"),
            "identity",
        )
        if encoding in _DECODED and encoding != "identity":
            wbits = 47 if encoding != "deflate" else 15
            try:
                inflater = zlib.decompressobj(wbits)
                body = inflater.decompress(captured.body, MAX_BODY + 1)
            except zlib.error:
                self._skip("undecodable compressed bodies")
                return None
        else:
            body = captured.body
        if len(body) > MAX_BODY:  # what a corpus may hold
            self._skip(f"bodies over {MAX_BODY >> 20} MiB")
            return None
        return body


def _json_doc(body: bytes) -> Any:
    """The parsed body, or None when it is empty or not JSON (an opaque body)."""
    return parsed_or_none(body)


def in_time_order(
    captures: Iterable[Captured],
    tally: Tally,
    window: int = REORDER_WINDOW,
    window_bytes: int = REORDER_BYTES,
) -> Iterator[Captured]:
    """Captures sorted through a heap of at most `window` requests and `window_bytes` of
    bodies; a straggler later than that is given the latest time already emitted (counted
    in `tally.late`)."""
    heap: list[tuple[int, int, Captured]] = []
    held = 0
    last: int | None = None

    def pop() -> Captured:
        nonlocal held, last
        at, _, item = heapq.heappop(heap)
        held -= len(item.body)
        if last is not None and at < last:
            tally.late += 1
            item = item._replace(at_ns=last)
        last = item.at_ns
        return item

    for seq, captured in enumerate(captures):
        heapq.heappush(heap, (captured.at_ns, seq, captured))
        held += len(captured.body)
        while len(heap) > window or (held > window_bytes and len(heap) > 1):
            yield pop()
    while heap:
        yield pop()


def iso_ms(at_ns: int) -> str:
    """ISO-8601 UTC with milliseconds, as corpus metadata and AgentTrace bodies write it."""
    moment = datetime.fromtimestamp(at_ns // 1_000_000_000, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at_ns // 1_000_000 % 1000:03d}Z"


def write_records(
    captures: Iterable[Captured],
    output: str | os.PathLike[str],
    intake: Intake,
    *,
    source: str,
    workload: str = "recorded",
    extra: dict[str, Any] | None = None,
) -> Tally:
    """Write the captures, in time order, as a corpus that starts at the first one kept.

    The writer is opened at the first kept record, so its metadata carries the true start and
    requests that are skipped before it (another API's paths) leave no idle lead-in; an
    import with nothing to write still writes a valid empty corpus."""
    writer: CorpusWriter | None = None
    start_ns = 0
    try:
        for captured in in_time_order(captures, intake.tally):
            record = intake.convert(captured, 0)
            if record is None:
                continue
            if writer is None:
                start_ns = captured.at_ns
                meta = CorpusMeta(workload, source, iso_ms(start_ns), None, dict(extra or {}))
                writer = CorpusWriter(output, meta)
            writer.write(record._replace(offset_ns=captured.at_ns - start_ns))
        if writer is None:
            writer = CorpusWriter(output, CorpusMeta(workload, source, "", None, dict(extra or {})))
        writer.close()
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    return intake.tally
