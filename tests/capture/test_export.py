"""capture export against a real sandbox holding known traces; resume; 429; replaying imports."""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import production as prod
import pytest

from capture.corpus import CorpusReader, IdKind
from capture.export import Api, ExportSpec, export_corpus, state_path
from capture.intake import iso_ms
from sandbox.process import SandboxProcess, start_sandbox

KEY = "sk-export-SECRET-KEY-0123456789"
T0_MS = 1_780_000_000_000  # 2026-05-28T...
# Known traces over three hours (so the export walks several one-hour windows), ms offsets
OFFSETS_MS = [0, 1, 1, 250, 999, 60_000, 3_599_999, 3_600_000, 3_600_001, 5_000_000] + [
    7_200_000 + 137_017 * i for i in range(25)
]


def capture(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from capture.cli import main; main()", *args],
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, **(env or {})},
    )


def _post(sb: SandboxProcess, body: dict[str, object]) -> None:
    parts = urlsplit(sb.url)
    for _ in range(50):  # the sandbox rate-limits: honour its Retry-After
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
        conn.request(
            "POST",
            "/api/public/traces",
            json.dumps(body),
            {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"},
        )
        answer = conn.getresponse()
        answer.read()
        conn.close()
        if answer.status != 429:
            assert answer.status == 200
            return
        time.sleep(float(answer.headers.get("Retry-After", "1")))
    raise AssertionError("rate limited for too long")


def _trace(i: int, at_ms: int) -> dict[str, object]:
    trace_id = f"{i:08x}" + "a1b2c3d4e5f60718293a4b5c"  # 32 characters: replay can mint it
    return {
        "id": trace_id if i else "short-id",
        "name": f"known-{i}",
        "timestamp": iso_ms(at_ms * 1_000_000),
        "input": {"q": f"question {i}"},
        "metadata": {"model": "gpt-4o"},
        "observations": [
            {
                "id": f"{i:08x}-0000-4000-8000-00000000000{k}",
                "type": "GENERATION",
                "startTime": iso_ms((at_ms + k) * 1_000_000),
                "model": "gpt-4o",
                "usage": {"input": 10 + i, "output": k},
            }
            for k in range(1 + i % 3)
        ],
    }


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxProcess]:
    with start_sandbox(port=0, api_keys={KEY: "proj-export"}, rate_limit=15.0, rate_burst=5) as sb:
        for i, offset in enumerate(OFFSETS_MS):
            _post(sb, _trace(i, T0_MS + offset))
        sb.flush()
        yield sb


def _range() -> list[str]:
    return [
        "--from",
        iso_ms((T0_MS - 60_000) * 1_000_000),
        "--to",
        iso_ms((T0_MS + 4 * 3_600_000) * 1_000_000),
    ]


def test_every_trace_comes_back_at_its_offset(sandbox: SandboxProcess, tmp_path: Path) -> None:
    out = tmp_path / "export.atc"
    key_file = tmp_path / "key"
    key_file.write_text(KEY + "\n")
    result = capture(
        "export",
        "--source",
        sandbox.url,
        "--api-key-file",
        str(key_file),
        *_range(),
        "-o",
        str(out),
    )
    assert result.returncode == 0, result.stderr
    assert "waits for 429" in result.stderr  # the rate limit was met and waited out
    with CorpusReader(out) as reader:
        assert reader.header.meta.created == iso_ms(T0_MS * 1_000_000)
        got = list(reader)
    assert [r.offset_ns for r in got] == [o * 1_000_000 for o in OFFSETS_MS]
    for i, record in enumerate(got):
        assert (record.method, record.path, record.endpoint) == (
            "POST",
            "/api/public/traces",
            "ingest",
        )
        body = json.loads(record.body)
        want = _trace(i, T0_MS + OFFSETS_MS[i])
        assert body["id"] == want["id"] and body["input"] == want["input"]
        assert [o["id"] for o in body["observations"]] == [o["id"] for o in want["observations"]]
        assert [o["usage"] for o in body["observations"]] == [
            o["usage"] for o in want["observations"]
        ]
        assert "projectId" not in body and "createdAt" not in body
        kinds = {k for _s, _n, k in record.body_ids}
        assert (IdKind.TRACE in kinds) == (i != 0)  # "short-id" cannot be minted: left as is
    assert KEY.encode() not in out.read_bytes() and KEY not in result.stderr
    assert not state_path(out).exists()


