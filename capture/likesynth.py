"""`capture synth --like PROFILE`: unlimited traffic drawn from a fitted profile.

Arrivals: a renewal process with gamma gaps (shape 1/CV^2, so the CV of the profile) in
rescaled time, mapped to real time through the hourly rate shape (the profile's, starting at
its start hour), scaled so the mean rate over the corpus is --rate. Each arrival's endpoint
is drawn from the profile's shares (AgentTrace endpoints only). An ingestion request draws
one recorded shape (body bytes and observation counts by type): the trace or batch is built
with that many observations, models from the model shares, token counts from the token
reservoirs, and its free text (the guide's vocabulary) split between fields in proportion to
lengths drawn from the text-length reservoir and sized so the body has exactly the recorded
number of bytes (a body whose skeleton is already larger keeps empty texts). Reads are
synth's (list, get, search, metrics, GraphQL, project); gets name traces synthesised before.
Ids and timestamps get their spans from `capture.spans`, as imported records do.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from capture.corpus import CorpusMeta, CorpusWriter, Record
from capture.intake import iso_ms
from capture.profile import OBS_TYPES, hour_exposure
from capture.spans import find_spans
from capture.synth import JSON_HEADERS, QueryFactory, _Draws, _Ingested, parse_epoch
from capture.synth_words import WORDS as _WORDS

READS = ("list", "get", "search", "metrics", "graphql", "project")
BLOCK = 4096


def arrival_offsets(
    rng: np.random.Generator,
    profile: dict[str, Any],
    rate: float,
    duration_s: float,
    start_s: float,
) -> np.ndarray:
    """Offsets in seconds: gamma renewal in rescaled time, mapped through the hourly shape."""
    arrivals = profile["arrivals"]
    cv = min(10.0, max(0.05, float(arrivals.get("cv", 1.0))))
    shape = np.asarray(arrivals["hourly_shape"], dtype=np.float64).clip(min=1e-3)
    # Piecewise-constant intensity over hour segments of [0, duration).
    edges = [0.0]
    t = start_s
    while edges[-1] < duration_s:
        boundary = (math.floor(t / 3600) + 1) * 3600
        edges.append(min(duration_s, edges[-1] + boundary - t))
        t = start_s + edges[-1]
    seg_rates = np.array([shape[int((start_s + a) // 3600) % 24] for a in edges[:-1]])
    exposure = hour_exposure(start_s, duration_s)
    mean_shape = float((exposure * shape).sum() / exposure.sum()) if exposure.sum() else 1.0
    seg_rates = seg_rates * rate / mean_shape
    widths = np.diff(edges)
    cumulative = np.concatenate([[0.0], np.cumsum(seg_rates * widths)])
    total = cumulative[-1]
    k = 1.0 / (cv * cv)
    out: list[np.ndarray] = []
    u = float(rng.random()) * rng.gamma(k, 1.0 / k)  # a stationary-ish start
    while u < total:
        gaps = rng.gamma(k, 1.0 / k, size=BLOCK)
        points = u + np.concatenate([[0.0], np.cumsum(gaps[:-1])])
        u = float(points[-1] + gaps[-1])
        out.append(points[points < total])
    ops = np.concatenate(out) if out else np.zeros(0)
    seg = np.searchsorted(cumulative, ops, side="right") - 1
    seg = seg.clip(0, len(widths) - 1)
    return np.asarray(edges)[seg] + (ops - cumulative[seg]) / seg_rates[seg]


class _Builder:
    def __init__(self, profile: dict[str, Any], rng: np.random.Generator, epoch_ms: int) -> None:
        self.p = profile
        self.rng = rng
        self.d = _Draws(rng)
        self.epoch_ms = epoch_ms
        models = profile["models"] or {"gpt-4o": 1.0}
        self.model_names = list(models)
        self.model_cum = np.cumsum(list(models.values())).tolist()
        tokens = profile["tokens"]
        self.tokens_in = tokens.get("input") or [350]
        self.tokens_out = tokens.get("output") or [90]
        self.text_lengths = profile.get("text_lengths") or [80]
        self.vocab = " ".join(_WORDS[i] for i in rng.integers(0, len(_WORDS), 50_000))
        self.queries = QueryFactory(self.d)
        self.ingested = _Ingested(self.d)

    def pick(self, values: list[Any]) -> Any:
        return values[self.d.index(len(values))]

    def model(self) -> str:
        return self.model_names[self.d.weighted(self.model_cum)]

    def text(self, n: int) -> str:
        if n <= 0:
            return ""
        start = self.d.index(len(self.vocab) - n - 1) if n < len(self.vocab) - 1 else 0
        piece = self.vocab[start : start + n]
        return piece + "x" * (n - len(piece))

    def iso(self, offset_ms: int) -> str:
        return iso_ms((self.epoch_ms + offset_ms) * 1_000_000)

    def observation(self, kind: str, trace_id: str, at_ms: int, camel: bool) -> dict[str, Any]:
        obs: dict[str, Any] = {
            "id": self.d.uuid4(),
            "traceId" if camel else "trace_id": trace_id,
            "type": kind,
            "startTime" if camel else "start_time": self.iso(at_ms),
            "endTime" if camel else "end_time": self.iso(at_ms + 1 + self.d.index(2000)),
            "input": "",
            "output": "",
        }
        if kind == "GENERATION":
            obs["model"] = self.model()
            obs["usage"] = {
                "input": self.pick(self.tokens_in),
                "output": self.pick(self.tokens_out),
            }
        return obs

    def fill(self, doc: Any, holders: list[dict[str, Any]], target: int) -> bytes:
        """Serialise `doc`, its holders' input/output texts sized to reach `target` bytes."""
        body = _dumps(doc)
        room = target - len(body)
        if room > 0 and holders:
            fields = [(h, key) for h in holders for key in ("input", "output")]
            weights = np.array([self.pick(self.text_lengths) + 1 for _ in fields], dtype=float)
            share = np.floor(room * weights / weights.sum()).astype(int)
            share[0] += room - int(share.sum())
            for (holder, key), n in zip(fields, share.tolist(), strict=True):
                holder[key] = self.text(n)
            body = _dumps(doc)
        return body

    def ingest(self, offset_ns: int) -> Record:
        offset_ms = offset_ns // 1_000_000
        size, *counts = self.pick(self.p["shapes"]["ingest"])
        trace_id = self.d.hex_id()
        kinds = [t for t, n in zip(OBS_TYPES, counts, strict=True) for _ in range(n)]
        begin = offset_ms - 2000
        trace: dict[str, Any] = {
            "id": trace_id,
            "timestamp": self.iso(begin),
            "input": "",
            "output": "",
            "metadata": {"model": self.model()},
        }
        observations = [
            self.observation(k, trace_id, begin + 10 * i, False) for i, k in enumerate(kinds)
        ]
        trace["observations"] = observations
        body = self.fill(trace, [trace, *observations], int(size))
        self.ingested.add(trace_id)
        return self._record(offset_ns, "ingest", "/api/public/traces", body)

    def batch(self, offset_ns: int) -> Record:
        offset_ms = offset_ns // 1_000_000
        size, _events, traces, *counts = self.pick(self.p["shapes"]["batch"])
        events: list[dict[str, Any]] = []
        holders: list[dict[str, Any]] = []
        trace_ids = [self.d.hex_id() for _ in range(max(1, int(traces)))]
        for trace_id in trace_ids[: int(traces)]:
            created: dict[str, Any] = {
                "id": trace_id,
                "timestamp": self.iso(offset_ms - 1000),
                "input": "",
                "output": "",
            }
            holders.append(created)
            events.append(self._event("trace-create", created, offset_ms))
        names = {"SPAN": "span-create", "GENERATION": "generation-create"}
        names["EVENT"] = "event-create"
        for kind, n in zip(OBS_TYPES, counts, strict=True):
            for _ in range(int(n)):
                obs = self.observation(kind, self.pick(trace_ids), offset_ms - 900, True)
                del obs["type"]
                holders.append(obs)
                events.append(self._event(names[kind], obs, offset_ms))
        encoded = self.fill({"batch": events}, holders, int(size))
        for trace_id in trace_ids[: int(traces)]:
            self.ingested.add(trace_id)
        return self._record(offset_ns, "batch", "/api/public/ingestion", encoded)

    def _event(self, kind: str, body: dict[str, Any], offset_ms: int) -> dict[str, Any]:
        return {"id": self.d.uuid4(), "type": kind, "timestamp": self.iso(offset_ms), "body": body}

    def _record(self, offset_ns: int, endpoint: str, path: str, body: bytes) -> Record:
        spans = find_spans(body, path)
        return Record(
            offset_ns,
            endpoint,
            "POST",
            path,
            JSON_HEADERS,
            body,
            spans.body_ids,
            spans.path_ids,
            spans.trace,
        )

    def read(self, kind: str, offset_ns: int) -> Record:
        trace = self.ingested.pick() if kind == "get" else None
        return self.queries.build(kind, offset_ns, trace)


