"""`capture`: synthesise AgentTrace traffic into corpora and inspect them."""

from __future__ import annotations

import json
import time
from pathlib import Path

import click

from capture.arrivals import PROFILES
from capture.cli_errors import InputError, OneLineGroup
from capture.cli_like import synth_like
from capture.cli_more import dump, export, fit, import_
from capture.cli_record import record, repair
from capture.cli_units import DURATION, RATE
from capture.inspect import inspect_corpus, render_stats
from capture.synth import DEFAULT_EPOCH, WORKLOADS, SynthSpec, write_synth_corpus
from capture.termsafe import printable_lines


@click.group(
    name="capture",
    cls=OneLineGroup,
    context_settings={"help_option_names": ["-h", "--help"], "show_default": True},
)
@click.version_option(package_name="agenttrace-loadtools")
def main() -> None:
    """Record or synthesise AgentTrace traffic into corpora, and inspect them."""


@main.command()
@click.option("--workload", type=click.Choice(WORKLOADS), help="Traffic to make.")
@click.option("--rate", type=RATE, required=True, help="Mean requests per second (200, 1.5k).")
@click.option("--duration", type=DURATION, required=True, help="Length: 90, 90s, 5m, 2h.")
@click.option("--seed", type=click.IntRange(min=0), default=1, help="Same seed, same bytes.")
@click.option("--profile", type=click.Choice(PROFILES), default="constant", help="Rate shape.")
@click.option("--epoch", default=DEFAULT_EPOCH, help="Synthetic wall-clock start (ISO-8601).")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option("--like", type=click.Path(path_type=Path), help="A profile from `capture fit`.")
def synth(
    workload: str | None,
    rate: float,
    duration: int,
    seed: int,
    profile: str,
    epoch: str,
    output: Path,
    like: Path | None,
) -> None:
    """Synthesise AgentTrace traffic as the load-testing guide describes it, or, with
    --like PROFILE, like the recording a profile was fitted from.

    Arrivals are Poisson with mean RATE; the profile shapes the rate over the corpus
    (constant, diurnal: one compressed day, bursty: 5x bursts). See
    docs/synthetic-traffic.md for every distribution.
    """
    if like is not None or workload is None:
        if profile != "constant":
            raise InputError(
                "--profile shapes --workload traffic; --like takes its profile's shape"
            )
        synth_like(like, workload, rate, duration, seed, epoch, output)
        return
    try:
        spec = SynthSpec(workload, rate, duration, seed, profile, epoch)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    if output.parent and not output.parent.exists():
        raise InputError(f"{output}: directory {output.parent} does not exist")
    started = time.perf_counter()
    write_synth_corpus(spec, output)
    elapsed = time.perf_counter() - started
    stats = inspect_corpus(output)
    click.echo(
        f"wrote {output}: {stats.records:,} records over {stats.duration_s:,.1f} s "
        f"({stats.file_bytes:,} bytes) in {elapsed:.1f} s",
        err=True,
    )


@main.command()
@click.argument("corpus", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option(
    "--recover",
    is_flag=True,
    help="Read chunk by chunk, past a damaged index (an unfinished corpus needs no flag).",
)
def inspect(corpus: Path, as_json: bool, recover: bool) -> None:
    """Records, duration, rates, endpoint mix, body sizes and compression of CORPUS.

    An unfinished corpus (a crash left FILE.partial) shows its whole chunks, marked incomplete.
    """
    stats = inspect_corpus(corpus, recover=recover)
    if as_json:
        click.echo(json.dumps(stats.to_json(), indent=2))
    else:
        click.echo(printable_lines(render_stats(stats)))  # metadata is anybody's text


for _command in (import_, export, dump, fit, record, repair):
    main.add_command(_command)
