"""Synthetic AgentTrace traffic, shaped like the load-testing guide's k6 scenarios.

Three workloads (docs/synthetic-traffic.md gives every distribution and why):

    ingestion  POST /api/public/traces: one trace of an AI agent run with its observations,
               the guide's k6 payload with realistic variety (observations per trace, prompt
               and completion lengths, models, token counts).
    query      the guide's query test: list (limit=50), get by id, search, metrics
               (period=day) and the GraphQL traces query, chosen uniformly; the gets name
               traces that the corpus's own seed ingestion created in its first seconds.
    mixed      the guide's mixed workload in its proportions: ingestion (constant arrival,
               100/s), queries (20 VUs, 0.5 s think time) and dashboard visits (project,
               sleep 1 s, list, sleep 2 s, trace detail).

Everything random comes from one numpy PCG64 generator seeded with --seed and is drawn in a
fixed order, so the same spec always gives the same records (and the same corpus bytes).
"""

from __future__ import annotations

import heapq
import json
import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from capture.arrivals import PROFILES, arrival_offsets_ns
from capture.corpus import CorpusMeta, CorpusWriter, IdKind, IdSpan, Record
from capture.synth_words import WORDS

WORKLOADS = ("ingestion", "query", "mixed")
DEFAULT_EPOCH = "2026-01-01T00:00:00Z"
PROJECT_PLACEHOLDER = "proj_loadtest"

# Models and their share of traces (a 2026 mix of hosted frontier, small and open models).
MODELS = (
    ("gpt-4o", 0.30),
    ("gpt-4o-mini", 0.25),
    ("claude-3-5-sonnet", 0.15),
    ("gpt-4", 0.10),
    ("claude-3-haiku", 0.10),
    ("llama-3.1-70b-instruct", 0.10),
)
AGENTS = ("support-agent", "rag-pipeline", "code-assistant", "research-agent", "sql-agent")
SEARCH_TERMS = (("test", 0.5), ("weather", 0.2), ("refund", 0.1), ("invoice", 0.1), ("error", 0.1))
QUERY_KINDS = ("list", "get", "search", "metrics", "graphql")

# The guide's mixed workload, in requests per second at its reference latencies:
# ingestion 100/s; queries 20 VUs / (0.5 s sleep + 45 ms p50) = 36.7/s; dashboard on average
# 9 VUs (5 -> 10 -> 5) doing 3 requests per 6 s of sleep + latency = 4.4/s of visits x 3.
MIXED_SHARES = (("ingest", 100.0), ("query", 36.7), ("dashboard", 4.4 / 3))
DASHBOARD_STEPS_S = (0.0, 1.0, 3.0)  # project, then list after sleep(1), get after sleep(2)

JSON_HEADERS = (("Content-Type", "application/json"), ("Accept", "application/json"))
GET_HEADERS = (("Accept", "application/json"),)
_PLAIN = re.compile(r"[a-z ]+")
TRACES_PATH = "/api/public/traces"


@dataclass(frozen=True)
class SynthSpec:
    """What to synthesise. rate is the mean requests per second over the whole corpus."""

    workload: str
    rate: float
    duration_ns: int
    seed: int
    profile: str = "constant"
    epoch: str = DEFAULT_EPOCH

    def __post_init__(self) -> None:
        if self.workload not in WORKLOADS:
            raise ValueError(
                f"unknown workload {self.workload!r} (choose from {', '.join(WORKLOADS)})"
            )
        if self.profile not in PROFILES:
            raise ValueError(
                f"unknown profile {self.profile!r} (choose from {', '.join(PROFILES)})"
            )
        if not (self.rate > 0 and math.isfinite(self.rate)):
            raise ValueError(f"rate must be a positive number, got {self.rate}")
        if self.duration_ns <= 0:
            raise ValueError("duration must be positive")
        parse_epoch(self.epoch)

    def command(self) -> str:
        """The `capture synth` command line that regenerates this corpus."""
        duration = f"{self.duration_ns / 1e9:g}s"
        cmd = (
            f"capture synth --workload {self.workload} --rate {self.rate:g} "
            f"--duration {duration} --seed {self.seed}"
        )
        if self.profile != "constant":
            cmd += f" --profile {self.profile}"
        if self.epoch != DEFAULT_EPOCH:
            cmd += f" --epoch {self.epoch}"
        return cmd


