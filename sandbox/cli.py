"""`replay sandbox` / `python -m sandbox`: flags in, a foreground sandbox out.

Only parsing lives here; :class:`sandbox.server.Supervisor` does the work. Values with
units go through capture.units (durations, rates) so they read the same in every tool.
Bad input prints one line on stderr and exits 2, never a traceback.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

import click

from capture.cli_errors import OneLineCommand
from capture.cli_units import DELAY, RATE, SIZE, ParsedType
from sandbox.capacity import MAX_PODS, Emulation
from sandbox.config import DEFAULT_MAX_BODY, MAX_API_PODS, SandboxConfig, parse_api_key
from sandbox.faults import parse_faults

API_KEY = ParsedType("key:project", parse_api_key)
FAULTS = ParsedType("spec", parse_faults)


_MODEL = Emulation()  # the one place the emulation's defaults are set

EPILOG = """\b
Fault spec (--faults), rates as fractions or percentages, summing to at most 1:
  error=0.01          answer 500 (error=0.01:503 for another 5xx)
  reset=0.005         reset the TCP connection, no answer
  slow=0.02:200ms     delay the answer, lognormal with that median
                      (slow=0.02:200ms:1.0 sets the shape sigma, default 0.5)
  stall=0.001         hold the connection open, never answer
e.g. --faults 'error=0.01,reset=0.005,slow=0.02:200ms,stall=0.001' --seed 7

\b
Emulated capacity: with --emulate-pods N the API's throughput follows the
Universal Scalability Law X(N) = L*N / (1 + S*(N-1) + K*N*(N-1)),
L = --pod-rate, S = --sigma, K = --kappa; beyond it requests queue, then 503.
Change N at run time: curl -X POST -H 'Authorization: Bearer ADMIN' \\
  -d '{"pods": 4}' http://127.0.0.1:8080/admin/pods
