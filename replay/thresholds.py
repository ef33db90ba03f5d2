"""Pass/fail criteria for a run, in one import: the grammar and the judging together.

The grammar (``Threshold``, ``parse_threshold``) lives in ``replay.threshold_grammar``; the
judging (``evaluate``, ``Verdict``, ``exit_status``, ...) in ``replay.verdicts``.
"""

from __future__ import annotations

from replay.threshold_grammar import (
    AGGREGATIONS,
    METRIC_NAMES,
    OPERATORS,
    TREND,
    Threshold,
    parse_threshold,
)
from replay.verdicts import (
    EXIT_THRESHOLD_FAILED,
    Verdict,
    all_ok,
    decidable_early,
    evaluate,
    evaluate_interval,
    exit_status,
    first_failure,
    measure,
    trend_value,
)

__all__ = [
    "AGGREGATIONS",
    "EXIT_THRESHOLD_FAILED",
    "METRIC_NAMES",
    "OPERATORS",
    "TREND",
    "Threshold",
    "Verdict",
    "all_ok",
    "decidable_early",
    "evaluate",
    "evaluate_interval",
    "exit_status",
    "first_failure",
    "measure",
    "parse_threshold",
    "trend_value",
]
