"""Caveats: the warnings a capacity report carries, each with a stable code and a sentence.

Codes are part of the report schema (docs/planner.md lists them); tests and tools match on
the code, people read the message.
"""

from __future__ import annotations

from dataclasses import dataclass

FEW_POINTS = "few_points"  # fewer than 6 distinct pod counts measured
UNDETERMINED = "undetermined"  # fewer than 3 distinct pod counts: no model, a lower bound only
NO_INTERVAL = "no_interval"  # exactly 3 pod counts: no residuals left to bootstrap
EXTRAPOLATION = "extrapolation"  # the projection is beyond 2x the largest measured pod count
ON_BOUND = "on_bound"  # sigma or kappa held at zero by its bound
UNREACHABLE = "unreachable"  # the target lies beyond the modelled peak
HEADROOM_UNREACHABLE = "headroom_unreachable"  # reachable, but not with the headroom applied
UNSTABLE = "unstable"  # the target is unreachable in some bootstrap resamples
SUPERLINEAR = "superlinear"  # a measured efficiency above 1
LINEAR_BETTER = "linear_better"  # leave-one-out: linear scaling predicts no worse than the USL
INCOMPLETE_POINT = "incomplete_point"  # an interrupted pod count, left out
NO_SLO_PASS = "no_slo_pass"  # a pod count where no step met the SLO
NOT_BRACKETED = "not_bracketed"  # x_slo is the highest rate offered: capacity is at least that
DROPPED = "dropped"  # the load generator dropped requests: it may have been the bottleneck


@dataclass(frozen=True)
class Caveat:
    code: str
    message: str