See docs/sandbox.md.
"""


@click.command(
    "sandbox",
    cls=OneLineCommand,
    epilog=EPILOG,
    context_settings={"help_option_names": ["-h", "--help"], "show_default": True},
)
@click.option("--host", default="127.0.0.1", help="Address to listen on.")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8080,
    help="Port to listen on (0: any free port, printed at start-up).",
)
@click.option(
    "--pods",
    type=click.IntRange(1, MAX_API_PODS),
    default=1,
    help="API processes sharing the port (SO_REUSEPORT), plus one ingestion worker.",
)
@click.option(
    "--api-key",
    "api_keys",
    type=API_KEY,
    multiple=True,
    metavar="KEY:PROJECT",
    help="An API key and the project it reads and writes; repeatable (visible in ps: "
    "prefer --api-key-file or API_KEYS). "
    "Default: a generated key for project proj-sandbox, printed at start-up.",
)
@click.option(
    "--api-key-file",
    type=click.Path(dir_okay=False),
    default=None,
    help="A file of KEY:PROJECT lines. The environment variable API_KEYS "
    "(KEY:PROJECT,...) is read when no key is given otherwise.",
)
@click.option(
    "--admin-token",
    default=None,
    help="Token for /admin/* (default: ADMIN_TOKEN, else generated; visible in ps).",
)
@click.option(
    "--admin-token-file",
    type=click.Path(dir_okay=False),
    default=None,
    help="A file whose first line is the admin token.",
)
@click.option(
    "--db",
    type=click.Path(dir_okay=False),
    default=None,
    help="SQLite database file, kept across restarts (default: a temporary file).",
)
@click.option(
    "--ingest-delay",
    type=DELAY,
    default="0",
    help="Hold each trace this long in the queue before writing it (e.g. 500ms).",
)
@click.option(
    "--max-body",
    type=SIZE,
    default=str(DEFAULT_MAX_BODY),
    help="Largest request body accepted; larger gets 413 (e.g. 4.5MB, 1MiB).",
)
@click.option("--rate-limit", type=RATE, default=None, help="Per-key limit, e.g. 100/s (429).")
@click.option(
    "--rate-burst",
    type=click.IntRange(1),
    default=None,
    help="Requests a key may burst (default: one second's worth of --rate-limit).",
)
@click.option(
    "--emulate-pods",
    type=click.IntRange(1, MAX_PODS),
    default=None,
    help="Emulate N pods: throughput follows the USL with the next flags.",
)
@click.option(
    "--pod-rate", type=RATE, default=_MODEL.pod_rate, help="L: one emulated pod's throughput (/s)."
)
@click.option("--sigma", type=click.FloatRange(0, 1), default=_MODEL.sigma, help="USL contention.")
@click.option("--kappa", type=click.FloatRange(0, 1), default=_MODEL.kappa, help="USL coherency.")
@click.option(
    "--service-cv",
    type=click.FloatRange(0, 4),
    default=_MODEL.service_cv,
    help="Variation of emulated service times (0: constant).",
)
@click.option(
    "--queue-depth",
    type=click.IntRange(0),
    default=_MODEL.queue_depth,
    help="Requests each emulated pod may queue before 503.",
)
@click.option(
    "--request-timeout",
    type=DELAY,
    default="30s",
    help="Time a request's head and body may take from its first byte (then 408).",
)
@click.option(
    "--max-connections",
    type=click.IntRange(1),
    default=1024,
    help="Open connections per API process; one more is answered 503 and closed.",
)
@click.option(
    "--max-db-size",
    type=SIZE,
    default=None,
    help="Largest the database may grow (e.g. 1GB); when full, ingestion answers 503.",
)
@click.option("--faults", type=FAULTS, default=None, help="Fault injection spec (see below).")
@click.option("--seed", type=int, default=None, help="Seed for reproducible faults.")
@click.option("--ready-fd", type=int, default=None, hidden=True)
@click.option("--secrets-fd", type=int, default=None, hidden=True)
def command(
    host: str,
    port: int,
    pods: int,
    api_keys: tuple[tuple[str, str], ...],
    api_key_file: str | None,
    admin_token: str | None,
    admin_token_file: str | None,
    db: str | None,
    ingest_delay: float,
    max_body: int,
    rate_limit: float | None,
    rate_burst: int | None,
    emulate_pods: int | None,
    pod_rate: float,
    sigma: float,
    kappa: float,
    service_cv: float,
    queue_depth: int,
    request_timeout: float,
    max_connections: int,
    max_db_size: int | None,
    faults: Any,
    seed: int | None,
    ready_fd: int | None,
    secrets_fd: int | None,
) -> None:
    """Run an AgentTrace-compatible server in the foreground, for replays and tests.

    Ctrl-C or SIGTERM stops it after writing every acknowledged trace.
    """
    from sandbox.faults import FaultSpec
    from sandbox.secrets_input import SecretsError
    from sandbox.server import StartError, Supervisor

    if admin_token and admin_token_file:
        raise click.UsageError("give --admin-token or --admin-token-file, not both")
    keys: dict[str, str] = {}
    for key, project in api_keys:
        if keys.get(key, project) != project:
            raise click.UsageError(f"--api-key {key} is given for two projects")
        keys[key] = project
    try:
        keys, admin_token = _gather_secrets(
            keys, api_key_file, admin_token, admin_token_file, secrets_fd
        )
    except SecretsError as exc:
        raise click.UsageError(str(exc)) from None
    try:
        emulation = Emulation(
            pods=emulate_pods or 1,
            pod_rate=pod_rate,
            sigma=sigma,
            kappa=kappa,
            service_cv=service_cv,
            queue_depth=queue_depth,
        )
        config = SandboxConfig(
            host=host,
            port=port,
            pods=pods,
            api_keys=keys,
            admin_token=admin_token or "",
            db=db,
            ingest_delay=ingest_delay,
            max_body=max_body,
            rate_limit=rate_limit,
            rate_burst=rate_burst,
            emulation=emulation,
            emulate=emulate_pods is not None,
            faults=faults or FaultSpec(),
            seed=seed,
            request_timeout=request_timeout,
            max_connections=max_connections,
            max_db_size=max_db_size,
        )
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s sandbox %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    try:
        status = Supervisor(config, ready_fd=ready_fd, given=(set(keys), bool(admin_token))).run()
    except StartError as exc:
        click.echo(f"{click.get_current_context().command_path}: error: {exc}", err=True)
        sys.exit(exc.status)
    sys.exit(status)


def _gather_secrets(
    keys: dict[str, str],
    key_file: str | None,
    token: str | None,
    token_file: str | None,
    secrets_fd: int | None,
) -> tuple[dict[str, str], str]:
    """Keys and token from flags, files, the parent's pipe, then the environment."""
    from sandbox.secrets_input import (
        Secrets,
        read_env,
        read_key_file,
        read_pipe,
        read_token_file,
    )

    secrets = Secrets(dict(keys), token or "")
    if key_file is not None:
        read_key_file(key_file, secrets)
    if token_file is not None:
        secrets.admin_token = read_token_file(token_file)
    if secrets_fd is not None:
        read_pipe(secrets_fd, secrets)
    read_env(os.environ, secrets)
    return secrets.api_keys, secrets.admin_token


def main() -> None:
    command.main(prog_name="python -m sandbox")