def parse_epoch(text: str) -> datetime:
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{text!r} is not an ISO-8601 time (example: {DEFAULT_EPOCH})") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC)


class _Draws:
    """Pre-drawn random numbers handed out one at a time, so per-trace code stays cheap.

    numpy is fast per array and slow per scalar, so numbers are drawn in blocks and handed
    out by generators. A block is drawn when the previous one runs out; the order of draws
    is fixed by the code, so the sequence is a pure function of the seed.
    """

    BLOCK = 8192

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self._normal = self._stream(lambda: rng.standard_normal(self.BLOCK).tolist())
        self._uniform = self._stream(lambda: rng.random(self.BLOCK).tolist())
        self._hex = self._stream(lambda: [b.hex() for b in _split16(rng.bytes(16 * self.BLOCK))])

    @staticmethod
    def _stream(block: Callable[[], list[Any]]) -> Iterator[Any]:
        while True:
            yield from block()

    def normal(self) -> float:
        return next(self._normal)

    def uniform(self) -> float:
        return next(self._uniform)

    def lognormal(self, median: float, sigma: float) -> float:
        return median * math.exp(sigma * next(self._normal))

    def poisson_small(self, mean: float) -> int:
        """Knuth's method: fine for the small means used here (observations per trace)."""
        limit, k, p = math.exp(-mean), 0, next(self._uniform)
        while p > limit:
            k += 1
            p *= next(self._uniform)
        return k

    def index(self, n: int) -> int:
        return min(int(next(self._uniform) * n), n - 1)

    def weighted(self, cumulative: list[float]) -> int:
        u = next(self._uniform) * cumulative[-1]
        for i, c in enumerate(cumulative):
            if u < c:
                return i
        return len(cumulative) - 1

    def hex_id(self) -> str:
        """32 random lowercase hex digits, like k6's randomString(32) trace ids."""
        return str(next(self._hex))

    def uuid4(self) -> str:
        """A random RFC 4122 version-4 UUID in its 36-character text form."""
        h = next(self._hex)
        variant = "89ab"[int(h[16], 16) & 3]
        return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{variant}{h[17:20]}-{h[20:]}"


def _split16(raw: bytes) -> list[bytes]:
    return [raw[i : i + 16] for i in range(0, len(raw), 16)]


def _cumulative(weights: tuple[tuple[str, float], ...]) -> list[float]:
    return list(np.cumsum([w for _, w in weights]).tolist())


