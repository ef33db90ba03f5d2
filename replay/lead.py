"""How much of its spool a worker builds before it sends, so that building never makes it late.

A worker builds its spool on the core that sends: first while loading (the lead), then
behind the sends, on what sending leaves of the core. With a build cost of `b` per template
(measured while loading) and a sending cost of SEND_NS per request (reckoned high), the
templates built behind by time t are

    B(t) = ∫ max(0, 1 - r(s) · SEND_NS) ds / b        r(s): the schedule's request rate

and the schedule has used D(t) of the shard's templates (`demand`). A pass over a spool
prepares SPOOLED_AHEAD of them ahead of the schedule (replay.ahead), so it never catches up
with the builder if the lead L holds L + B(t) >= D(t) + SPOOLED_AHEAD for every t up to the
end, so

    L = max over t of (D(t) + SPOOLED_AHEAD - B(t)) · (1 + MARGIN)

at most the whole shard (a model that sends as fast as it can, `demand` None, needs it all:
its sends leave no core to build on). A machine that can build ahead of its schedule
starts after the usual short lead; one that cannot builds longer before the start instead
of falling behind during the run, but never past `replay.shard.MAX_LEAD_NS`, so the first
request goes out within seconds whatever the corpus: a run that needed more says so in a note
and may fall behind (templates built late, send lag, drops: all counted).
"""

from __future__ import annotations

import math
from collections.abc import Callable

from replay.ahead import SPOOLED_AHEAD

Demand = Callable[[int], float]
"""Templates of a shard its schedule has used by t ns from the start (its first pass)."""

SEND_NS = 30_000  # a worker's CPU per request sent, reckoned high (a long ingestion trace)
MARGIN = 0.2  # the lead is this much longer than the estimate (the build cost varies)
STEPS = 256  # points of the run the condition is checked at


def templates_first(demand: Demand | None, build_ns: float, duration_ns: int, total: int) -> int:
    """How many of a shard's `total` templates to build before sending (see the module
    docstring), `build_ns` being what one costs to build, over a run of `duration_ns`."""
    if demand is None:
        return total
    step = max(duration_ns // STEPS, 1)
    worst = float(SPOOLED_AHEAD)
    behind = 0.0  # templates built behind the sends so far
    used = 0.0
    t = 0
    while t < duration_ns:
        t = min(t + step, duration_ns)
        now = min(demand(t), float(total))
        free = max(float(step) - (now - used) * SEND_NS, 0.0)
        behind += free / max(build_ns, 1.0)
        used = now
        worst = max(worst, now + SPOOLED_AHEAD - behind)
    return min(total, math.ceil(worst * (1 + MARGIN)))