def _dumps(doc: Any) -> bytes:
    return json.dumps(doc, separators=(",", ":")).encode("ascii")


def synthesize_like(
    profile: dict[str, Any], rate: float, duration_ns: int, seed: int, epoch: str
) -> Iterator[Record]:
    """The records, in time order (streamed)."""
    rng = np.random.Generator(np.random.PCG64(seed))
    shares = {
        k: v
        for k, v in profile["endpoints"].items()
        if (k in READS) or (k in ("ingest", "batch") and profile["shapes"].get(k))
    }
    if not shares:
        raise ValueError("the profile has no AgentTrace endpoint to synthesise")
    tags = list(shares)
    cumulative = np.cumsum(list(shares.values())).tolist()
    hour = int(profile["arrivals"].get("start_hour_utc", 0))
    when = parse_epoch(epoch)
    start_s = hour % 24 * 3600 + when.minute * 60 + when.second  # the profile's hour of day
    offsets = arrival_offsets(rng, profile, rate, duration_ns / 1e9, start_s)
    builder = _Builder(profile, rng, int(when.timestamp() * 1000))
    for offset_s in offsets.tolist():
        offset_ns = int(offset_s * 1e9)  # (bodies' timestamps are ISO ms: they round it)
        tag = tags[builder.d.weighted(cumulative)]
        if tag == "ingest":
            yield builder.ingest(offset_ns)
        elif tag == "batch":
            yield builder.batch(offset_ns)
        else:
            yield builder.read(tag, offset_ns)


def write_like_corpus(
    profile: dict[str, Any],
    output: str | Path,
    *,
    rate: float,
    duration_ns: int,
    seed: int,
    epoch: str,
    profile_name: str,
) -> Path:
    command = (
        f"capture synth --like {profile_name} --rate {rate:g} "
        f"--duration {duration_ns / 1e9:g}s --seed {seed} --epoch {epoch}"
    )
    meta = CorpusMeta(
        "like", "synth", epoch, seed, {"rate": rate, "duration_ns": duration_ns, "command": command}
    )
    with CorpusWriter(output, meta, duration_ns=duration_ns) as writer:
        writer.write_all(synthesize_like(profile, rate, duration_ns, seed, epoch))
    return Path(output)
