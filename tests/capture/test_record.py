"""`capture record` and `capture repair`, end to end: the proxy as its own process in front of
the embedded sandbox or a canned-bytes upstream (tests/capture/raw_upstream.py), real clients
on loopback, the corpus read back. Every process started here is stopped by its pid."""

from __future__ import annotations

import gzip
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from capture.corpus import CorpusReader, Record
from capture.proxyhttp import BadRequest, parse_request_head
from capture.synth import SynthSpec, synthesize

CAPTURE = [sys.executable, "-c", "from capture.cli import main; main()"]
SECRET = "sk-live-do-not-record-3f9a"
HEAD_PARTS = (
    b"GET /a?b=c HTTP/1.1",
    b"POST http://h/x HTTP/1.0",
    b"\r\n",
    b"Content-Length: 5",
    b"Content-Length: x",
    b"Transfer-Encoding: chunked",
    b"Connection: close",
    b"Expect: 100-continue",
    b" ",
    b":",
    b"http://[::1",
)


@dataclass
class Proxy:
    proc: subprocess.Popen[str]
    host: str
    port: int
    output: Path

    @property
    def partial(self) -> Path:
        return self.output.with_name(self.output.name + ".partial")

    def connection(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(self.host, self.port, timeout=30)

    def finish(self, sig: int = signal.SIGTERM) -> tuple[int, str]:
        self.proc.send_signal(sig)
        _, err = self.proc.communicate(timeout=60)
        return self.proc.returncode, err


@pytest.fixture
def proxy(tmp_path: Path) -> Iterator[object]:
    """start(upstream_url, *flags) -> a running `capture record` process on a free port."""
    started: list[subprocess.Popen[str]] = []

    def start(
        upstream: str, *flags: str, name: str = "recorded.atc", env: dict[str, str] | None = None
    ) -> Proxy:
        output = tmp_path / name
        argv = [*CAPTURE, "record", "--listen", "127.0.0.1:0", "--upstream", upstream]
        proc = subprocess.Popen(
            [*argv, "-o", str(output), *flags],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **(env or {})},
        )
        started.append(proc)
        assert proc.stderr is not None
        line = proc.stderr.readline()  # printed once the proxy listens: the readiness event
        assert "forwarding http://" in line, line + proc.stderr.read()
        address = line.split("forwarding http://", 1)[1].split(" ", 1)[0]
        host, port = address.rsplit(":", 1)
        return Proxy(proc, host, int(port), output)

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()


@pytest.fixture(scope="module")
def sandbox() -> Iterator[object]:
    from sandbox.process import start_sandbox

    with start_sandbox(port=0) as sb:
        yield sb


def read_all(path: Path) -> list[Record]:
    with CorpusReader(path) as reader:
        return list(reader)


def meta_extra(path: Path) -> dict[str, object]:
    with CorpusReader(path) as reader:
        return reader.header.meta.extra


def send(conn: http.client.HTTPConnection, record: Record, key: str) -> tuple[int, bytes]:
    headers = {**dict(record.headers), "Authorization": f"Bearer {key}"}
    conn.request(record.method, record.path, body=record.body or None, headers=headers)
    response = conn.getresponse()
    return response.status, response.read()