def test_api_key_from_environment_and_redact(sandbox: SandboxProcess, tmp_path: Path) -> None:
    out = tmp_path / "red.atc"
    result = capture(
        "export",
        "--source",
        sandbox.url,
        *_range(),
        "-o",
        str(out),
        "--redact",
        env={"AGENTTRACE_API_KEY": KEY},
    )
    assert result.returncode == 0, result.stderr
    with CorpusReader(out) as reader:
        records = list(reader)
    assert len(records) == len(OFFSETS_MS)
    text = b"".join(bytes(r.body) for r in records)
    assert b"question" not in text and b"known-" not in text and b"gpt-4o" in text


def test_interrupted_export_resumes(sandbox: SandboxProcess, tmp_path: Path) -> None:
    out = tmp_path / "resumed.atc"
    spec = ExportSpec(sandbox.url, KEY, T0_MS - 60_000, T0_MS + 4 * 3_600_000, out)
    lines: list[str] = []

    def stop_after_first_window(line: str) -> None:
        lines.append(line)
        if line.startswith("exported"):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        export_corpus(spec, stop_after_first_window, Api(spec.source, KEY))
    assert state_path(out).exists() and not out.exists()
    first_window = json.loads(state_path(out).read_text())["windows"][0][1]
    assert 0 < first_window < len(OFFSETS_MS)
    resumed = ExportSpec(sandbox.url, KEY, 0, 0, out, resume=True)
    result = export_corpus(resumed, lines.append, Api(spec.source, KEY))
    assert result.resumed_from == first_window
    assert result.written == len(OFFSETS_MS)
    with CorpusReader(out) as reader:
        assert [r.offset_ns for r in reader] == [o * 1_000_000 for o in OFFSETS_MS]


