"""`capture fit`: a traffic profile learnt from a recorded corpus, with no customer text in it.

A profile (`agenttrace-profile/1`, JSON) holds numbers, endpoint tags, observation types and
model names, never a body, path or string value. What it learns, and how each is modelled:

    endpoints     the share of each endpoint tag (`other` is counted, not synthesised)
    shapes        per ingestion endpoint, a uniform reservoir sample (at most RESERVOIR) of
                  whole-request shapes: body bytes with the observation counts by type
                  (ingest: [bytes, SPAN, GENERATION, EVENT]; batch: [bytes, events, traces,
                  SPAN, GENERATION, EVENT]). Sampling shapes jointly keeps size and
                  observation count correlated as they were.
    sizes         per other endpoint, a reservoir of body sizes
    models        model names by share (the top MAX_MODELS; names that look like text or
                  an e-mail address are left out), from observations' `model` and
                  `metadata.model`
    tokens        reservoirs of `usage.input` and `usage.output`
    text_lengths  a reservoir of the lengths of string values under input and output
    arrivals      the mean rate; the rate by UTC hour of day relative to the mean (each hour
                  weighted by the seconds the recording covered of it); and the coefficient
                  of variation of inter-arrival gaps after the hourly shape is divided out
                  (time rescaling: gaps measured in expected arrivals, so a busy hour's
                  short gaps do not read as bursts)

Two passes over the corpus, each streaming: the second measures gaps in rescaled time,
which needs the hourly shape from the first.
"""

from __future__ import annotations

import math
import os
import re
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import numpy as np

from capture.corpus import CorpusReader, Record
from capture.json_body import parsed_or_none, string_lengths

SCHEMA = "agenttrace-profile/1"
RESERVOIR = 8192
MAX_MODELS = 20
OBS_TYPES = ("SPAN", "GENERATION", "EVENT")
_MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/@-]{0,63}\Z")
_EMAIL = re.compile(r"[^@]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\Z")
"""An address, not a model: `claude-3-5-sonnet@20240620` (a version) is a model name,
`alice.smith@corp.com` is somebody's."""
_EVENT_TYPES = {
    "span-create": "SPAN",
    "generation-create": "GENERATION",
    "event-create": "EVENT",
}


class Reservoir:
    """A uniform sample of at most `size` items from a stream (Vitter's algorithm R)."""

    def __init__(self, size: int, rng: np.random.Generator) -> None:
        self.size = size
        self.items: list[Any] = []
        self.seen = 0
        self._rng = rng

    def add(self, item: Any) -> None:
        self.seen += 1
        if len(self.items) < self.size:
            self.items.append(item)
        else:
            j = int(self._rng.integers(0, self.seen))
            if j < self.size:
                self.items[j] = item


