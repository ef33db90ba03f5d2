"""planner: from load sweeps to the pods needed for a target rate, with honest intervals."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("agenttrace-loadtools")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"
