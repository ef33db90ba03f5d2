"""Redaction itself: any credential value, in either option form, and any URL userinfo,
including characters on which URL parsers disagree, comes out as ***."""

from __future__ import annotations

from hypothesis import assume, given
from hypothesis import strategies as st

from replay.redact import (
    REDACTED,
    SECRET_OPTIONS,
    redact_argv,
    redact_command_line,
    redact_text,
    redact_url,
)

secrets = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=6)


@given(secret=secrets, option=st.sampled_from(sorted(SECRET_OPTIONS)), joined=st.booleans())
def test_argv_loses_every_credential_value(secret: str, option: str, joined: bool) -> None:
    argv = ["ingestion", f"{option}={secret}"] if joined else ["ingestion", option, secret]
    shown = redact_argv(argv)
    assert shown[1:] == ([f"{option}={REDACTED}"] if joined else [option, REDACTED])
    assert shown[0] == "ingestion"  # everything else is kept


@given(user=secrets.filter(lambda s: "@" not in s and "/" not in s), password=secrets)
def test_url_userinfo_is_redacted(user: str, password: str) -> None:
    password = password.replace("@", "").replace("/", "") or "pw"
    # a password that is part of the visible text ("127.0") cannot be told apart from it
    assume(password not in "replay run --target http://***@127.0.0.1:8080/base failed")
    url = f"http://{user}:{password}@127.0.0.1:8080/base"
    shown = redact_url(url)
    assert shown == "http://***@127.0.0.1:8080/base"
    assert password not in redact_text(f"target {url} failed")
    assert password not in redact_command_line(f"replay run --target {url}")


def test_command_line_text_keeps_what_is_not_secret() -> None:
    line = "replay run ingestion --api-key 'sk x' --rate 50 --target http://127.0.0.1:1"
    assert redact_command_line(line) == (
        "replay run ingestion --api-key '***' --rate 50 --target http://127.0.0.1:1"
    )