def test_records_synthetic_traffic_with_synth_spans_and_it_replays(
    proxy: object, sandbox: object, tmp_path: Path
) -> None:
    # Mixed synthetic traffic through the proxy on one keep-alive connection: every request
    # is answered as the sandbox answers it, and the corpus holds each one with exactly the
    # spans synth gave it (found from the bytes alone), and no credential.
    sent = list(synthesize(SynthSpec("mixed", 60, 3_000_000_000, 5)))
    p = proxy(sandbox.url)  # type: ignore[operator,attr-defined]
    conn = p.connection()
    statuses = [send(conn, r, sandbox.api_key)[0] for r in sent]  # type: ignore[attr-defined]
    conn.close()
    code, err = p.finish()
    assert code == 0, err
    # gets may come before the sandbox's worker has stored the trace; projects are not its own
    assert set(statuses) <= {200, 404}
    assert all(s == 200 for s, r in zip(statuses, sent, strict=True) if r.endpoint == "ingest")
    got = read_all(p.output)
    assert len(got) == len(sent)
    for mine, theirs in zip(got, sent, strict=True):
        assert (mine.endpoint, mine.method, mine.path, mine.body) == (
            theirs.endpoint,
            theirs.method,
            theirs.path,
            theirs.body,
        )
        assert sorted(mine.body_ids) == sorted(theirs.body_ids)
        assert tuple(mine.path_ids) == tuple(theirs.path_ids)
        assert mine.trace == theirs.trace
        assert mine.status in (200, 404)
        assert all(k.lower() != "authorization" for k, _ in mine.headers)
    offsets = [r.offset_ns for r in got]
    assert offsets == sorted(offsets)
    recording = meta_extra(p.output)["recording"]
    assert recording["recorded"] == len(sent)  # type: ignore[index]
    assert recording["dropped_queue_full"] == 0  # type: ignore[index]
    assert f"{len(sent):,} of {len(sent):,} requests recorded" in err

    out = tmp_path / "replayed.json"
    replay = subprocess.run(
        [
            sys.executable,
            "-m",
            "replay.cli_run",
            str(p.output),
            "--duration",
            "2s",
            "-q",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert replay.returncode == 0, replay.stderr
    results = json.loads(out.read_text())
    assert results["totals"]["requests"] > 0
    # every request reached the sandbox and was understood (a get may still miss its trace)
    assert set(results["outcomes"]) <= {"200", "404"}, results["outcomes"]
    assert results["endpoints"]["ingest"]["errors"] == 0


def test_answers_are_relayed_byte_for_byte_keep_alive_chunked_gzip(proxy: object, raw: Any) -> None:
    p = proxy(raw.url, "--path", "/")  # type: ignore[operator]
    with socket.create_connection((p.host, p.port), timeout=30) as sock:
        # three requests on one client connection: plain, chunked+gzip answer, HEAD
        for path, method in (("/plain", "GET"), ("/chunked", "GET"), ("/head", "HEAD")):
            sock.sendall(f"{method} {path} HTTP/1.1\r\nHost: client.example\r\n\r\n".encode())
            expected = raw.answers.get(path, raw.answers[""])
            got = b""
            while len(got) < len(expected):
                data = sock.recv(65536)
                assert data, f"closed after {got!r}"
                got += data
            assert got == expected
        # an answer delimited by the upstream's close ends the client's connection too
        sock.sendall(b"GET /close HTTP/1.1\r\nHost: x\r\n\r\n")
        got = b""
        while data := sock.recv(65536):
            got += data
        assert got == raw.answers["/close"]
    # the four requests went on one upstream connection (the other one was the start's probe)
    assert len({r.connection for r in raw.received}) == 1
    assert [r.headers["host"] for r in raw.received] == [f"127.0.0.1:{raw.port}"] * 4
    code, err = p.finish()
    assert code == 0, err
    assert [(r.method, r.path, r.endpoint) for r in read_all(p.output)] == [
        ("GET", "/plain", "other"),
        ("GET", "/chunked", "other"),
        ("HEAD", "/head", "other"),
        ("GET", "/close", "other"),
    ]


def test_a_kept_alive_connection_the_upstream_dropped_is_replaced(proxy: object, raw: Any) -> None:
    # The upstream closes every connection after one answer without saying so (as a server
    # whose keep-alive timeout ran out does): each next request finds the connection gone
    # before any answer, goes again on a new one, and the client never sees a 502.
    raw.close_after = 1
    p = proxy(raw.url)  # type: ignore[operator]
    conn = p.connection()
    for _ in range(3):
        conn.request("POST", "/api/public/traces", body=b'{"id":"again"}')
        response = conn.getresponse()
        assert (response.status, response.read()) == (201, b'{"status":"accepted"}')
    conn.close()
    assert len(raw.received) == 3
    assert len({r.connection for r in raw.received}) == 3
    code, err = p.finish()
    assert code == 0, err
    assert len(read_all(p.output)) == 3


def test_chunked_and_gzip_requests(proxy: object, raw: Any) -> None:
    # A chunked request goes upstream whole with Content-Length; a gzip request goes as it
    # came and is recorded decoded (so replay can rewrite its ids), without Content-Encoding.
    trace = next(iter(synthesize(SynthSpec("ingestion", 10, 1_000_000_000, 9))))
    p = proxy(raw.url)  # type: ignore[operator]
    conn = p.connection()
    pieces = [trace.body[i : i + 700] for i in range(0, len(trace.body), 700)]
    conn.request(
        "POST",
        "/api/public/traces",
        body=iter(pieces),
        headers={"Content-Type": "application/json", "Transfer-Encoding": "chunked"},
        encode_chunked=True,
    )
    first = conn.getresponse()
    assert (first.status, first.read()) == (201, b'{"status":"accepted"}')
    packed = gzip.compress(trace.body, mtime=0)
    conn.request(
        "POST",
        "/api/public/traces",
        body=packed,
        headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
    )
    second = conn.getresponse()
    assert second.status == 201
    second.read()
    conn.close()
    assert raw.received[0].body == trace.body
    assert raw.received[0].headers["content-length"] == str(len(trace.body))
    assert "transfer-encoding" not in raw.received[0].headers
    assert raw.received[1].body == packed
    code, err = p.finish()
    assert code == 0, err
    records = read_all(p.output)
    assert [r.body for r in records] == [trace.body, trace.body]
    assert all(sorted(r.body_ids) == sorted(trace.body_ids) for r in records)
    assert all(
        k.lower() not in ("content-encoding", "transfer-encoding")
        for r in records
        for k, _ in r.headers
    )


def test_an_https_upstream(proxy: object, raw_tls: tuple[Any, Path]) -> None:
    # The upstream's certificate is checked against the trusted CAs (here the test's CA,
    # through OpenSSL's SSL_CERT_FILE); the answer comes back byte for byte.
    raw, ca_file = raw_tls
    p = proxy(raw.url, env={"SSL_CERT_FILE": str(ca_file)})  # type: ignore[operator]
    conn = p.connection()
    for _ in range(2):  # two requests on the one TLS connection
        conn.request("POST", "/api/public/traces", body=b'{"id":"tls"}')
        response = conn.getresponse()
        assert (response.status, response.read()) == (201, b'{"status":"accepted"}')
    conn.close()
    assert [r.headers["host"] for r in raw.received] == [f"localhost:{raw.port}"] * 2
    assert len({r.connection for r in raw.received}) == 1
    code, err = p.finish()
    assert code == 0, err
    assert [r.body for r in read_all(p.output)] == [b'{"id":"tls"}'] * 2


def test_an_https_upstream_with_an_untrusted_certificate_is_refused_at_start(
    raw_tls: tuple[Any, Path], tmp_path: Path
) -> None:
    """Without its CA (SSL_CERT_FILE), the upstream's certificate is not trusted: every
    request would get a 502, so the recording does not start (one line, exit 2)."""
    raw, _ca_file = raw_tls
    done = subprocess.run(
        [*CAPTURE, "record", "--listen", "127.0.0.1:0", "--upstream", raw.url, "-o",
         str(tmp_path / "x.atc")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert f"--upstream {raw.url}" in done.stderr and "certificate is not trusted" in done.stderr
    assert not list(tmp_path.iterdir())


def test_redact_records_filler_of_the_same_length(proxy: object, raw: Any) -> None:
    traces = list(synthesize(SynthSpec("ingestion", 20, 1_000_000_000, 8)))[:5]
    p = proxy(raw.url, "--redact")  # type: ignore[operator]
    conn = p.connection()
    for trace in traces:
        conn.request("POST", "/api/public/traces", body=trace.body)
        conn.getresponse().read()
    conn.close()
    assert [r.body for r in raw.received] == [t.body for t in traces]  # forwarded as sent
    code, err = p.finish()
    assert code == 0, err
    records = read_all(p.output)
    assert meta_extra(p.output)["redacted"] is True
    for mine, theirs in zip(records, traces, strict=True):
        assert len(mine.body) == len(theirs.body) and mine.body != theirs.body
        sent, kept = json.loads(theirs.body), json.loads(mine.body)
        assert (kept["id"], kept["timestamp"]) == (sent["id"], sent["timestamp"])

        def free_text(doc: dict[str, Any]) -> str:
            parts = [doc["input"], doc["output"]]
            parts += [[o["input"], o["output"]] for o in doc["observations"]]
            return " ".join(_strings(parts))

        original = {w for w in re.findall(r"[a-z]{4,}", free_text(sent))}
        assert original  # the synthetic text has words to hide
        assert not original & set(re.findall(r"[a-z]{4,}", free_text(kept)))
        assert trace_spans_kept(mine)


def test_redact_records_query_strings_redacted(proxy: object, raw: Any) -> None:
    p = proxy(raw.url, "--redact")  # type: ignore[operator]
    conn = p.connection()
    conn.request("GET", "/api/public/traces?search=refund%20for%20alice&limit=5")
    conn.getresponse().read()
    conn.close()
    assert raw.received[0].target == "/api/public/traces?search=refund%20for%20alice&limit=5"
    code, err = p.finish()
    assert code == 0, err
    (record,) = read_all(p.output)
    route, _, query = record.path.partition("?")
    search, limit = query.split("&")
    assert route == "/api/public/traces" and limit == "limit=5"  # a number: kept
    assert search.startswith("search=") and len(search) == len("search=refund%20for%20alice")
    for word in ("refund", "alice"):
        assert word not in record.path


def _strings(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):  # a message's role (user, assistant) is structure: kept
        return [s for k, v in value.items() if k != "role" for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def trace_spans_kept(record: Record) -> bool:
    kinds = {k for _s, _n, k in record.body_ids}
    return kinds >= {0, 1, 2, 4}  # the trace, its references, observations, timestamps


def test_credential_headers_never_enter_the_corpus(proxy: object, raw: Any) -> None:
    p = proxy(raw.url)  # type: ignore[operator]
    conn = p.connection()
    credentials = {
        "Authorization": f"Bearer {SECRET}",
        "Proxy-Authorization": f"Basic {SECRET}",
        "Cookie": f"session={SECRET}",
        "X-Api-Key": SECRET,
        "X-Auth-Token": SECRET,
        "X-Client-Secret": SECRET,
        "Langfuse-Public-Key": SECRET,
        "X-Password": SECRET,
        "X-Session-Cookie": SECRET,
        "X-Forwarded-For": "203.0.113.7",  # the recording network's, not the request's
        "X-Request-Tag": "kept",
    }
    conn.request("GET", "/api/public/traces?limit=5", headers=credentials)
    conn.getresponse().read()
    conn.close()
    assert raw.received[0].headers["authorization"] == f"Bearer {SECRET}"  # forwarded as is
    code, err = p.finish()
    assert code == 0, err
    (record,) = read_all(p.output)
    # (http.client adds Accept-Encoding itself)
    assert dict(record.headers) == {"X-Request-Tag": "kept", "Accept-Encoding": "identity"}
    assert SECRET.encode() not in p.output.read_bytes()  # not even compressed away: absent
    assert SECRET not in repr(record)


def test_upstream_down_gives_502_and_nothing_recorded(proxy: object, raw: Any) -> None:
    p = proxy(raw.url)  # type: ignore[operator]
    raw.stop()  # up when the proxy started (it checks), down now
    conn = p.connection()
    conn.request("POST", "/api/public/traces", body=b'{"id":"x"}')
    response = conn.getresponse()
    assert response.status == 502
    response.read()
    conn.close()
    code, err = p.finish()
    assert code == 0, err
    assert read_all(p.output) == []
    assert meta_extra(p.output)["recording"]["upstream_failed"] == 1  # type: ignore[index]


def _post_until(p: Proxy, stop: threading.Event, sent: list[int], body: bytes) -> None:
    conn = p.connection()
    try:
        while not stop.is_set():
            conn.request("POST", "/api/public/traces", body=body)
            conn.getresponse().read()
            sent.append(1)
    except (OSError, http.client.HTTPException):
        pass  # the proxy went away mid-request: expected at the end
    finally:
        conn.close()


def test_sigterm_mid_recording_leaves_a_valid_corpus(proxy: object, raw: Any) -> None:
    trace = next(iter(synthesize(SynthSpec("ingestion", 10, 1_000_000_000, 4))))
    p = proxy(raw.url)  # type: ignore[operator]
    stop, sent = threading.Event(), []
    clients = [
        threading.Thread(target=_post_until, args=(p, stop, sent, trace.body)) for _ in range(4)
    ]
    for client in clients:
        client.start()
    deadline = time.monotonic() + 30
    while len(sent) < 50 and time.monotonic() < deadline:
        time.sleep(0.01)
    code, err = p.finish(signal.SIGTERM)  # while the clients are still sending
    stop.set()
    for client in clients:
        client.join(timeout=30)
    assert code == 0, err
    records = read_all(p.output)  # a finished corpus: opens without recovery
    assert len(records) >= 50
    assert len(records) <= len(raw.received)
    assert all(r.body == trace.body for r in records)
    assert meta_extra(p.output)["recording"]["recorded"] == len(records)  # type: ignore[index]
    assert not p.partial.exists()


def test_kill_9_then_inspect_and_repair(proxy: object, raw: Any, tmp_path: Path) -> None:
    trace = next(iter(synthesize(SynthSpec("ingestion", 10, 1_000_000_000, 6))))
    p = proxy(raw.url)  # type: ignore[operator]
    conn = p.connection()
    for _ in range(20):
        conn.request("POST", "/api/public/traces", body=trace.body)
        conn.getresponse().read()
    # The recorder puts what it has into whole chunks every second: wait for that event.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with CorpusReader(p.partial, recover=True) as reader:
            if reader.header.records >= 20:
                break
        time.sleep(0.05)
    p.proc.kill()
    p.proc.communicate()
    conn.close()
    assert not p.output.exists()

    inspect = subprocess.run(
        [*CAPTURE, "inspect", str(p.partial), "--recover", "--json"], capture_output=True, text=True
    )
    assert inspect.returncode == 0, inspect.stderr
    stats = json.loads(inspect.stdout)
    assert (stats["complete"], stats["records"]) == (False, 20)
    plain = subprocess.run([*CAPTURE, "inspect", str(p.partial)], capture_output=True, text=True)
    assert plain.returncode == 0, plain.stderr  # no --recover needed: it is only unfinished
    assert f"{stats['chunks']} whole chunks with 20 records recovered" in plain.stdout
    as_json = subprocess.run(
        [*CAPTURE, "inspect", str(p.partial), "--json"], capture_output=True, text=True
    )
    assert json.loads(as_json.stdout) == {**stats, "incomplete": True}

    repaired = tmp_path / "repaired.atc"
    done = subprocess.run(
        [*CAPTURE, "repair", str(p.partial), "-o", str(repaired)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert "20 records" in done.stderr
    with CorpusReader(repaired) as reader:  # a finished corpus now
        assert reader.header.complete
        assert reader.header.meta.extra["repaired"]["records"] == 20
        assert [r.body for r in reader] == [trace.body] * 20


def test_max_records_and_duration_end_the_recording(proxy: object, raw: Any) -> None:
    p = proxy(raw.url, "--max-records", "3")  # type: ignore[operator]
    conn = p.connection()
    for _ in range(200):  # until the proxy goes away, once it has recorded three
        try:
            conn.request("POST", "/api/public/traces", body=b'{"id":"x"}')
            conn.getresponse().read()
        except (OSError, http.client.HTTPException):
            break
    conn.close()
    assert p.proc.wait(timeout=30) == 0
    assert [r.body for r in read_all(p.output)] == [b'{"id":"x"}'] * 3
    assert meta_extra(p.output)["recording"]["recorded"] == 3  # type: ignore[index]

    timed = proxy(raw.url, "--duration", "0.5s", name="timed.atc")  # type: ignore[operator]
    assert timed.proc.wait(timeout=30) == 0  # stops by itself
    assert read_all(timed.output) == []


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (
            ["--upstream", "http://127.0.0.1:{dead}"],
            "--upstream http://127.0.0.1:{dead}: cannot connect",
        ),
        (["--upstream", "ftp://127.0.0.1:{live}"], "use an http:// or https:// URL"),
        (["--upstream", "https://127.0.0.1:{live}"], "TLS handshake"),  # a plain HTTP port
        (["--upstream", "http://user:pw@127.0.0.1:{live}"], "credentials in the URL"),
        (
            ["--upstream", "http://127.0.0.1:{live}", "--listen", "127.0.0.1:{busy}"],
            "address already in use",
        ),
        (["--upstream", "http://127.0.0.1:{live}", "--listen", "localhost:99999"], "--listen"),
        (["--upstream", "http://127.0.0.1:{live}", "--sample", "0"], "--sample"),
        (["--upstream", "http://127.0.0.1:{live}", "--path", "api"], "path prefix"),
        (
            ["--upstream", "http://127.0.0.1:{live}", "--writer-priority", "low"],
            "--writer-priority",
        ),
    ],
)
def test_bad_input_is_one_line_exit_2(
    flags: list[str], message: str, raw: Any, tmp_path: Path
) -> None:
    with socket.socket() as dead, socket.create_server(("127.0.0.1", 0)) as busy:
        dead.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
        ports = {"dead": dead.getsockname()[1], "live": raw.port, "busy": busy.getsockname()[1]}
        argv = [f.format(**ports) for f in flags]
        if "--listen" not in argv:
            argv += ["--listen", "127.0.0.1:0"]
        done = subprocess.run(
            [*CAPTURE, "record", *argv, "-o", str(tmp_path / "x.atc")],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 2, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert message.format(**ports) in done.stderr
    assert not list(tmp_path.iterdir())  # nothing written


def test_repair_refuses_what_is_not_a_corpus(tmp_path: Path) -> None:
    junk = tmp_path / "junk.atc"
    junk.write_bytes(b"not a corpus at all")
    done = subprocess.run(
        [*CAPTURE, "repair", str(junk), "-o", str(tmp_path / "out.atc")],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "not a corpus" in done.stderr


MALFORMED = [
    (b"GARBAGE\r\n\r\n", b"400"),
    (b"GET /x HTTP/2.0\r\n\r\n", b"501"),
    (b"GET /x HTTP/1.1\r\nBad Header: 1\r\n\r\n", b"400"),
    (b"POST /x HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", b"400"),
    (b"POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1_0\r\n", b"400"),
    (b"GET /x HTTP/1.1\r\nX: " + b"y" * 70_000 + b"\r\n\r\n", b"431"),
]


def test_requests_that_are_not_http_are_answered_by_the_proxy(proxy: object, raw: Any) -> None:
    p = proxy(raw.url, "--path", "/")  # type: ignore[operator]
    for request_bytes, status in MALFORMED:
        with socket.create_connection((p.host, p.port), timeout=30) as sock:
            sock.sendall(request_bytes)
            answer = b""
            while data := sock.recv(65536):  # the proxy answers, then closes
                answer += data
        assert answer.startswith(b"HTTP/1.1 " + status), (request_bytes[:40], answer[:80])
    assert raw.received == []
    code, err = p.finish()
    assert code == 0, err
    assert read_all(p.output) == []


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300) | st.lists(st.sampled_from(HEAD_PARTS), max_size=8).map(b"".join))
def test_the_request_head_parser_accepts_or_refuses_never_crashes(head: bytes) -> None:
    try:
        parsed = parse_request_head(head)
    except BadRequest as exc:
        assert exc.status in (400, 501)
        return
    assert parsed.target.startswith("/")
    assert parsed.length >= 0
    assert not (parsed.chunked and b"content-length" in head.lower())


@pytest.mark.parametrize("redact", [False, True])
def test_a_body_nested_past_the_parser_is_recorded_opaque_and_recording_goes_on(
    proxy: object, raw: Any, redact: bool
) -> None:
    # json.loads gives up (RecursionError) on arrays nested 100,000 deep: the body is kept
    # as an opaque record (redacted as opaque text with --redact), and the next request is
    # recorded as usual
    deep = b"[" * 100_000 + b"]" * 100_000
    p = proxy(raw.url, *(["--redact"] if redact else []))  # type: ignore[operator]
    conn = p.connection()
    for body in (deep, b'{"id":"0123456789abcdef0123456789abcdef","name":"after"}'):
        conn.request("POST", "/api/public/traces", body=body)
        response = conn.getresponse()
        response.read()
        assert response.status == 201  # (the raw upstream's answer to a POST)
    conn.close()
    code, err = p.finish()
    assert code == 0, err
    assert "recording stopped" not in err
    first, second = read_all(p.output)
    assert len(first.body) == len(deep) and first.body_ids == ()
    if not redact:
        assert first.body == deep
    assert [span[2] for span in second.body_ids] == [0]  # the trace id, marked


def _writer_pid(proxy_pid: int) -> int:
    """The writer process the recording proxy `proxy_pid` started (its child)."""
    children = Path(f"/proc/{proxy_pid}/task/{proxy_pid}/children").read_text().split()
    for pid in map(int, children):
        if b"capture.record_writer" in Path(f"/proc/{pid}/cmdline").read_bytes():
            return pid
    raise AssertionError(f"no writer among {children}")


@pytest.mark.skipif(not hasattr(os, "SCHED_IDLE"), reason="scheduling policies are Linux's")
@pytest.mark.parametrize(("flags", "policy"), [((), "SCHED_BATCH"), (("idle",), "SCHED_IDLE")])
def test_the_writer_runs_at_the_priority_asked_and_records(
    proxy: object, raw: Any, flags: tuple[str, ...], policy: str
) -> None:
    argv = ("--writer-priority", *flags) if flags else ()
    p = proxy(raw.url, *argv)  # type: ignore[operator]
    assert os.sched_getscheduler(_writer_pid(p.proc.pid)) == getattr(os, policy)
    conn = p.connection()
    conn.request("POST", "/api/public/traces", body=b'{"id":"0123456789abcdef0123456789abcdef"}')
    conn.getresponse().read()
    conn.close()
    code, err = p.finish()
    assert code == 0, err
    assert len(read_all(p.output)) == 1
    made_by = str(meta_extra(p.output)["command"])
    assert ("--writer-priority idle" in made_by) == bool(flags)


@pytest.mark.parametrize("flags", [(), ("--busy-poll-us", "0"), ("--busy-poll-us", "50")])
def test_capture_record_takes_busy_poll_us_and_names_it_in_the_corpus(
    proxy: object, raw: Any, flags: tuple[str, ...]
) -> None:
    p = proxy(raw.url, *flags)  # type: ignore[operator]
    conn = p.connection()
    for _ in range(3):
        conn.request("POST", "/api/public/traces", body=b'{"id":"0123456789abcdef0123456789ab"}')
        assert conn.getresponse().read() is not None
    conn.close()
    code, err = p.finish()
    assert code == 0, err
    assert len(read_all(p.output)) == 3
    made_by = str(meta_extra(p.output)["command"])
    assert (" ".join(flags) in made_by) if flags else "--busy-poll-us" not in made_by
