"""`capture synth --like PROFILE`: the option's checks and its run, kept out of synth's body."""

from __future__ import annotations

import json
import time
from pathlib import Path

import click

from capture.cli_errors import InputError
from capture.inspect import inspect_corpus
from capture.likesynth import write_like_corpus
from capture.profile import check_profile
from capture.synth import parse_epoch


def synth_like(
    like: Path | None,
    workload: str | None,
    rate: float,
    duration: int,
    seed: int,
    epoch: str,
    output: Path,
) -> None:
    if like is None:
        raise InputError("give --workload, or --like PROFILE")
    if workload is not None:
        raise InputError("--like and --workload exclude each other")
    try:
        profile = check_profile(json.loads(like.read_text()), str(like))
        parse_epoch(epoch)
    except FileNotFoundError:
        raise InputError(f"{like}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{like}: cannot read: {exc}") from None
    except ValueError as exc:
        raise InputError(str(exc) if str(like) in str(exc) else f"{like}: {exc}") from None
    if not output.parent.exists():
        raise InputError(f"{output}: directory {output.parent} does not exist")
    started = time.perf_counter()
    try:
        write_like_corpus(
            profile, output, rate=rate, duration_ns=duration, seed=seed, epoch=epoch,
            profile_name=like.name,
        )  # fmt: skip
    except (KeyError, TypeError, IndexError, ValueError) as exc:
        raise InputError(f"{like}: unusable profile ({exc!r})") from None
    stats = inspect_corpus(output)
    click.echo(
        f"wrote {output}: {stats.records:,} records over {stats.duration_s:,.1f} s "
        f"({stats.file_bytes:,} bytes) in {time.perf_counter() - started:.1f} s",
        err=True,
    )
