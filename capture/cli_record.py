"""`capture record` (a recording reverse proxy) and `capture repair` (a killed recording made
whole). Both only parse and delegate: capture/proxy.py forwards, capture/recording.py
records, capture/repair.py repairs."""

from __future__ import annotations

import errno
import shlex
import signal
import sys
from pathlib import Path

import click
import gevent
from gevent.event import Event

from capture.cli_errors import InputError, OneLineCommand
from capture.cli_units import DURATION
from capture.corpus import partial_path
from capture.inspect import recording_line
from capture.proxy import BUSY_POLL_NS, ReverseProxy
from capture.proxyhttp import Upstream
from capture.recording import WRITER_PRIORITIES, Recorder, RecordOptions
from capture.repair import repair as repair_corpus
from capture.units import format_duration_ns

BUSY_POLL_US = BUSY_POLL_NS // 1000  # the default of --busy-poll-us


def parse_listen(text: str) -> tuple[str, int]:
    """HOST:PORT, [IPv6]:PORT, or PORT alone (on 127.0.0.1); raises ValueError."""
    value = text.strip()
    host, sep, port = value.rpartition(":")
    if not sep:
        host, port = "127.0.0.1", value
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not host:
        host = "0.0.0.0"
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"--listen {text!r}: expected HOST:PORT with a port from 0 to 65535")
    return host, int(port)


