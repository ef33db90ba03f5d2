"""mitmproxy flow dumps (`mitmdump -w flows`) as captures, read with mitmproxy's own reader.

mitmproxy is an optional extra (`pip install 'agenttrace-loadtools[mitmproxy]'`): its
`mitmproxy.io.FlowReader` knows every version of its own format and migrates old dumps, so
this module never parses the format itself. Each HTTP flow's request gives its start time
(`timestamp_start`), method, path, headers and raw body (`raw_content`, as sent: a gzip
body is decoded by the intake). Other flows (TCP, UDP, DNS) are skipped. A file that is not
a flow dump, or of a version this mitmproxy cannot read, is an error naming the file and the
flow number.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from capture.errors import InputError
from capture.intake import Captured

INSTALL_HINT = "install the extra: pip install 'agenttrace-loadtools[mitmproxy]'"


def mitmproxy_reader() -> Any:
    """mitmproxy.io, or an InputError saying how to install it."""
    try:
        from mitmproxy import io as mitm_io
    except ImportError:
        raise InputError(f"reading mitmproxy dumps needs mitmproxy: {INSTALL_HINT}") from None
    return mitm_io


def read_mitmproxy(files: list[str | os.PathLike[str]]) -> Iterator[Captured]:
    """The HTTP requests of the dumps, file after file, in the order mitmproxy saved them."""
    mitm_io = mitmproxy_reader()
    from mitmproxy import exceptions, http

    for name in files:
        path = Path(name)
        try:
            f = open(path, "rb")  # noqa: SIM115 - closed below
        except FileNotFoundError:
            raise InputError(f"{path}: no such file") from None
        except OSError as exc:
            raise InputError(f"{path}: cannot read: {exc.strerror}") from None
        number = 0
        with f:
            reader = mitm_io.FlowReader(f)
            try:
                for flow in reader.stream():
                    number += 1
                    if not isinstance(flow, http.HTTPFlow):
                        continue
                    request = flow.request
                    yield Captured(
                        int(request.timestamp_start * 1e9),
                        request.method,
                        request.path,
                        tuple((str(k), str(v)) for k, v in request.headers.items(multi=True)),
                        request.raw_content or b"",
                        f"flow {number}",
                    )
            except (exceptions.FlowReadException, ValueError, KeyError, TypeError) as exc:
                raise InputError(
                    f"{path}: flow {number + 1}: not a mitmproxy dump this mitmproxy can read "
                    f"({exc})"
                ) from None