class TraceFactory:
    """Builds ingestion records: the guide's payload with the variety of real agent runs.

    The body is written with f-strings rather than json.dumps: every value is either a
    number, an id, a timestamp or text from a fixed ASCII vocabulary that needs no escaping,
    which keeps synthesis fast and the output byte-for-byte stable.
    """

    def __init__(self, draws: _Draws, epoch: datetime) -> None:
        self.d = draws
        self.epoch_ms = int(epoch.timestamp() * 1000)
        self._model_cum = _cumulative(MODELS)
        words = np.array(WORDS)
        self._text = " ".join(words[draws.rng.integers(0, len(words), size=40_000)].tolist())
        assert _PLAIN.fullmatch(self._text), "the vocabulary must need no JSON escaping"
        self._second_prefix: dict[int, str] = {}

    def text(self, median_chars: float, sigma: float = 0.8, cap: int = 4000) -> str:
        d = self.d
        n = max(8, min(cap, int(median_chars * math.exp(sigma * next(d._normal)))))
        start = self._text.find(" ", int(next(d._uniform) * (len(self._text) - cap - 1))) + 1
        return self._text[start : start + n].strip()

    def iso(self, epoch_ms: int) -> str:
        """ISO-8601 UTC with milliseconds, formatting each wall-clock second only once."""
        second, ms = divmod(epoch_ms, 1000)
        prefix = self._second_prefix.get(second)
        if prefix is None:
            if len(self._second_prefix) > 4096:
                self._second_prefix.clear()
            prefix = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S.")
            self._second_prefix[second] = prefix
        return f"{prefix}{ms:03d}Z"

    def build(self, offset_ns: int) -> tuple[Record, str]:
        d = self.d
        trace_id = d.hex_id()
        model = MODELS[d.weighted(self._model_cum)][0]
        agent = AGENTS[d.index(len(AGENTS))]
        generations = 1 + min(d.poisson_small(2.5), 14)
        query = self.text(60)

        # Generation timings first: the trace is sent when the agent run has finished.
        drafts = []
        clock_ms = 0
        total_in = total_out = 0
        for _ in range(generations):
            prompt, completion = self.text(70), self.text(90)
            tokens_in = len(prompt) // 4 + int(d.lognormal(350, 1.0))
            tokens_out = max(1, len(completion) // 4)
            latency_ms = int((250 + tokens_out * 12) * math.exp(0.3 * d.normal()))
            drafts.append((prompt, completion, tokens_in, tokens_out, clock_ms, latency_ms))
            clock_ms += latency_ms + 20 + int(80 * d.uniform())  # tool and parsing time
            total_in += tokens_in
            total_out += tokens_out
        started_ms = self.epoch_ms + offset_ns // 1_000_000 - clock_ms - 50
        t0 = self.iso(started_ms)

        # The body is assembled piece by piece, noting where each id and timestamp lands:
        # cheaper than searching the finished body, and exact by construction.
        b = _SpanningText()
        b.add('{"id":"').span(trace_id, TRACE).add('","name":"load-test-trace-')
        b.span(trace_id, TRACE_REF).add('","timestamp":"').span(t0, TIMESTAMP)
        b.add(f'","input":{{"query":"{query}"}},"output":{{"response":"{drafts[-1][1]}"}},')
        b.add(f'"metadata":{{"model":"{model}","agent":"{agent}",')
        b.add(f'"tokens":{{"input":{total_in},"output":{total_out}}}}},"observations":[')
        span_id = d.uuid4()
        b.add('{"id":"').span(span_id, OBSERVATION).add('","trace_id":"').span(trace_id, TRACE_REF)
        b.add('","type":"SPAN","name":"observation-0","start_time":"').span(t0, TIMESTAMP)
        b.add('","end_time":"').span(self.iso(started_ms + clock_ms), TIMESTAMP)
        b.add(f'","input":{{"step":0,"query":"{query}"}},"output":{{"result":"step 0 complete"}}}}')
        for i, (prompt, completion, tin, tout, at_ms, lat_ms) in enumerate(drafts, start=1):
            begin = started_ms + at_ms
            b.add(',{"id":"').span(d.uuid4(), OBSERVATION).add('","trace_id":"')
            b.span(trace_id, TRACE_REF).add(f'","type":"GENERATION","name":"observation-{i}",')
            b.add('"parent_observation_id":"').span(span_id, OBSERVATION_REF)
            b.add('","start_time":"').span(self.iso(begin), TIMESTAMP)
            b.add('","end_time":"').span(self.iso(begin + lat_ms), TIMESTAMP)
            b.add(
                f'","model":"{model}","model_parameters":{{"temperature":0.{d.index(10)}}},'
                f'"input":{{"messages":[{{"role":"user","content":"{prompt}"}}]}},'
                f'"output":{{"role":"assistant","content":"{completion}"}},'
                f'"usage":{{"input":{tin},"output":{tout},"total":{tin + tout}}}}}'
            )
        b.add("]}")
        record = Record(
            offset_ns=offset_ns,
            endpoint="ingest",
            method="POST",
            path=TRACES_PATH,
            headers=JSON_HEADERS,
            body=b.encode(),
            body_ids=tuple(b.spans),
            trace=trace_id,
        )
        return record, trace_id


TRACE, TRACE_REF, OBSERVATION, OBSERVATION_REF, TIMESTAMP = (
    int(IdKind.TRACE),
    int(IdKind.TRACE_REF),
    int(IdKind.OBSERVATION),
    int(IdKind.OBSERVATION_REF),
    int(IdKind.TIMESTAMP),
)


class _SpanningText:
    """ASCII text built from pieces, remembering the (start, length, kind) of marked ones."""

    __slots__ = ("_parts", "_pos", "spans")

    def __init__(self) -> None:
        self._parts: list[str] = []
        self._pos = 0
        self.spans: list[IdSpan] = []

    def add(self, text: str) -> _SpanningText:
        self._parts.append(text)
        self._pos += len(text)
        return self

    def span(self, text: str, kind: int) -> _SpanningText:
        self.spans.append((self._pos, len(text), kind))
        return self.add(text)

    def encode(self) -> bytes:
        return "".join(self._parts).encode("ascii")


class QueryFactory:
    """Builds the guide's read requests: list, get, search, metrics, GraphQL, project."""

    def __init__(self, draws: _Draws) -> None:
        self.d = draws
        self._term_cum = _cumulative(SEARCH_TERMS)

    def build(self, kind: str, offset_ns: int, trace_id: str | None) -> Record:
        if kind == "get" and trace_id is None:
            kind = "list"  # nothing ingested yet to read back
        if kind == "list":
            return Record(offset_ns, "list", "GET", f"{TRACES_PATH}?limit=50", GET_HEADERS, b"")
        if kind == "get":
            assert trace_id is not None
            prefix = f"{TRACES_PATH}/"
            return Record(
                offset_ns,
                "get",
                "GET",
                prefix + trace_id,
                GET_HEADERS,
                b"",
                path_ids=((len(prefix), len(trace_id), int(IdKind.TRACE_REF)),),
                trace=trace_id,
            )
        if kind == "search":
            term = SEARCH_TERMS[self.d.weighted(self._term_cum)][0]
            path = f"{TRACES_PATH}?search={term}&limit=20"
            return Record(offset_ns, "search", "GET", path, GET_HEADERS, b"")
        if kind == "metrics":
            path = "/api/public/metrics/traces?period=day"
            return Record(offset_ns, "metrics", "GET", path, GET_HEADERS, b"")
        if kind == "graphql":
            query = (
                f'query {{ traces(projectId: "{PROJECT_PLACEHOLDER}", limit: 20) '
                "{ id name timestamp observations { id type } } }"
            )
            body = json.dumps({"query": query}, separators=(",", ":")).encode()
            start = body.find(PROJECT_PLACEHOLDER.encode())
            spans = ((start, len(PROJECT_PLACEHOLDER), int(IdKind.PROJECT)),)
            return Record(offset_ns, "graphql", "POST", "/graphql", JSON_HEADERS, body, spans)
        if kind == "project":
            prefix = "/api/projects/"
            return Record(
                offset_ns,
                "project",
                "GET",
                prefix + PROJECT_PLACEHOLDER,
                GET_HEADERS,
                b"",
                path_ids=((len(prefix), len(PROJECT_PLACEHOLDER), int(IdKind.PROJECT)),),
            )
        raise ValueError(f"unknown query kind {kind!r}")


class _Ingested:
    """Traces the corpus has ingested so far, to name in reads (a bounded reservoir)."""

    LIMIT = 10_000

    def __init__(self, draws: _Draws) -> None:
        self.d = draws
        self.ids: list[str] = []
        self._next = 0

    def add(self, trace_id: str) -> None:
        if len(self.ids) < self.LIMIT:
            self.ids.append(trace_id)
        else:  # overwrite round-robin: reads favour recent traces, as dashboards do
            self.ids[self._next] = trace_id
            self._next = (self._next + 1) % self.LIMIT

    def pick(self) -> str | None:
        return self.ids[self.d.index(len(self.ids))] if self.ids else None


class _Traffic:
    """One corpus's factories and memory: what it ingested, so that its reads can name it."""

    def __init__(self, spec: SynthSpec) -> None:
        rng = np.random.Generator(np.random.PCG64(spec.seed))
        self.offsets: list[int] = arrival_offsets_ns(
            rng, spec.rate, spec.duration_ns, spec.profile
        ).tolist()
        self.draws = _Draws(rng)
        self._traces = TraceFactory(self.draws, parse_epoch(spec.epoch))
        self._queries = QueryFactory(self.draws)
        self._ingested = _Ingested(self.draws)

    def ingest(self, offset: int) -> Record:
        record, trace_id = self._traces.build(offset)
        self._ingested.add(trace_id)
        return record

    def read(self, offset: int, kind: str | None = None) -> Record:
        """A read request; with no kind, one of the guide's five queries at random."""
        if kind is None:
            kind = QUERY_KINDS[self.draws.index(len(QUERY_KINDS))]
        return self._queries.build(kind, offset, self._ingested.pick() if kind == "get" else None)


def synthesize(spec: SynthSpec) -> Iterator[Record]:
    """The records of a synthetic corpus, in time order, streamed (constant memory)."""
    traffic = _Traffic(spec)
    if spec.workload == "ingestion":
        return map(traffic.ingest, traffic.offsets)
    if spec.workload == "query":
        return _query_workload(spec, traffic)
    return _mixed_workload(spec, traffic)


def seed_trace_count(queries: int) -> int:
    """How many traces a query corpus ingests first so that its gets have something to read."""
    return max(10, min(500, queries // 10))


def _query_workload(spec: SynthSpec, traffic: _Traffic) -> Iterator[Record]:
    # Seed traces go out evenly over the first 5% of the corpus (at most 5 s) before the
    # queries that read them; a get before the first seed falls back to a list.
    seeds = seed_trace_count(len(traffic.offsets))
    window = min(spec.duration_ns // 20, 5_000_000_000)
    seed_offsets = [i * window // seeds for i in range(seeds)]
    merged = sorted([(o, 0) for o in seed_offsets] + [(o, 1) for o in traffic.offsets])
    for offset, is_query in merged:
        yield traffic.read(offset) if is_query else traffic.ingest(offset)


def _mixed_workload(spec: SynthSpec, traffic: _Traffic) -> Iterator[Record]:
    # Each arrival is an ingest, a query or the start of a dashboard visit, in the guide's
    # proportions. A visit's later steps wait in a heap until their time comes, so the
    # output stays in time order while arrivals are generated one by one. Visit steps
    # count towards the mean rate: arrivals are drawn at a rate lowered to leave room.
    d = traffic.draws
    weights = [w for _, w in MIXED_SHARES]
    per_arrival = (weights[0] + weights[1] + weights[2] * len(DASHBOARD_STEPS_S)) / sum(weights)
    cumulative = list(np.cumsum(weights).tolist())
    pending: list[tuple[int, int, str]] = []  # (offset, sequence, kind): later dashboard steps
    sequence = 0
    for offset in traffic.offsets:
        if d.uniform() >= 1 / per_arrival:
            continue
        while pending and pending[0][0] <= offset:
            at, _, kind = heapq.heappop(pending)
            yield traffic.read(at, kind)
        share = MIXED_SHARES[d.weighted(cumulative)][0]
        if share == "ingest":
            yield traffic.ingest(offset)
        elif share == "query":
            yield traffic.read(offset)
        else:
            yield traffic.read(offset, "project")
            for step_s, kind in zip(DASHBOARD_STEPS_S[1:], ("list", "get"), strict=True):
                at = offset + int(step_s * 1e9)
                if at < spec.duration_ns:
                    heapq.heappush(pending, (at, sequence, kind))
                    sequence += 1
    while pending:
        at, _, kind = heapq.heappop(pending)
        yield traffic.read(at, kind)


def corpus_meta(spec: SynthSpec) -> CorpusMeta:
    return CorpusMeta(
        workload=spec.workload,
        source="synth",
        created=spec.epoch,
        seed=spec.seed,
        extra={
            "rate": spec.rate,
            "profile": spec.profile,
            "duration_ns": spec.duration_ns,
            "command": spec.command(),
        },
    )


def write_synth_corpus(spec: SynthSpec, path: str | Path, *, level: int = 3) -> Path:
    """Synthesise and write a corpus; byte-identical for the same spec and zstandard version."""
    with CorpusWriter(path, corpus_meta(spec), duration_ns=spec.duration_ns, level=level) as writer:
        writer.write_all(synthesize(spec))
    return Path(path)