class _Listen(click.ParamType):
    name = "HOST:PORT"

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> tuple[str, int]:
        if isinstance(value, tuple):
            return value
        try:
            return parse_listen(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


def _path_prefix(
    _ctx: click.Context, _param: click.Parameter, values: tuple[str, ...]
) -> tuple[str, ...]:
    for value in values:
        if not value.startswith("/"):
            raise click.BadParameter(f"{value!r} is not a path prefix (it must start with '/')")
    return values


@click.command("record", cls=OneLineCommand)
@click.option("--listen", type=_Listen(), required=True, help="Address to accept clients on.")
@click.option(
    "--upstream", metavar="URL", required=True, help="AgentTrace's base URL (http/https)."
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="The corpus to write (FILE.partial until the recording stops).",
)
@click.option("--duration", type=DURATION, help="Stop after this long (90s, 10m, 2h).")
@click.option("--max-records", type=click.IntRange(min=1), help="Stop after recording N requests.")
@click.option(
    "--sample",
    type=click.FloatRange(0, 1, min_open=True),
    default=1.0,
    help="Record this fraction of requests (all are forwarded).",
)
@click.option("--redact", is_flag=True, help="Replace free text with filler (capture/redact.py).")
@click.option(
    "--path",
    "paths",
    multiple=True,
    callback=_path_prefix,
    metavar="PREFIX",
    help="Also record requests under this path prefix (repeatable).",
)
@click.option(
    "--writer-priority",
    type=click.Choice(WRITER_PRIORITIES),
    default="batch",
    show_default=True,
    help="The writer's CPU priority beside the proxy: batch (below it, records everything "
    "it can) or idle (only CPU the proxy leaves: forwarding first, the recording thins out "
    "on a busy machine, drops counted).",
)
@click.option(
    "--busy-poll-us",
    type=click.IntRange(0, 100_000),
    default=BUSY_POLL_US,
    show_default=True,
    metavar="US",
    help="While a request is out and the upstream has lately answered within US µs, poll "
    "for its answer instead of sleeping: saves waking the proxy's core (tens of µs on a "
    "virtual machine) for some CPU; 0 never polls.",
)
def record(
    listen: tuple[str, int],
    upstream: str,
    output: Path,
    duration: int | None,
    max_records: int | None,
    sample: float,
    redact: bool,
    paths: tuple[str, ...],
    writer_priority: str,
    busy_poll_us: int,
) -> None:
    """Put a recording reverse proxy in front of AgentTrace.

    Every request to --listen is forwarded to --upstream and its answer returned unchanged;
    each AgentTrace API request is also appended to the corpus OUTPUT, with its ids and
    timestamps marked as `capture synth` marks them, never with a credential header. Stops
    on Ctrl-C or SIGTERM (the corpus is then finished), after --duration or --max-records.
    Until then the file is OUTPUT.partial; after a crash, `capture repair` makes it whole.
    """
    try:
        target = Upstream.parse(upstream)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    if not output.parent.is_dir():
        raise InputError(f"{output}: directory {output.parent} does not exist")
    leftover = partial_path(output)
    if leftover.exists():
        raise InputError(
            f"{leftover} exists: an earlier recording that did not finish? Keep it with "
            f"`capture repair {leftover} -o OUT`, or remove it, then record again"
        )
    problem = target.probe()
    if problem is not None:
        raise InputError(
            f"--upstream {upstream}: cannot connect to {target.host}:{target.port} ({problem})"
        )
    proxy = ReverseProxy(listen[0], listen[1], target, busy_poll_ns=busy_poll_us * 1000)
    try:
        host, port = proxy.bind()
    except OSError as exc:
        reason = (
            "address already in use" if exc.errno == errno.EADDRINUSE else exc.strerror or str(exc)
        )
        raise InputError(f"--listen {listen[0]}:{listen[1]}: {reason}") from None
    except UnicodeError:
        raise InputError(f"--listen {listen[0]}:{listen[1]}: not a host name") from None

    stop = Event()
    wake = gevent.get_hub().loop.async_()
    wake.start(stop.set)
    options = RecordOptions(
        output=output,
        upstream=upstream,
        sample=sample,
        redact=redact,
        keep_paths=paths,
        max_records=max_records,
        command=_command(
            listen,
            upstream,
            output,
            duration,
            max_records,
            sample,
            redact,
            paths,
            writer_priority,
            busy_poll_us,
        ),
        writer_priority=writer_priority,
    )
    try:
        recorder = Recorder(options, on_full=wake.send)
    except OSError as exc:
        raise InputError(str(exc)) from None
    proxy.tap = recorder
    recorder.start()
    proxy.start()
    for signum in (signal.SIGINT, signal.SIGTERM):
        gevent.signal_handler(signum, stop.set)
    if duration is not None:
        gevent.spawn_later(duration / 1e9, stop.set)
    shown = f"[{host}]" if ":" in host else host
    click.echo(
        f"capture record: forwarding http://{shown}:{port} to {target.url}, recording to "
        f"{recorder.partial_path} until it stops (Ctrl-C or SIGTERM finishes {output})",
        err=True,
    )
    stop.wait()
    proxy.close(grace=2.0)
    path = recorder.stop()
    wake.close()
    click.echo(
        f"capture record: {recording_line(recorder.counts.to_json())}; wrote {path}", err=True
    )
    if recorder.error is not None:
        click.echo(f"capture record: {recorder.error}", err=True)
        sys.exit(1)


def _command(
    listen: tuple[str, int],
    upstream: str,
    output: Path,
    duration: int | None,
    max_records: int | None,
    sample: float,
    redact: bool,
    paths: tuple[str, ...],
    writer_priority: str = "batch",
    busy_poll_us: int = BUSY_POLL_US,
) -> str:
    """The command line that made the recording, for `capture inspect`."""
    host = f"[{listen[0]}]" if ":" in listen[0] else listen[0]
    argv = ["capture", "record", "--listen", f"{host}:{listen[1]}", "--upstream", upstream]
    argv += ["-o", str(output)]
    if duration is not None:
        argv += ["--duration", format_duration_ns(duration)]
    if max_records is not None:
        argv += ["--max-records", str(max_records)]
    if sample < 1:
        argv += ["--sample", f"{sample:g}"]
    if redact:
        argv.append("--redact")
    for prefix in paths:
        argv += ["--path", prefix]
    if writer_priority != "batch":
        argv += ["--writer-priority", writer_priority]
    if busy_poll_us != BUSY_POLL_US:
        argv += ["--busy-poll-us", str(busy_poll_us)]
    return shlex.join(argv)


@click.command("repair", cls=OneLineCommand)
@click.argument("corpus", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True)
def repair(corpus: Path, output: Path) -> None:
    """Write the whole chunks of an unfinished or damaged CORPUS as a valid corpus.

    For the FILE.partial a killed `capture record` leaves (`capture inspect` shows
    what it holds). Chunks that fail their checksum are skipped and counted.
    """
    if not output.parent.is_dir():
        raise InputError(f"{output}: directory {output.parent} does not exist")
    report = repair_corpus(corpus, output)
    state = "finished" if report.complete else "unfinished"
    line = (
        f"repaired {corpus} ({state}): {report.records:,} records in {report.chunks_kept} "
        f"chunks written to {report.output}"
    )
    if report.chunks_dropped:
        line += f"; {report.chunks_dropped} damaged chunks skipped ({'; '.join(report.dropped)})"
    click.echo(line, err=True)
