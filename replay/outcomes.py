"""Outcomes: every exchange ends with an HTTP status ("200") or an error kind, one string.

    refused    the connection was refused (nothing listening)
    reset      the peer reset the connection (RST, broken pipe)
    timeout    no complete response within --timeout of the send (connect included)
    malformed  bytes that are not an HTTP response
    closed     the peer closed the connection before a complete response
    other      anything else (unreachable host, TLS failure, ...)

2xx and 3xx are ok; any other status and every error kind is an error.
"""

from __future__ import annotations

import errno
import socket

from geventhttpclient._parser import HTTPParseError

ERROR_KINDS = ("refused", "reset", "timeout", "malformed", "closed", "other")
"""Outcomes that are not an HTTP status: the transport failed before a full response."""

STATUS = tuple(str(code) for code in range(1000))  # "200" without formatting per request


class ClosedError(Exception):
    """The peer closed the connection before a complete response."""

    def __init__(self, received: int) -> None:
        super().__init__(f"connection closed after {received} bytes of a response")
        self.received = received


def is_ok(outcome: str) -> bool:
    """2xx and 3xx are ok; any other status and every error kind is an error."""
    return len(outcome) == 3 and outcome[0] in "23" and outcome.isdigit()


def status_matches(outcome: str, status: str | None) -> bool:
    """A ``{status:...}`` filter: None matches all; "503" exactly; "5xx" a class; or a kind."""
    if status is None or outcome == status:
        return True
    return (
        len(status) == 3
        and status.endswith("xx")
        and len(outcome) == 3
        and outcome.isdigit()
        and outcome[0] == status[0]
    )


def classify(exc: BaseException) -> str:
    """The error kind of an exchange that failed with `exc` (the watchdog's timeouts are
    `Connection.expire`'s)."""
    if isinstance(exc, ConnectionRefusedError):
        return "refused"
    if isinstance(exc, (ConnectionResetError, BrokenPipeError, ConnectionAbortedError)):
        return "reset"
    if isinstance(exc, HTTPParseError):
        return "malformed"
    if isinstance(exc, ClosedError):
        return "closed"
    if isinstance(exc, (TimeoutError, socket.timeout)):
        return "timeout"
    if isinstance(exc, OSError) and exc.errno in (errno.ECONNRESET, errno.EPIPE):
        return "reset"
    if isinstance(exc, OSError) and exc.errno == errno.ECONNREFUSED:
        return "refused"
    return "other"
