"""The embedded AgentTrace sandbox: a real target on every machine.

An AgentTrace-compatible API (ingestion, queries, GraphQL) over a real pipeline (API ->
queue -> batching worker -> SQLite), with emulated capacity (the USL) and fault injection.
Start it with ``replay sandbox`` or from code with :func:`sandbox.process.start_sandbox`.
See docs/sandbox.md.
"""

from __future__ import annotations
