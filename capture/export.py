"""`capture export`: an ingestion corpus rebuilt from the traces an AgentTrace deployment stores.

Through the public read API only: `GET /api/public/traces` (newest first, `fromTimestamp`
inclusive, `toTimestamp` exclusive, `limit` up to 100, `page` from 1) lists the traces of a
time window; `GET /api/public/traces/{id}` gives each with its observations. Each trace
becomes one `POST /api/public/traces` whose body is the trace as the API showed it, minus
the fields the server computes (project, creation and update times, duration, cost), at its
own timestamp: the corpus starts at the first trace's time, and each record's offset is its
trace's timestamp minus that.

Bounded memory: the range is walked in time windows, oldest first, each holding at most
`MAX_WINDOW_TRACES` traces (a window with more is halved until it fits); only one window's
ids are held. Resumable: after each window the state file `OUT.export-state.json` says how
many records the corpus holds up to which time, counting only finished windows whose records
are all in whole chunks already on disk (chunks are cut by size, never by window, so a
resumed corpus is the same bytes as an uninterrupted one); `--resume` copies that many
records from the unfinished corpus and goes on from there, or starts over when the
unfinished corpus is missing or empty. A 429 answer waits its `Retry-After`; a 5xx
or a dropped connection is retried with backoff. The API key goes in the Authorization
header of each request and nowhere else: not in the corpus, the state file or messages.
"""

from __future__ import annotations

import email.utils
import json
import os
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from capture.corpus import CorpusMeta, CorpusReader, CorpusWriter, partial_path
from capture.errors import InputError
from capture.intake import Captured, Intake, iso_ms
from capture.json_body import NOT_JSON_ERRORS

MAX_WINDOW_TRACES = 5_000
PAGE = 100
SERVER_FIELDS = frozenset(
    {
        "projectId",
        "createdAt",
        "updatedAt",
        "durationMs",
        "latency",
        "totalCost",
        "htmlPath",
        "scores",
        "bookmarked",
        "public",
        "calculatedTotalCost",
        "calculatedInputCost",
        "calculatedOutputCost",
    }
)
JSON_HEADERS = (("Content-Type", "application/json"),)
MAX_ANSWER_BYTES = 256 << 20  # an answer larger than this is refused, not buffered
MAX_RETRIES = 8
MAX_WAIT_S = 60.0


@dataclass(frozen=True)
class ExportSpec:
    source: str  # base URL of the deployment
    api_key: str
    from_ms: int
    to_ms: int
    output: Path
    redact: bool = False
    resume: bool = False


@dataclass
class ExportResult:
    traces: int
    written: int
    resumed_from: int  # records copied from an earlier, interrupted run


def _iso(ms: int) -> str:
    return iso_ms(ms * 1_000_000)


def _parse_iso_ms(text: str) -> int:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return round(moment.timestamp() * 1000)


