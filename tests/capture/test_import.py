"""capture import: HAR and GoReplay fixtures written here, read back as corpora; bad input."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
import zlib
from pathlib import Path

import production as prod
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from capture.corpus import CorpusReader, IdKind
from capture.goreplay import read_gor
from capture.har import read_har
from capture.httphead import head_problem


def capture(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from capture.cli import main; main()", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def records(path: Path) -> list:
    with CorpusReader(path) as reader:
        return list(reader)


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


@pytest.fixture(scope="module")
def sample() -> list[prod.Request]:
    return list(prod.requests(seed=3, rate=50, duration_s=4))


def _expected(reqs: list[prod.Request]) -> list[prod.Request]:
    """What an import keeps: AgentTrace paths, in time order."""
    kept = [r for r in reqs if r.path.startswith("/api/public/")]
    return sorted(kept, key=lambda r: r.at_ns)


def test_har_entries_unsorted_bodies_and_credentials(tmp_path: Path, sample) -> None:
    reqs = list(reversed(sample))  # HAR entries in any order: startedDateTime is the timeline
    entries = [prod.har_entry(r, base64_body=i % 3 == 0) for i, r in enumerate(reqs)]
    for entry in entries[::4]:  # HTTP/2 pseudo-headers, as devtools exports them
        entry["request"]["headers"].insert(0, {"name": ":authority", "value": "api.example.com"})
    har = tmp_path / "fleet.har"
    har.write_text(json.dumps(prod.har(entries)))
    out = tmp_path / "fleet.atc"
    result = capture("import", "har", str(har), "-o", str(out))
    assert result.returncode == 0, result.stderr
    got = records(out)
    want = _expected(sample)
    assert len(got) == len(want)
    start = want[0].at_ns // 1000 * 1000
    # HAR times have microseconds: offsets are exact to the microsecond (ties in any order)
    assert sorted((r.offset_ns, r.method, r.path, bytes(r.body)) for r in got) == sorted(
        (q.at_ns // 1000 * 1000 - start, q.method, q.path, q.body) for q in want
    )
    for record in got:
        names = {k.lower() for k, _ in record.headers}
        assert names in ({"content-type"}, set())  # (User-Agent: replay sends its own)
        assert head_problem(record.method, record.path, record.headers) is None
    raw = out.read_bytes()
    for secret in (prod.SECRET, prod.COOKIE):
        assert secret.encode() not in raw
    with CorpusReader(out) as reader:
        assert reader.header.meta.source == "har"


def test_har_form_params_and_kept_other_paths(tmp_path: Path) -> None:
    entry = prod.har_entry(prod.Request(prod.EPOCH_NS, "POST", "/hooks/form", (), b""))
    entry["request"]["postData"] = {
        "mimeType": "application/x-www-form-urlencoded",
        "params": [{"name": "a", "value": "1 2"}, {"name": "b", "value": "x&y"}],
    }
    har = tmp_path / "form.har"
    har.write_text(json.dumps(prod.har([entry])))
    dropped = capture("import", "har", str(har), "-o", str(tmp_path / "none.atc"))
    assert dropped.returncode == 0 and "skipped 1 not AgentTrace paths" in dropped.stderr
    assert records(tmp_path / "none.atc") == []
    out = tmp_path / "form.atc"
    assert capture("import", "har", str(har), "--path", "/hooks/", "-o", str(out)).returncode == 0
    (record,) = records(out)
    assert record.endpoint == "other"
    assert bytes(record.body) == b"a=1+2&b=x%26y"
    assert capture("inspect", str(out)).stdout.count("1 opaque") == 1


def test_gor_requests_only_chunked_and_gzip_bodies(tmp_path: Path, sample) -> None:
    gor = tmp_path / "fleet.gor"
    prod.write_gor(sample, str(gor))  # with response records (type 2), which are skipped
    chunked_body = b'{"id":"0123456789abcdef0123456789abcdef","observations":[]}'
    chunks = b"10\r\n" + chunked_body[:16] + b"\r\n" + b"%x\r\n" % (len(chunked_body) - 16)
    chunks += chunked_body[16:] + b"\r\n0\r\n\r\n"
    chunked = (
        b"POST /api/public/traces HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
        b"Content-Type: application/json\r\n\r\n" + chunks
    )
    packed = gzip.compress(chunked_body)
    gzipped = (
        b"POST /api/public/traces HTTP/1.1\r\nHost: x\r\nContent-Encoding: gzip\r\n"
        b"Content-Length: %d\r\n\r\n" % len(packed) + packed
    )
    last = max(r.at_ns for r in sample)
    with open(gor, "ab") as f:
        for n, raw in enumerate((chunked, gzipped)):
            f.write(b"1 %024x %d 0\n" % (n + 10**6, last + 1000 + n) + raw + "\n🐵🙈🙉\n".encode())
    out = tmp_path / "fleet.atc"
    result = capture("import", "goreplay", str(gor), "-o", str(out))
    assert result.returncode == 0, result.stderr
    got = records(out)
    want = _expected(sample)
    assert len(got) == len(want) + 2
    for record, req in zip(got, want, strict=False):
        assert record.offset_ns == req.at_ns - want[0].at_ns  # ns timestamps: exact
        assert bytes(record.body) == req.body
    for record in got[-2:]:
        assert bytes(record.body) == chunked_body
        assert all(
            k.lower() not in ("content-encoding", "transfer-encoding") for k, _ in record.headers
        )
        assert list(record.body_ids) == [(7, 32, int(IdKind.TRACE))]
    assert prod.SECRET.encode() not in out.read_bytes()


def test_gzipped_gor_file(tmp_path: Path, sample) -> None:
    plain = tmp_path / "a.gor"
    prod.write_gor(sample, str(plain), responses=False)
    packed = tmp_path / "a.gor.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    assert capture("import", "goreplay", str(plain), "-o", str(tmp_path / "a.atc")).returncode == 0
    assert capture("import", "goreplay", str(packed), "-o", str(tmp_path / "b.atc")).returncode == 0
    assert records(tmp_path / "a.atc") == records(tmp_path / "b.atc")


def test_bad_inputs_are_one_line(tmp_path: Path, sample) -> None:
    not_json = tmp_path / "broken.har"
    not_json.write_text('{"log": {"entries": [')
    line = one_line_error(capture("import", "har", str(not_json), "-o", str(tmp_path / "o.atc")))
    assert "broken.har" in line and "not JSON" in line
    not_har = tmp_path / "other.har"
    not_har.write_text('{"hello": 1}')
    line = one_line_error(capture("import", "har", str(not_har), "-o", str(tmp_path / "o.atc")))
    assert "other.har" in line and "not a HAR file" in line
    bad_time = tmp_path / "time.har"
    entry = prod.har_entry(sample[0])
    entry["startedDateTime"] = "yesterday"
    bad_time.write_text(json.dumps(prod.har([entry])))
    line = one_line_error(capture("import", "har", str(bad_time), "-o", str(tmp_path / "o.atc")))
    assert "time.har: entry 0" in line
    gor = tmp_path / "cut.gor"
    prod.write_gor(sample[:3], str(gor), responses=False)
    gor.write_bytes(gor.read_bytes() + b"1 abc 123 0\nPOST /api/public/traces HTTP/1.1\r\n\r\n{}")
    line = one_line_error(capture("import", "goreplay", str(gor), "-o", str(tmp_path / "o.atc")))
    assert "cut.gor: record 4" in line and "separator" in line
    assert not (tmp_path / "o.atc").exists()
    junk = tmp_path / "junk.gor"
    prod.write_gor(sample[:2], str(junk), responses=False)
    junk.write_bytes(junk.read_bytes() + "hello world foo\nbar\n🐵🙈🙉\n".encode())
    line = one_line_error(capture("import", "goreplay", str(junk), "-o", str(tmp_path / "o.atc")))
    assert "junk.gor: record 3" in line and "bad record type 'hello'" in line
    assert not (tmp_path / "o.atc").exists()
    missing = one_line_error(capture("import", "har", str(tmp_path / "nope.har"), "-o", "x.atc"))
    assert "nope.har" in missing


def test_invalid_heads_are_skipped_and_counted(tmp_path: Path) -> None:
    req = prod.Request(prod.EPOCH_NS, "POST", "/api/public/traces", (("X-Note", "a\x01b"),), b"{}")
    ok = prod.Request(prod.EPOCH_NS + 1, "POST", "/api/public/traces", (), b"{}")
    har = tmp_path / "heads.har"
    har.write_text(json.dumps(prod.har([prod.har_entry(req), prod.har_entry(ok)])))
    out = tmp_path / "heads.atc"
    result = capture("import", "har", str(har), "-o", str(out))
    assert result.returncode == 0 and "1 invalid request heads" in result.stderr
    assert len(records(out)) == 1


def test_deflate_body_is_stored_decoded(tmp_path: Path) -> None:
    body = b'{"id":"t"}'
    req = prod.Request(
        prod.EPOCH_NS, "POST", "/api/public/traces", (("Content-Encoding", "deflate"),),
        zlib.compress(body),
    )  # fmt: skip
    gor = tmp_path / "d.gor"
    prod.write_gor([req], str(gor), responses=False)
    assert capture("import", "goreplay", str(gor), "-o", str(tmp_path / "d.atc")).returncode == 0
    (record,) = records(tmp_path / "d.atc")
    assert bytes(record.body) == body


# --- the parsers, property-based -------------------------------------------------------------

tokens = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-", min_size=1, max_size=12
)
values = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=30)
requests_st = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=10**12),
        st.sampled_from(["GET", "POST", "PUT"]),
        st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=30),
        st.lists(st.tuples(tokens, values.map(str.strip)), max_size=4),
        st.binary(max_size=300),
    ),
    max_size=8,
)


@settings(max_examples=60, deadline=None)
@given(reqs=requests_st, chunked=st.booleans())
def test_gor_round_trip(tmp_path_factory: pytest.TempPathFactory, reqs, chunked: bool) -> None:
    path = tmp_path_factory.mktemp("gor") / "r.gor"
    with open(path, "wb") as f:
        for n, (at, method, target, headers, body) in enumerate(reqs):
            head = f"{method} /{target} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers)
            if chunked:
                framed = (b"%x\r\n%s\r\n" % (len(body), body) if body else b"") + b"0\r\n\r\n"
                head += "Transfer-Encoding: chunked\r\n"
            else:
                framed = body
                head += f"Content-Length: {len(body)}\r\n"
            f.write(
                b"1 %x %d 0\n" % (n, at) + head.encode() + b"\r\n" + framed + "\n🐵🙈🙉\n".encode()
            )
            f.write(b"2 %x %d 5\nHTTP/1.1 204 No Content\r\n\r\n" % (n, at) + "\n🐵🙈🙉\n".encode())
    got = list(read_gor([path]))
    assert [(c.at_ns, c.method, c.target, c.body) for c in got] == [
        (at, method, f"/{target}", body) for at, method, target, _h, body in reqs
    ]
    for c, (_at, _m, _t, headers, _b) in zip(got, reqs, strict=True):
        assert c.headers[: len(headers)] == tuple(headers)


@settings(max_examples=60, deadline=None)
@given(reqs=requests_st, b64=st.booleans())
def test_har_round_trip(tmp_path_factory: pytest.TempPathFactory, reqs, b64: bool) -> None:
    path = tmp_path_factory.mktemp("har") / "r.har"
    entries = []
    for at, method, target, headers, body in reqs:
        if not b64:
            body = body.decode("latin-1").encode("utf-8")  # HAR text is text
        req = prod.Request(prod.EPOCH_NS + at * 1000, method, f"/{target}", tuple(headers), body)
        entries.append(prod.har_entry(req, base64_body=b64))
    path.write_text(json.dumps(prod.har(entries)))
    got = list(read_har([path]))
    want = sorted(
        ((prod.EPOCH_NS + at * 1000, i) for i, (at, *_rest) in enumerate(reqs)),
    )
    assert [c.at_ns for c in got] == [t for t, _i in want]
    for c, (_t, i) in zip(got, want, strict=True):
        at, method, target, headers, body = reqs[i]
        assert c.method == method and c.target == f"https://api.example.com/{target}"
        assert c.headers == tuple(headers)
        assert c.body == (body if b64 else body.decode("latin-1").encode("utf-8"))


@settings(max_examples=100, deadline=None)
@given(
    times=st.lists(st.integers(min_value=0, max_value=50), max_size=40),
    window=st.integers(min_value=1, max_value=50),
    window_bytes=st.integers(min_value=1, max_value=200),
)
def test_reorder_window(times: list[int], window: int, window_bytes: int) -> None:
    from capture.intake import Captured, Tally, in_time_order

    caps = [Captured(t, "GET", "/", (), b"x" * (i % 7), str(i)) for i, t in enumerate(times)]
    tally = Tally()
    out = list(in_time_order(caps, tally, window, window_bytes))
    assert sorted(c.where for c in out) == sorted(c.where for c in caps)  # nothing lost
    assert [c.at_ns for c in out] == sorted(c.at_ns for c in out)  # time order
    moved = sum(c.at_ns != times[int(c.where)] for c in out)
    assert tally.late == moved
    if window >= len(times) and window_bytes >= 7 * len(times):
        assert tally.late == 0 and [c.at_ns for c in out] == sorted(times)


CHROMIUM_HAR = Path(__file__).parent / "data" / "chromium.har"


def test_a_har_recorded_by_a_real_browser(tmp_path: Path) -> None:
    # data/chromium.har: Chromium (through Playwright) recorded its page posting three traces
    # and one ingestion batch, listing and reading traces, and two requests that are not
    # AgentTrace's API (make_chromium_har.py, beside it, says what the page sent)
    out = tmp_path / "chromium.atc"
    result = capture("import", "har", str(CHROMIUM_HAR), "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert "skipped 2 not AgentTrace paths" in result.stderr  # /health, /not-agenttrace/status
    got = records(out)
    assert [(r.method, r.path.split("?")[0]) for r in got] == [
        *[("POST", "/api/public/traces")] * 3,
        ("POST", "/api/public/ingestion"),
        ("GET", "/api/public/traces"),
        ("GET", "/api/public/traces/trace-chromium-0-a1b2c3d4e5f6"),
    ]
    # the timeline is the browser's startedDateTime, to the millisecond it wrote
    entries = json.loads(CHROMIUM_HAR.read_text())["log"]["entries"]
    kept = [e for e in entries if "/api/public/" in e["request"]["url"]]
    assert len(kept) == len(got)
    # (it starts at the first request kept: the page's first, /health, leaves no lead-in)
    assert [r.offset_ns / 1_000_000 for r in got] == [
        round(_ms(e["startedDateTime"]) - _ms(kept[0]["startedDateTime"])) for e in kept
    ]
    for i, record in enumerate(got[:3]):
        body = bytes(record.body)
        doc = json.loads(body)
        assert doc["id"] == f"trace-chromium-{i}-a1b2c3d4e5f6" == record.trace
        spanned = {
            (IdKind(kind), body[start : start + length].decode())
            for start, length, kind in record.body_ids
        }
        assert (IdKind.TRACE, doc["id"]) in spanned
        assert {(IdKind.OBSERVATION, o["id"]) for o in doc["observations"]} <= spanned
        assert (IdKind.TIMESTAMP, doc["timestamp"]) in spanned
    batch = got[3]
    assert batch.trace == "trace-chromium-batch-a1b2c3d4e5f6"
    (path_span,) = got[5].path_ids
    start, length, kind = path_span
    assert (IdKind(kind), got[5].path[start : start + length]) == (
        IdKind.TRACE_REF, "trace-chromium-0-a1b2c3d4e5f6",
    )  # fmt: skip
    for record in got:  # a browser's headers less credentials and hop-by-hop ones
        names = {k.lower() for k, _ in record.headers}
        assert "accept-language" in names
        assert not names & {"authorization", "cookie", "connection", "host", "content-length"}
        assert head_problem(record.method, record.path, record.headers) is None
    assert b"sk-har-fixture-0001" not in out.read_bytes()  # the page's throwaway API key


def _ms(stamp: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp() * 1000


def test_a_body_nested_past_the_parser_imports_as_opaque_and_fits(tmp_path: Path) -> None:
    # json.loads gives up (RecursionError) on arrays nested 100,000 deep: import keeps the
    # body as an opaque record, with --redact too, and fit learns from the corpus
    deep = b"[" * 100_000 + b"]" * 100_000
    entry = prod.har_entry(prod.Request(prod.EPOCH_NS, "POST", "/api/public/traces", (), deep))
    har = tmp_path / "deep.har"
    har.write_text(json.dumps(prod.har([entry])))
    for flags in ((), ("--redact",)):
        out = tmp_path / f"deep{len(flags)}.atc"
        result = capture("import", "har", str(har), *flags, "-o", str(out))
        assert result.returncode == 0, result.stderr
        (record,) = records(out)
        assert len(record.body) == len(deep) and record.body_ids == ()
        assert capture("inspect", str(out)).stdout.count("1 opaque") == 1
        fitted = capture("fit", str(out), "-o", str(tmp_path / f"p{len(flags)}.json"))
        assert fitted.returncode == 0, fitted.stderr
