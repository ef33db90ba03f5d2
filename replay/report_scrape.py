"""The target's own metrics scraped during a run (results key ``scrape``), read for a report.

Expected shape, one entry per scraped series::

    "scrape": [{"url": "http://api:9100/metrics", "metric": "process_resident_memory_bytes",
                "labels": {"pod": "api-0"}, "samples": [[t_s, value], ...]}, ...]

``t_s`` is seconds since the run's common start. Counters ending in ``_total`` are shown as
their rate per second; ``process_resident_memory_bytes`` is fitted for a slope in MB per
hour with the drift module's interval (a leak shows as a slope whose interval excludes 0).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from replay.drift import trend
from replay.report_series import ReportError

FloatArray = npt.NDArray[np.float64]
MEMORY_METRIC = "process_resident_memory_bytes"


@dataclass(frozen=True)
class ScrapeSeries:
    url: str
    metric: str
    labels: dict[str, str]
    t: FloatArray
    value: FloatArray

    @property
    def label(self) -> str:
        tags = ",".join(f"{k}={v}" for k, v in sorted(self.labels.items()))
        return f"{self.url}{' {' + tags + '}' if tags else ''}"

    def shown(self) -> tuple[FloatArray, FloatArray, str]:
        """(t, values, unit) as plotted: counters as rates, bytes as MB."""
        if self.metric.endswith("_total") and self.t.size > 1:
            dt = np.diff(self.t)
            with np.errstate(divide="ignore", invalid="ignore"):
                rate = np.where(dt > 0, np.diff(self.value) / dt, np.nan)
            return self.t[1:], rate, "per second"
        if self.metric.endswith("_bytes"):
            return self.t, self.value / 1e6, "MB"
        return self.t, self.value, ""


def read_scrape(documents: Sequence[Mapping[str, Any]], names: Sequence[str]) -> list[ScrapeSeries]:
    out = []
    for doc, name in zip(documents, names, strict=True):
        entries = doc.get("scrape")
        if entries is None:
            continue
        if not isinstance(entries, list):
            raise ReportError(f"{name}: scrape: expected a list of series")
        for i, e in enumerate(entries):
            at = f"{name}: scrape[{i}]"
            if not isinstance(e, dict):
                raise ReportError(f"{at}: expected an object")
            url, metric, labels = e.get("url"), e.get("metric"), e.get("labels") or {}
            if not isinstance(url, str) or not isinstance(metric, str):
                raise ReportError(f"{at}: url and metric must be strings")
            if not isinstance(labels, dict):
                raise ReportError(f"{at}.labels: expected an object")
            samples = e.get("samples")
            if not isinstance(samples, list):
                raise ReportError(f"{at}.samples: expected a list of [t_s, value]")
            t, v = [], []
            for j, s in enumerate(samples):
                if not (
                    isinstance(s, list)
                    and len(s) == 2
                    and all(isinstance(x, int | float) and not isinstance(x, bool) for x in s)
                    and all(np.isfinite(x) for x in s)
                ):
                    raise ReportError(f"{at}.samples[{j}]: expected [t_s, value], two numbers")
                t.append(float(s[0]))
                v.append(float(s[1]))
            order = np.argsort(np.asarray(t), kind="stable")
            out.append(
                ScrapeSeries(
                    url,
                    metric,
                    {str(k): str(x) for k, x in labels.items()},
                    np.asarray(t)[order],
                    np.asarray(v)[order],
                )
            )
    return out


def memory_slopes(series: Sequence[ScrapeSeries]) -> list[dict[str, Any]]:
    """MB per hour of every resident-memory series, with its 95% interval."""
    out = []
    for s in series:
        if s.metric != MEMORY_METRIC:
            continue
        slope = trend(s.t / 3600.0, s.value / 1e6)
        out.append(
            {
                "series": s.label,
                "mb_per_hour": None if slope is None else slope.to_json(3),
                "leak_suspected": bool(slope is not None and slope.ci_low > 0),
                "samples": int(s.t.size),
            }
        )
    return out
