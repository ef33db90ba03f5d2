"""The corpora bundled with the package, and the specs that regenerate them byte for byte.

corpora/README.md lists each with its `capture synth` command; `make corpora` (or
`python -m corpora.regenerate`) rewrites them, and a test checks that doing so changes
nothing.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from capture.synth import SynthSpec

SECOND = 1_000_000_000

BUNDLED: dict[str, SynthSpec] = {
    # The guide's ingestion scenario at its mixed-workload rate: 100 traces/s.
    "ingestion": SynthSpec("ingestion", 100.0, 30 * SECOND, 1),
    # The guide's query test: list, get, search, metrics, GraphQL in equal shares.
    "query": SynthSpec("query", 50.0, 30 * SECOND, 2),
    # The guide's mixed workload: ingestion, queries and dashboard visits in proportion.
    "mixed": SynthSpec("mixed", 140.0, 30 * SECOND, 3),
}
DEFAULT = "ingestion"


def bundled_path(name: str = DEFAULT) -> Path:
    """The installed path of a bundled corpus (`ingestion`, `query`, `mixed`)."""
    if name not in BUNDLED:
        raise KeyError(f"no bundled corpus {name!r} (choose from {', '.join(BUNDLED)})")
    return Path(str(resources.files(__name__).joinpath(f"{name}.atc")))