def _start_s(created: str) -> float:
    try:
        moment = datetime.fromisoformat(created.replace("Z", "+00:00"))
    except ValueError:
        return 0.0
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def hour_exposure(start_s: float, duration_s: float) -> np.ndarray:
    """Seconds of each UTC hour of day (0-23) covered by [start, start + duration)."""
    exposure = np.zeros(24)
    t, end = start_s, start_s + duration_s
    while t < end:
        boundary = (math.floor(t / 3600) + 1) * 3600
        step = min(boundary, end) - t
        exposure[int(t // 3600) % 24] += step
        t += step
    return exposure


class _Learner:
    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.endpoints: Counter[str] = Counter()
        self.shapes: dict[str, Reservoir] = {}
        self.sizes: dict[str, Reservoir] = {}
        self.models: Counter[str] = Counter()
        self.tokens_in = Reservoir(RESERVOIR, rng)
        self.tokens_out = Reservoir(RESERVOIR, rng)
        self.text = Reservoir(RESERVOIR, rng)

    def _reservoir(self, table: dict[str, Reservoir], key: str) -> Reservoir:
        if key not in table:
            table[key] = Reservoir(RESERVOIR, self.rng)
        return table[key]

    def add(self, record: Record) -> None:
        self.endpoints[record.endpoint] += 1
        size = len(record.body)
        doc = _json(record) if record.endpoint in ("ingest", "batch") else None
        if record.endpoint == "ingest" and isinstance(doc, dict):
            types: Counter[str] = Counter()
            for obs in _list(doc.get("observations")):
                types[str(obs.get("type", "SPAN")).upper()] += 1
                self._observation(obs)
            self._text(doc)
            self._model((doc.get("metadata") or {}) if isinstance(doc, dict) else {})
            shape = [size, *(types[t] for t in OBS_TYPES)]
            self._reservoir(self.shapes, "ingest").add(shape)
        elif record.endpoint == "batch" and isinstance(doc, dict):
            events = _list(doc.get("batch"))
            types = Counter[str]()
            traces = 0
            for event in events:
                kind = str(event.get("type", ""))
                raw = event.get("body")
                body: dict[str, Any] = raw if isinstance(raw, dict) else {}
                if kind == "trace-create":
                    traces += 1
                    self._text(body)
                elif kind in _EVENT_TYPES:
                    types[_EVENT_TYPES[kind]] += 1
                    self._observation(body)
            shape = [size, len(events), traces, *(types[t] for t in OBS_TYPES)]
            self._reservoir(self.shapes, "batch").add(shape)
        else:
            self._reservoir(self.sizes, record.endpoint).add(size)

    def _observation(self, obs: dict[str, Any]) -> None:
        self._model(obs)
        usage = obs.get("usage")
        if isinstance(usage, dict):
            for key, reservoir in (("input", self.tokens_in), ("output", self.tokens_out)):
                value = usage.get(key)
                if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
                    reservoir.add(value)
        self._text(obs)

    def _model(self, holder: Any) -> None:
        model = holder.get("model") if isinstance(holder, dict) else None
        if isinstance(model, str) and _MODEL_NAME.match(model) and not _EMAIL.match(model):
            self.models[model] += 1

    def _text(self, holder: dict[str, Any]) -> None:
        for key in ("input", "output"):
            for length in string_lengths(holder.get(key)):
                self.text.add(length)


def _json(record: Record) -> Any:
    return parsed_or_none(bytes(record.body))


def _list(value: Any) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def fit_profile(path: str | os.PathLike[str], *, seed: int = 0) -> dict[str, Any]:
    """Learn a profile from a corpus (two streaming passes)."""
    rng = np.random.Generator(np.random.PCG64(seed))
    learner = _Learner(rng)
    with CorpusReader(path) as reader:
        header = reader.header
        start_s = _start_s(header.meta.created)
        hourly = np.zeros(24)
        n = 0
        last_ns = 0
        for record in reader:
            learner.add(record)
            hourly[int((start_s + record.offset_ns / 1e9) // 3600) % 24] += 1
            n += 1
            last_ns = record.offset_ns
        duration_s = max(header.duration_ns, last_ns) / 1e9
        exposure = hour_exposure(start_s, duration_s)
        mean_rate = n / duration_s if duration_s > 0 else 0.0
        shape = np.ones(24)
        covered = exposure > 0
        if mean_rate > 0:
            shape[covered] = hourly[covered] / exposure[covered] / mean_rate
        # Pass 2: gaps in expected arrivals (the hourly shape divided out).
        gaps = _rescaled_gap_moments(reader, start_s, shape * mean_rate)
    mean_gap, cv = gaps
    models = learner.models.most_common(MAX_MODELS)
    model_total = sum(c for _m, c in models) or 1
    return {
        "schema": SCHEMA,
        "records": n,
        "duration_s": duration_s,
        "endpoints": {k: v / n for k, v in sorted(learner.endpoints.items())} if n else {},
        "shapes": {k: r.items for k, r in sorted(learner.shapes.items())},
        "sizes": {k: r.items for k, r in sorted(learner.sizes.items())},
        "models": {m: c / model_total for m, c in models},
        "tokens": {"input": learner.tokens_in.items, "output": learner.tokens_out.items},
        "text_lengths": learner.text.items,
        "arrivals": {
            "mean_rate": mean_rate,
            "start_hour_utc": int(start_s // 3600) % 24,
            "hourly_shape": [round(float(x), 6) for x in shape],
            "rescaled_gap_mean": mean_gap,
            "cv": cv,
        },
    }


def _rescaled_gap_moments(
    reader: CorpusReader, start_s: float, rate_by_hour: np.ndarray
) -> tuple[float, float]:
    total = total_sq = 0.0
    count = 0
    last_s: float | None = None
    for record in reader:
        t = start_s + record.offset_ns / 1e9
        if last_s is not None:
            gap = (t - last_s) * float(rate_by_hour[int(last_s // 3600) % 24])
            total += gap
            total_sq += gap * gap
            count += 1
        last_s = t
    if count == 0 or total <= 0:
        return 0.0, 1.0
    mean = total / count
    var = max(0.0, total_sq / count - mean * mean)
    return mean, math.sqrt(var) / mean


def check_profile(profile: Any, where: str) -> dict[str, Any]:
    """The profile, or ValueError naming what is wrong in it."""
    if not isinstance(profile, dict) or profile.get("schema") != SCHEMA:
        raise ValueError(f"{where}: not a traffic profile (expected schema {SCHEMA!r})")
    for key in ("endpoints", "shapes", "sizes", "models", "tokens", "arrivals"):
        if not isinstance(profile.get(key), dict):
            raise ValueError(f"{where}: key {key!r} missing or not an object")
    arrivals = profile["arrivals"]
    shape = arrivals.get("hourly_shape")
    if not (isinstance(shape, list) and len(shape) == 24):
        raise ValueError(f"{where}: arrivals.hourly_shape must list 24 numbers")
    cv = arrivals.get("cv")
    if not isinstance(cv, int | float) or not math.isfinite(cv) or cv < 0:
        raise ValueError(f"{where}: arrivals.cv must be a non-negative number")
    return profile