def test_unreachable_source_and_bad_arguments(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, not listening: connections are refused
        result = capture(
            "export",
            "--source",
            f"http://127.0.0.1:{port}",
            "--since",
            "1h",
            "-o",
            str(tmp_path / "x.atc"),
            env={"AGENTTRACE_API_KEY": KEY},
        )
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert f"127.0.0.1:{port}" in result.stderr and "unreachable" in result.stderr
    assert KEY not in result.stderr
    neither = capture(
        "export",
        "--source",
        "http://127.0.0.1:1",
        "-o",
        str(tmp_path / "x.atc"),
        env={"AGENTTRACE_API_KEY": KEY},
    )
    assert neither.returncode == 2 and "--since" in neither.stderr


def test_refused_key_is_one_line(sandbox: SandboxProcess, tmp_path: Path) -> None:
    result = capture(
        "export",
        "--source",
        sandbox.url,
        "--since",
        "1h",
        "-o",
        str(tmp_path / "x.atc"),
        env={"AGENTTRACE_API_KEY": "sk-wrong"},
    )
    assert result.returncode == 2 and "refused" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_imported_corpus_replays_against_the_sandbox(tmp_path: Path) -> None:
    gor = tmp_path / "fleet.gor"
    prod.write_gor(list(prod.requests(seed=5, rate=40, duration_s=3)), str(gor))
    out = tmp_path / "fleet.atc"
    assert capture("import", "goreplay", str(gor), "-o", str(out)).returncode == 0
    results = tmp_path / "results.json"
    replay = [sys.executable, "-c", "from replay.cli import main; main()", "run", str(out)]
    run = subprocess.run(
        [*replay, "--duration", "2s", "--workers", "1", "--out", str(results)],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    totals = json.loads(results.read_text())["totals"]
    assert totals["requests"] > 50
    # every ingestion, batch and read is accepted: ids were minted, bodies valid JSON
    assert totals["errors"] == 0, json.loads(results.read_text())["endpoints"]


@pytest.mark.parametrize("left", ["empty", "chunk cut"])
def test_resume_when_the_partial_holds_less_than_the_state_claims(
    sandbox: SandboxProcess, tmp_path: Path, left: str
) -> None:
    """A crash can leave the state file ahead of the corpus (an older writer's state, a lost
    write): --resume keeps only what the partial really holds, never an error."""
    out = tmp_path / "ahead.atc"
    spec = ExportSpec(sandbox.url, KEY, T0_MS - 60_000, T0_MS + 4 * 3_600_000, out)

    def stop_after_first_window(line: str) -> None:
        if line.startswith("exported"):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        export_corpus(spec, stop_after_first_window, Api(spec.source, KEY))
    assert json.loads(state_path(out).read_text())["windows"][0][1] > 0
    partial = out.with_name(out.name + ".partial")
    if left == "empty":
        partial.write_bytes(b"")
    else:  # the header and metadata whole, the only chunk cut short
        os.truncate(partial, partial.stat().st_size - 10)
    lines: list[str] = []
    result = export_corpus(
        ExportSpec(sandbox.url, KEY, 0, 0, out, resume=True), lines.append, Api(sandbox.url, KEY)
    )
    assert result.resumed_from == 0 and result.written == len(OFFSETS_MS)
    if left == "empty":
        assert any("empty, nothing kept: starting from the beginning" in x for x in lines)
    with CorpusReader(out) as reader:
        bodies = [json.loads(r.body) for r in reader]
    assert [b["id"] for b in bodies] == [_trace(i, 0)["id"] for i in range(len(OFFSETS_MS))]
    assert not state_path(out).exists()


def test_resume_after_kill_9(sandbox: SandboxProcess, tmp_path: Path) -> None:
    """kill -9 as soon as the state file appears: the state claims no more than the partial
    holds, and --resume gives every trace once, the same bytes as an uninterrupted export."""
    out = tmp_path / "killed.atc"
    args = [*_range(), "-o", str(out)]
    cmd = [sys.executable, "-c", "from capture.cli import main; main()", "export"]
    env = {**os.environ, "AGENTTRACE_API_KEY": KEY}
    proc = subprocess.Popen(
        [*cmd, "--source", sandbox.url, *args], env=env, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 120
        while not state_path(out).exists() and proc.poll() is None:
            assert time.monotonic() < deadline, "no export state file within 120 s"
            time.sleep(0.005)
        proc.kill()
    finally:
        proc.kill()
        proc.wait(timeout=30)
    assert proc.returncode == -9 and state_path(out).exists() and not out.exists()
    claimed = json.loads(state_path(out).read_text())["windows"]
    partial = out.with_name(out.name + ".partial")
    if partial.exists() and partial.stat().st_size:
        with CorpusReader(partial, recover=True) as reader:
            held = reader.header.records
    else:
        held = 0
    assert all(count <= held for _end, count in claimed)
    resumed = capture("export", "--source", sandbox.url, *args, "--resume", env=env)
    assert resumed.returncode == 0, resumed.stderr
    with CorpusReader(out) as reader:
        bodies = [json.loads(r.body) for r in reader]
    assert [b["id"] for b in bodies] == [_trace(i, 0)["id"] for i in range(len(OFFSETS_MS))]
    whole = tmp_path / "whole.atc"
    uninterrupted = capture("export", "--source", sandbox.url, *_range(), "-o", str(whole), env=env)
    assert uninterrupted.returncode == 0, uninterrupted.stderr
    assert whole.read_bytes() == out.read_bytes()
