"""Credentials out of everything recorded or printed: command lines, URLs, notes.

A results file, a summary, a progress line or a merged file is shared far more widely than
the key that made the run. Whatever is recorded of a command line passes through
`redact_argv` (the value of every credential-bearing option becomes ``***``), and whatever
is recorded of a URL through `redact_url` (userinfo becomes ``***``). `redact_text` does
both inside free text, for what was written before this rule, or by hand.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence

REDACTED = "***"
SECRET_OPTIONS = frozenset(
    {"--api-key", "--admin-token", "--token", "--password", "--secret", "--bearer"}
)
"""Options whose value is a credential, in any command of the project."""

_URL = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)([^\s@]*)@")
_OPTION = re.compile(
    r"(?i)(?<![\w-])(" + "|".join(re.escape(o) for o in sorted(SECRET_OPTIONS)) + r")(=|\s+)(\S+)"
)
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=:-]+")


def redact_url(url: str) -> str:
    """`url` with anything between the scheme and an '@' (userinfo: a user, a password or a
    token) replaced by ***. Where a URL parser would disagree on where userinfo ends (a '#',
    '?' or '/' in a password), more is hidden, never less."""
    return _URL.sub(rf"\1{REDACTED}@", url)


def redact_argv(argv: Sequence[str]) -> list[str]:
    """A command's arguments with credential values and URL userinfo replaced by ***."""
    out: list[str] = []
    hide_next = False
    for arg in argv:
        if hide_next:
            out.append(REDACTED)
            hide_next = False
            continue
        name, eq, _value = arg.partition("=")
        if name in SECRET_OPTIONS:
            if eq:
                out.append(f"{name}={REDACTED}")
            else:
                out.append(arg)
                hide_next = True
            continue
        out.append(_URL.sub(rf"\1{REDACTED}@", arg))
    return out


def redact_command_line(text: str) -> str:
    """A recorded command line (shell syntax) with its credentials replaced by ***."""
    try:
        return shlex.join(redact_argv(shlex.split(text)))
    except ValueError:  # not shell syntax: redact what the patterns find
        return redact_text(text)


def redact_text(text: str) -> str:
    """Free text with URL userinfo, credential options and bearer tokens replaced by ***."""
    text = _URL.sub(rf"\1{REDACTED}@", text)
    text = _OPTION.sub(rf"\1\2{REDACTED}", text)
    return _BEARER.sub(rf"\1 {REDACTED}", text)


def userinfo_problem(url: str) -> str | None:
    """Why a --target URL is refused for holding credentials, or None.

    Credentials in a URL end up in shell history, process lists and logs; replay takes the
    key from --api-key or API_KEY only, so a URL with userinfo is refused, not ignored."""
    if not _URL.search(url.strip()):
        return None
    return (
        f"--target {redact_url(url.strip())}: credentials in the URL are not used; "
        "give the key with --api-key or API_KEY and the URL without userinfo"
    )
