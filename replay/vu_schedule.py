"""How many VUs a ramping-vus scenario runs at each instant: k6's stages, as pure arithmetic.

A stage ramps linearly from the previous target (``start_vus`` for the first) to its own
``target`` over its ``duration``. VUs change one at a time, at the instant the line crosses
a whole number (k6's ``getRawExecutionSteps``): ramping up from ``a`` to ``b`` over ``d``
starting at ``t0``, VU ``v`` (a < v <= b) starts at

    t0 + d * (v - a) / (b - a)

and ramping down, the count falls to ``v`` (b <= v < a) at ``t0 + d * (a - v) / (a - b)``.
So the count at time ``t`` within the stage is ``floor(line(t))`` going up and
``ceil(line(t))`` going down: a VU is added only once the line reaches it, and removed only
once the line has left it. A stage of zero duration jumps to its target at its start.

A worker's part of the count (execution segments, several workers) is ``share(total, ...)``
of the count at the same instant, so the parts always add up to the whole.

Nothing here reads a clock: ``steps`` lists every change, ``vus_at`` evaluates one instant.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

Stage = tuple[int, float]  # (duration ns, target VUs)
Step = tuple[int, int]  # (ns from the scenario's start, VUs from then on)


def steps(start_vus: int, stages: Sequence[Stage]) -> list[Step]:
    """Every change of the VU count, in time order, starting with (0, start_vus).

    Consecutive entries always differ in count (a change to the same count is left out)
    and times never decrease; several changes at one instant keep only the last."""
    out: list[Step] = [(0, int(start_vus))]
    t0, current = 0, int(start_vus)
    for duration, target_f in stages:
        target = int(target_f)
        d = int(duration)
        if target > current:
            for v in range(current + 1, target + 1):
                _put(out, t0 + (d * (v - current)) // (target - current), v)
        elif target < current:
            for v in range(current - 1, target - 1, -1):
                _put(out, t0 + (d * (current - v)) // (current - target), v)
        t0 += d
        current = target
    return out


def _put(out: list[Step], t: int, vus: int) -> None:
    if out and out[-1][0] == t:
        out[-1] = (t, vus)
    else:
        out.append((t, vus))
    if len(out) > 1 and out[-1][1] == out[-2][1]:
        out.pop()


def vus_at(start_vus: int, stages: Sequence[Stage], t_ns: int) -> int:
    """The VU count at ``t_ns`` from the start (the last stage's target after the end)."""
    count = int(start_vus)
    for when, vus in steps(start_vus, stages):
        if when > t_ns:
            break
        count = vus
    return count


def most(start_vus: int, stages: Sequence[Stage]) -> int:
    """The largest VU count at any instant."""
    return max(vus for _t, vus in steps(start_vus, stages))


def part(all_steps: Sequence[Step], share_of: Callable[[int], int]) -> list[Step]:
    """A worker's steps: ``share_of(total)`` at every change, repeats left out."""
    out: list[Step] = []
    for t, total in all_steps:
        mine = share_of(total)
        if not out or out[-1][1] != mine:
            out.append((t, mine))
    return out
