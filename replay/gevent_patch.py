"""gevent's `monkey.patch_all`, with the installed packages' entry points read once.

For each module it patches, gevent announces an event to plugins, looking its entry-point
group up with `importlib.metadata.entry_points(group=...)`, and every such lookup reads the
metadata of every installed distribution: most of a worker's patching time, paid by every
worker at every start. Here the entry points are read once and each lookup selects from
them, which is what `entry_points(**params)` itself does after its scan; the function is
restored when patching ends. Plugins are found and called exactly as before.
"""

from __future__ import annotations

from importlib import metadata
from typing import Any, cast


def patch_all() -> None:
    """`gevent.monkey.patch_all()` with one scan of the installed entry points."""
    from gevent import monkey

    lookup = metadata.entry_points
    everything = lookup()

    def selected(**params: Any) -> metadata.EntryPoints:
        return cast(metadata.EntryPoints, everything.select(**params))

    metadata.entry_points = selected  # type: ignore[assignment]
    try:
        monkey.patch_all()
    finally:
        metadata.entry_points = lookup
