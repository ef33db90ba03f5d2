"""The request parser against what HTTP/1.1 allows: on the live sandbox (malformed requests
get 400, never a traceback or a silent close), and against llhttp (through httptools), an
independent parser whose verdict on each generated request must match ours."""

from __future__ import annotations

import re
import socket
from typing import Any

import httptools
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from sandbox import wire

from .test_errors import _raw

TRACES = b"POST /api/public/traces HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer sk-test-a\r\n"
HEALTH = b"GET /health HTTP/1.1\r\nHost: x\r\n"  # 200 unless the head is refused
CHUNKED = TRACES + b"Transfer-Encoding: chunked\r\n\r\n"
BODY = b'{"id":"t-chunked-ok"}'  # 21 bytes = 0x15


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (
            TRACES + "Content-Length: ²\r\n\r\n".encode(),
            "superscript two (UTF-8): isdigit()",
        ),
        (TRACES + b"Content-Length: \xb2\r\n\r\n", "superscript two (Latin-1)"),
        (TRACES + "Content-Length: ٣\r\n\r\n".encode(), "Arabic-Indic three"),
        (TRACES + b"Content-Length: +3\r\n\r\nabc", "a sign"),
        (CHUNKED + b"0x15\r\n" + BODY + b"\r\n0\r\n\r\n", "0x prefix"),
        (CHUNKED + b"+15\r\n" + BODY + b"\r\n0\r\n\r\n", "a sign"),
        (CHUNKED + b"0_15\r\n" + BODY + b"\r\n0\r\n\r\n", "an underscore (int() allows it)"),
        (CHUNKED + b" 15\r\n" + BODY + b"\r\n0\r\n\r\n", "a space before the size"),
        (CHUNKED + b"15\r\n" + BODY + b"\r\n-0\r\n\r\n", "a -0 terminator"),
        (HEALTH + b"X-A: a\nb\r\n\r\n", "a bare LF in a header value"),
        (HEALTH + b"X-A: a\rb\r\n\r\n", "a bare CR in a header value"),
        (HEALTH + b"X-A: a\x00b\r\n\r\n", "a NUL in a header value"),
        (b"GET /health\x00 HTTP/1.1\r\n\r\n", "a NUL in the target"),
        (b"GET /h\xc3\xa9 HTTP/1.1\r\n\r\n", "a non-ASCII target"),
    ],
)
def test_malformed_requests_get_400(sandbox: Any, api: Any, data: bytes, why: str) -> None:
    before = sandbox.read_log().count("Traceback")
    answer = _raw(sandbox, data)
    assert answer.startswith(b"HTTP/1.1 400 "), (why, answer[:200])
    assert api.get("/health", key=None).status == 200
    assert sandbox.read_log().count("Traceback") == before, why


@pytest.mark.parametrize(
    ("extensions", "ok"),
    [
        (b";a", True),
        (b";a=b;c", True),
        (b';a="x y"', True),
        (b" ; a = b", True),  # BWS is allowed around ; and = (RFC 9112 7.1.1)
        (b";", False),  # no name
        (b";a=", False),  # no value after =
        (b";=b", False),
        (b";a=b c", False),
        (b';a="\x01"', False),
    ],
)
def test_chunk_extensions_follow_the_grammar(extensions: bytes, ok: bool) -> None:
    data = CHUNKED + b"3" + extensions + b"\r\nabc\r\n0\r\n\r\n"
    assert sandbox_accepts(data) == ok


def test_a_well_formed_chunked_body_is_still_accepted(sandbox: Any) -> None:
    # the control for the cases above: hex digits, an extension, a trailer field
    data = CHUNKED + b"15;ext=1\r\n" + BODY + b"\r\n0\r\nX-Trailer: ok\r\n\r\n"
    answer = _raw(sandbox, data)
    assert answer.startswith(b"HTTP/1.1 200 "), answer[:300]


# --- the same verdicts as llhttp -----------------------------------------------------------


class _Done:
    def __init__(self) -> None:
        self.complete = False

    def on_message_complete(self) -> None:
        self.complete = True


def llhttp_accepts(data: bytes) -> bool:
    """llhttp's verdict: the request parses to its end without an error."""
    done = _Done()
    parser = httptools.HttpRequestParser(done)
    try:
        parser.feed_data(data)
    except httptools.HttpParserError:
        return False
    return done.complete


def sandbox_accepts(data: bytes) -> bool:
    """The sandbox's verdict, from its own reader over a real socket pair."""
    ours, theirs = socket.socketpair()
    with ours, theirs:
        theirs.sendall(data)
        theirs.shutdown(socket.SHUT_WR)
        try:
            request = wire.read_request(ours, bytearray(), wire.Limits(request_timeout=10))
        except wire._BadRequest:
            return False
        return request is not None


_SIZE_CHARS = "0123456789abcdefABCDEF+-_xX \t"
_VALUE_BYTES = st.binary(max_size=6).map(lambda b: b.replace(b"\r\n", b"\r"))


@st.composite
def requests(draw: st.DrawFn) -> bytes:
    """A small request with one field drawn from the places the parser must be strict:
    Content-Length, a chunk size line, a header value, the target."""
    target = b"/" + draw(st.binary(max_size=4).filter(lambda b: b" " not in b and b"\r\n" not in b))
    head = b"POST " + target + b" HTTP/1.1\r\nHost: x\r\n"
    value = draw(_VALUE_BYTES)
    head += b"X-Field: a" + value + b"\r\n"
    kind = draw(st.sampled_from(["length", "chunked"]))
    # the body matches what a lenient reading of the size would expect, so that only the
    # size's spelling decides
    if kind == "length":
        length = draw(st.text(alphabet="0123456789+-_ x\u00b2\u0663", min_size=1, max_size=3))
        digits = re.sub(r"[^0-9]", "", length)
        body = b"a" * int(digits or "3")
        return head + b"Content-Length: " + length.encode() + b"\r\n\r\n" + body
    size = draw(st.text(alphabet=_SIZE_CHARS, min_size=1, max_size=5))
    hex_digits = re.sub(r"[^0-9a-fA-F]", "", size)[:3]
    assume(int(hex_digits or "3", 16) != 0)  # a zero first chunk would end the body there
    last = draw(st.sampled_from(["0", "-0", "00", "0 "]))
    return (
        head
        + b"Transfer-Encoding: chunked\r\n\r\n"
        + size.encode()
        + b"\r\n"
        + b"a" * int(hex_digits or "3", 16)
        + b"\r\n"
        + last.encode()
        + b"\r\n\r\n"
    )


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(requests())
def test_the_parser_agrees_with_llhttp(data: bytes) -> None:
    # a request whose declared sizes do not match the bytes sent is incomplete for both
    assert sandbox_accepts(data) == llhttp_accepts(data), data
