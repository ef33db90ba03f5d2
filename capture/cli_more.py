"""`capture import`, `export`, `dump` and `fit`: the commands that bring real traffic in."""

from __future__ import annotations

import json
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import click

from capture.cli_errors import InputError
from capture.cli_units import DURATION
from capture.dump import write_dump
from capture.export import Api, ExportSpec, export_corpus, state_path
from capture.goreplay import read_gor
from capture.har import read_har
from capture.intake import Intake, write_records
from capture.mitm import read_mitmproxy
from capture.profile import fit_profile

READERS = {"har": read_har, "goreplay": read_gor, "mitmproxy": read_mitmproxy}
KEY_ENV = "AGENTTRACE_API_KEY"


def _output(path: Path) -> Path:
    if not path.parent.exists():
        raise InputError(f"{path}: directory {path.parent} does not exist")
    return path


@click.command(name="import")
@click.argument("fmt", metavar="FORMAT", type=click.Choice(sorted(READERS)))
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option(
    "--path",
    "keep_paths",
    multiple=True,
    metavar="PREFIX",
    help="Also keep requests whose path starts with PREFIX (tagged 'other'). Repeatable.",
)
@click.option("--redact", is_flag=True, help="Replace free text (docs/capture.md says what).")
def import_(
    fmt: str, files: tuple[Path, ...], output: Path, keep_paths: tuple[str, ...], redact: bool
) -> None:
    """Import recorded requests (HAR 1.2, GoReplay .gor, mitmproxy dumps) as a corpus.

    Requests are put in time order; paths that are not AgentTrace's are dropped unless
    --path keeps them; credential headers never enter the corpus.
    """
    intake = Intake(keep_paths=keep_paths, redact=redact)
    extra = {
        "command": f"capture import {fmt} "
        + " ".join(f.name for f in files)
        + "".join(f" --path {p}" for p in keep_paths)
        + (" --redact" if redact else ""),
        "redacted": redact,
    }
    tally = write_records(
        READERS[fmt](list(files)), _output(output), intake, source=fmt, extra=extra
    )
    click.echo(f"wrote {output}: {tally.summary()}", err=True)


def _when(text: str, option: str) -> int:
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise InputError(f"{option} {text!r} is not an ISO-8601 time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return round(moment.timestamp() * 1000)


def _api_key(api_key: str | None, api_key_file: Path | None) -> str:
    if api_key_file is not None:
        try:
            key = api_key_file.read_text().strip()
        except OSError as exc:
            raise InputError(f"--api-key-file {api_key_file}: {exc.strerror}") from None
    else:
        key = api_key or os.environ.get(KEY_ENV, "")
    if not key:
        raise InputError(f"no API key: give --api-key-file, ${KEY_ENV} or --api-key")
    if any(c in key for c in "\r\n\0"):
        raise InputError("the API key holds a control character")
    return key


@click.command()
@click.option("--source", required=True, help="Base URL of the AgentTrace deployment.")
@click.option("--api-key", default=None, help=f"Key to read with (prefer ${KEY_ENV}).")
@click.option("--api-key-file", type=click.Path(dir_okay=False, path_type=Path), default=None)
@click.option("--since", type=DURATION, default=None, help="The last DURATION (24h, 90m).")
@click.option("--from", "from_", default=None, help="Start, ISO-8601 (inclusive).")
@click.option("--to", default=None, help="End, ISO-8601 (exclusive).")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option("--redact", is_flag=True, help="Replace free text (docs/capture.md says what).")
@click.option("--resume", is_flag=True, help="Go on with an interrupted export of OUTPUT.")
def export(
    source: str,
    api_key: str | None,
    api_key_file: Path | None,
    since: int | None,
    from_: str | None,
    to: str | None,
    output: Path,
    redact: bool,
    resume: bool,
) -> None:
    """Rebuild an ingestion corpus from the traces a deployment stores (its read API).

    Each trace becomes a POST /api/public/traces with its observations, at its own
    timestamp. Interrupted? Run the same command with --resume.
    """
    key = _api_key(api_key, api_key_file)
    resuming = resume and state_path(output).exists()
    if not resuming and (since is None) == (from_ is None and to is None):
        raise InputError("give either --since DURATION or --from TS --to TS")
    if since is not None:
        to_ms = int(time.time() * 1000)
        from_ms = to_ms - since // 1_000_000
    elif resuming:
        from_ms = to_ms = 0  # taken from the state file
    else:
        if from_ is None or to is None:
            raise InputError("--from and --to go together")
        from_ms, to_ms = _when(from_, "--from"), _when(to, "--to")
        if to_ms <= from_ms:
            raise InputError(f"--to {to} is not after --from {from_}")
    spec = ExportSpec(source, key, from_ms, to_ms, _output(output), redact, resume)
    result = export_corpus(spec, lambda line: click.echo(line, err=True), Api(source, key))
    click.echo(
        f"wrote {output}: {result.written:,} traces"
        + (f" ({result.resumed_from:,} from the interrupted run)" if result.resumed_from else ""),
        err=True,
    )


@click.command()
@click.argument("corpus", type=click.Path(path_type=Path))
@click.option("--limit", type=click.IntRange(min=0), default=None, help="At most N records.")
@click.option("--jsonl", is_flag=True, help="One JSON object a line instead of one array.")
def dump(corpus: Path, limit: int | None, jsonl: bool) -> None:
    """Print CORPUS's records as JSON: t_s, method, path, headers, body (or body_b64)."""
    try:
        write_dump(corpus, sys.stdout, limit=limit, jsonl=jsonl)
    except BrokenPipeError:
        sys.stderr.close()


@click.command()
@click.argument("recorded", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option("--seed", type=click.IntRange(min=0), default=0, help="Reservoir sampling seed.")
def fit(recorded: Path, output: Path, seed: int) -> None:
    """Learn RECORDED's traffic profile (no customer text) for `capture synth --like`."""
    profile = fit_profile(recorded, seed=seed)
    _output(output).write_text(json.dumps(profile, separators=(",", ":")) + "\n")
    shares = ", ".join(f"{k} {100 * v:.1f}%" for k, v in profile["endpoints"].items())
    arrivals = profile["arrivals"]
    click.echo(
        f"wrote {output}: {profile['records']:,} records, {arrivals['mean_rate']:,.1f}/s, "
        f"gap CV {arrivals['cv']:.2f}; {shares}",
        err=True,
    )