class Api:
    """The read API of one deployment: GETs with the key, retries and Retry-After."""

    def __init__(
        self,
        base: str,
        api_key: str,
        *,
        timeout: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        parts = urlsplit(base)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise InputError(f"--source {base!r}: expected an http:// or https:// URL")
        self.base = base.rstrip("/")
        self._key = api_key
        self._timeout = timeout
        self._sleep = sleep
        self.waits = 0  # 429 answers waited out

    def get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        url = self.base + path + (f"?{urlencode(params)}" if params else "")
        request = urllib.request.Request(url, headers={"Authorization": f"Bearer {self._key}"})
        for attempt in range(MAX_RETRIES + 1):
            try:
                with urllib.request.urlopen(request, timeout=self._timeout) as answer:
                    data = answer.read(MAX_ANSWER_BYTES + 1)
                if len(data) > MAX_ANSWER_BYTES:
                    raise InputError(
                        f"{self.base}: {path} answered more than {MAX_ANSWER_BYTES >> 20} MiB"
                    )
                return json.loads(data)
            except urllib.error.HTTPError as exc:
                if exc.code == 429 and attempt < MAX_RETRIES:
                    self.waits += 1
                    self._sleep(_retry_after(exc.headers.get("Retry-After")))
                    continue
                if exc.code >= 500 and attempt < MAX_RETRIES:
                    self._sleep(min(MAX_WAIT_S, 0.25 * 2**attempt))
                    continue
                if exc.code in (401, 403):
                    raise InputError(
                        f"{self.base}: the API key was refused ({exc.code} on {path})"
                    ) from None
                raise InputError(f"{self.base}: {exc.code} {exc.reason} on {path}") from None
            except (TimeoutError, urllib.error.URLError, OSError) as exc:
                reason = getattr(exc, "reason", exc)
                if attempt == 0 and isinstance(reason, ConnectionRefusedError | socket.gaierror):
                    raise InputError(f"{self.base}: unreachable ({reason})") from None
                if attempt < MAX_RETRIES:
                    self._sleep(min(MAX_WAIT_S, 0.25 * 2**attempt))
                    continue
                raise InputError(f"{self.base}: unreachable ({reason})") from None
            except NOT_JSON_ERRORS:
                raise InputError(f"{self.base}: {path} did not answer JSON") from None
        raise InputError(f"{self.base}: {path} kept failing")  # pragma: no cover - loop returns

    def window(self, from_ms: int, to_ms: int, page: int, limit: int = PAGE) -> dict[str, Any]:
        answer = self.get(
            "/api/public/traces",
            {
                "fromTimestamp": _iso(from_ms),
                "toTimestamp": _iso(to_ms),
                "limit": limit,
                "page": page,
            },
        )
        if not isinstance(answer, dict) or not isinstance(answer.get("data"), list):
            raise InputError(f"{self.base}: /api/public/traces did not answer a trace list")
        return answer

    def trace(self, trace_id: str) -> dict[str, Any] | None:
        try:
            answer = self.get(f"/api/public/traces/{quote(trace_id, safe='')}")
        except InputError as exc:
            if " 404 " in str(exc):
                return None  # deleted between the list and the read
            raise
        return answer if isinstance(answer, dict) else None


def _retry_after(value: str | None) -> float:
    if not value:
        return 1.0
    try:
        return min(MAX_WAIT_S, max(0.0, float(value)))
    except ValueError:
        when = email.utils.parsedate_to_datetime(value)
        return min(MAX_WAIT_S, max(0.0, when.timestamp() - time.time()))


def ingestion_body(trace: dict[str, Any]) -> bytes:
    """The POST /api/public/traces body that recreates a trace as the read API showed it."""
    body = {k: v for k, v in trace.items() if k not in SERVER_FIELDS and v is not None}
    observations = trace.get("observations") or []
    body["observations"] = [
        {k: v for k, v in obs.items() if k not in SERVER_FIELDS and v is not None}
        for obs in observations
        if isinstance(obs, dict)
    ]
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _windows(api: Api, from_ms: int, to_ms: int) -> Iterator[tuple[int, list[tuple[int, str]]]]:
    """(window end, its traces as (timestamp ms, id) oldest first), windows oldest first."""
    span = max(1, min(to_ms - from_ms, 3_600_000))
    start = from_ms
    while start < to_ms:
        end = min(to_ms, start + span)
        first = api.window(start, end, 1)
        total = int(first.get("meta", {}).get("totalItems", len(first["data"])))
        if total > MAX_WINDOW_TRACES and end - start > 1:
            span = max(1, (end - start) // 2)
            continue
        found: list[tuple[int, str]] = []
        page, answer = 1, first
        while True:
            for item in answer["data"]:
                if isinstance(item, dict) and isinstance(item.get("id"), str):
                    stamp = item.get("timestamp")
                    found.append((_parse_iso_ms(stamp) if stamp else start, item["id"]))
            pages = int(answer.get("meta", {}).get("totalPages", page))
            if page >= pages or not answer["data"]:
                break
            page += 1
            answer = api.window(start, end, page)
        found.sort()
        yield end, found
        start = end
        if total < MAX_WINDOW_TRACES // 4:
            span *= 2


class _State:
    """OUT.export-state.json: the range, the corpus start and records per finished window."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.data: dict[str, Any] = {}

    def load(self) -> bool:
        try:
            self.data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return False
        except ValueError:
            raise InputError(f"{self.path}: not an export state file") from None
        return True

    def save(self) -> None:
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps(self.data))
        os.replace(tmp, self.path)


def state_path(output: Path) -> Path:
    return output.with_name(output.name + ".export-state.json")


def export_corpus(spec: ExportSpec, progress: Callable[[str], None], api: Api) -> ExportResult:
    """Run the export (see the module docstring)."""
    state = _State(state_path(spec.output))
    resumed = 0
    old: Path | None = None
    if spec.resume and state.load():
        from_ms, to_ms = int(state.data["from_ms"]), int(state.data["to_ms"])
        partial = partial_path(spec.output)
        size = partial.stat().st_size if partial.exists() else None
        if size and state.data.get("windows"):
            old = spec.output.with_name(spec.output.name + ".resume")
            os.replace(partial, old)
        else:
            found = "missing" if size is None else "empty" if size == 0 else "no finished window"
            progress(f"{partial}: {found}, nothing kept: starting from the beginning")
            state.data["windows"] = []
            state.data.pop("created_ms", None)
    else:
        if spec.resume:
            progress(f"no export state next to {spec.output}: starting from the beginning")
        from_ms, to_ms = spec.from_ms, spec.to_ms
        state.data = {"source": api.base, "from_ms": from_ms, "to_ms": to_ms, "windows": []}
    total = int(api.window(from_ms, to_ms, 1, 1).get("meta", {}).get("totalItems", 0))
    intake = Intake(redact=spec.redact)
    writer: CorpusWriter | None = None
    created_ms = state.data.get("created_ms")

    def open_writer(created: int) -> CorpusWriter:
        extra = {
            "command": f"capture export --source {api.base} --from {_iso(from_ms)} "
            f"--to {_iso(to_ms)}" + (" --redact" if spec.redact else ""),
            "redacted": spec.redact,
        }
        meta = CorpusMeta("ingestion", "export", _iso(created), None, extra)
        return CorpusWriter(spec.output, meta, keep_partial=True)

    start = from_ms
    written = 0
    finished: list[list[int]] = []  # [end, records] of every window done, durable or not
    try:
        if old is not None and created_ms is not None:
            writer = open_writer(created_ms)
            resumed, start = _copy_finished(old, writer, state)
            finished = list(state.data["windows"])
            written = resumed
            progress(f"resumed: {resumed:,} records kept, going on from {_iso(start)}")
        elif old is not None:
            state.data["windows"] = []
        began = time.monotonic()
        for end, traces in _windows(api, start, to_ms):
            for stamp_ms, trace_id in traces:
                trace = api.trace(trace_id)
                if trace is None:
                    continue
                if created_ms is None:
                    created_ms = stamp_ms
                    state.data["created_ms"] = created_ms
                if writer is None:
                    writer = open_writer(created_ms)
                body = ingestion_body(trace)
                captured = Captured(
                    stamp_ms * 1_000_000, "POST", "/api/public/traces", JSON_HEADERS, body, trace_id
                )
                record = intake.convert(captured, (stamp_ms - created_ms) * 1_000_000)
                if record is not None:
                    writer.write(record)
                    written += 1
            finished.append([end, written])
            durable = writer.sync() if writer is not None else 0
            state.data["windows"] = [w for w in finished if w[1] <= durable]
            state.save()
            rate = (written - resumed) / max(time.monotonic() - began, 1e-9)
            progress(
                f"exported {written:,} of {total:,} traces up to {_iso(end)} ({rate:,.0f}/s"
                + (f", {api.waits} waits for 429" if api.waits else "")
                + ")"
            )
        if writer is None:
            writer = open_writer(from_ms)
        writer.close()
    except BaseException:
        if writer is not None:
            writer.abort()  # writes every record given so far: all finished windows are kept
            if finished:
                state.data["windows"] = finished
                state.save()
        raise
    finally:
        if old is not None:
            old.unlink(missing_ok=True)
    state.path.unlink(missing_ok=True)
    return ExportResult(traces=total, written=written, resumed_from=resumed)


def _copy_finished(old: Path, writer: CorpusWriter, state: _State) -> tuple[int, int]:
    """Copy the records of the windows whole in the unfinished corpus; (count, resume time)."""
    with CorpusReader(old, recover=True) as reader:
        available = reader.header.records
        keep, start = 0, int(state.data["from_ms"])
        kept_windows = []
        for end, count in state.data["windows"]:
            if count > available:
                break
            keep, start = count, end
            kept_windows.append([end, count])
        state.data["windows"] = kept_windows
        for n, record in enumerate(reader):
            if n >= keep:
                break
            writer.write(record)
    return keep, start
