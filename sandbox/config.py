"""One sandbox's settings, as the CLI and the library give them and the processes read them.

The supervisor completes a :class:`SandboxConfig` (generated key and admin token, runtime
directory, database path, the port actually bound) and writes it as JSON into the runtime
directory; every child process loads it from there. The runtime directory holds everything
the processes share: the queue socket, the shared-memory files of the capacity schedule and
rate limiter, the Prometheus multiprocess files and, by default, the database.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from sandbox.capacity import Emulation
from sandbox.faults import FaultSpec

DEFAULT_PROJECT = "proj-sandbox"
DEFAULT_MAX_BODY = 4_500_000
MAX_API_PODS = 64


@dataclass(frozen=True)
class SandboxConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    pods: int = 1
    api_keys: dict[str, str] = field(default_factory=dict)
    """API key -> project id."""
    admin_token: str = ""
    db: str | None = None
    """The database file; None: a fresh temporary file, removed at exit."""
    ingest_delay: float = 0.0
    max_body: int = DEFAULT_MAX_BODY
    rate_limit: float | None = None
    rate_burst: int | None = None
    emulation: Emulation = field(default_factory=Emulation)
    emulate: bool = False
    faults: FaultSpec = field(default_factory=FaultSpec)
    seed: int | None = None
    idle_timeout: float = 75.0
    request_timeout: float = 30.0
    """Seconds a request's head and body may take from its first byte (then 408)."""
    max_connections: int = 1024
    """Open connections per API process; beyond it a connection is answered 503."""
    max_db_size: int | None = None
    """Bytes the database may grow to (SQLite max_page_count); beyond it ingestion is 503."""
    runtime_dir: str = ""

    def __post_init__(self) -> None:
        if not 1 <= self.pods <= MAX_API_PODS:
            raise ValueError(f"--pods must be from 1 to {MAX_API_PODS}, got {self.pods}")
        if not 0 <= self.port <= 65535:
            raise ValueError(f"--port must be from 0 to 65535, got {self.port}")
        if self.ingest_delay < 0:
            raise ValueError("--ingest-delay must not be negative")
        if self.max_body < 1:
            raise ValueError("--max-body must be at least 1 byte")
        if self.rate_burst is not None and self.rate_burst < 1:
            raise ValueError("--rate-burst must be at least 1")
        if not self.request_timeout > 0:
            raise ValueError("--request-timeout must be positive")
        if self.max_connections < 1:
            raise ValueError("--max-connections must be at least 1")
        if self.max_db_size is not None and self.max_db_size < 65536:
            raise ValueError("--max-db-size must be at least 64KiB")

    # ---------------------------------------------------------------- derived

    @property
    def burst(self) -> int:
        """Requests a key may send at once: --rate-burst, default one second's worth."""
        if self.rate_burst is not None:
            return self.rate_burst
        return max(1, round(self.rate_limit or 1))

    @property
    def db_path(self) -> str:
        return self.db or str(Path(self.runtime_dir) / "traces.db")

    @property
    def queue_socket(self) -> str:
        return str(Path(self.runtime_dir) / "queue.sock")

    @property
    def capacity_path(self) -> str:
        return str(Path(self.runtime_dir) / "capacity.shm")

    @property
    def ratelimit_path(self) -> str:
        return str(Path(self.runtime_dir) / "ratelimit.shm")

    @property
    def metrics_dir(self) -> str:
        return str(Path(self.runtime_dir) / "prometheus")

    @property
    def config_path(self) -> str:
        return str(Path(self.runtime_dir) / "config.json")

    @property
    def api_key(self) -> str:
        """The first API key (the generated one when none was given)."""
        return next(iter(self.api_keys))

    def completed(self) -> SandboxConfig:
        """This config with a generated key and admin token where none was given."""
        keys = self.api_keys or {f"sk-sandbox-{secrets.token_hex(12)}": DEFAULT_PROJECT}
        token = self.admin_token or f"admin-{secrets.token_hex(12)}"
        return replace(self, api_keys=keys, admin_token=token)

    # ---------------------------------------------------------------- JSON

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_json(cls, text: str) -> SandboxConfig:
        raw: dict[str, Any] = json.loads(text)
        raw["emulation"] = Emulation(**raw["emulation"])
        raw["faults"] = FaultSpec(**raw["faults"])
        return cls(**raw)

    @classmethod
    def load(cls, path: str | Path) -> SandboxConfig:
        return cls.from_json(Path(path).read_text())


def parse_api_key(text: str) -> tuple[str, str]:
    """``KEY:PROJECT`` -> (key, project); raises ValueError for the user."""
    key, sep, project = text.rpartition(":")
    key, project = key.strip(), project.strip()
    if not sep or not key or not project:
        raise ValueError(f"{text!r}: expected KEY:PROJECT, e.g. sk-test-1:proj-a")
    if any(c.isspace() for c in key):
        raise ValueError(f"{text!r}: the key must not contain spaces")
    return key, project
