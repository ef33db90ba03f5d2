"""capture import mitmproxy (and HAR) on what mitmproxy itself wrote: `mitmdump` as a reverse
proxy in front of the sandbox records real requests (`-w` flows and its HAR export), and both
files are imported.

mitmproxy 12 needs Python 3.12 or later (mitmproxy 11, the last for 3.11, caps zstandard at
0.23 where the project pins 0.25), so it runs from a venv of its own that `make test` builds
where such a Python is found (tools/mitmproxy_venv.sh); the import runs in that venv too,
since the [mitmproxy] extra is installed there."""

from __future__ import annotations

import contextlib
import http.client
import itertools
import json
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from capture.corpus import CorpusReader, IdKind
from sandbox.process import start_sandbox

ROOT = Path(__file__).resolve().parents[2]
SIDE_VENV = ROOT / ".venv-mitmproxy" / "bin"
KEY = "sk-mitm-fixture-0002"


def _mitmproxy_bin() -> Path:
    """The bin directory of a Python that has the [mitmproxy] extra, or a skip saying why."""
    with contextlib.suppress(ImportError):
        import mitmproxy  # noqa: F401

        return Path(sys.executable).parent
    if (SIDE_VENV / "mitmdump").exists():
        return SIDE_VENV
    pytest.skip(
        "mitmproxy is not installed: it needs Python 3.12 or later (mitmproxy 11, the last "
        "for 3.11, caps zstandard at 0.23 where the project pins 0.25), and no .venv-mitmproxy "
        "was built (tools/mitmproxy_venv.sh found no such Python; set MITM_PYTHON)"
    )


@pytest.fixture
def mitm_bin() -> Path:
    return _mitmproxy_bin()


def _capture(bin_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(bin_dir / "python"), "-c", "from capture.cli import main; main()", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


@contextlib.contextmanager
def _mitmdump(bin_dir: Path, upstream: str, flows: Path, har: Path) -> Iterator[int]:
    """mitmdump in reverse mode on a free loopback port; yields the port; SIGINT at the end
    (it then finishes both files)."""
    proc = subprocess.Popen(
        [
            str(bin_dir / "mitmdump"),
            "--mode",
            f"reverse:{upstream}",
            "--listen-host",
            "127.0.0.1",
            "--listen-port",
            "0",
            "-w",
            str(flows),
            "--set",
            f"hardump={har}",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        assert proc.stdout is not None
        port = None
        for _ in range(50):  # its start-up lines, then the one naming the port
            line = proc.stdout.readline()
            found = re.search(r"listening at (?:http://)?127\.0\.0\.1:(\d+)", line)
            if found or not line:
                port = int(found.group(1)) if found else None
                break
        assert port, "mitmdump did not say where it listens"
        yield port
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _trace(i: int) -> dict[str, object]:
    return {
        "id": f"trace-mitm-{i}-0123456789ab",
        "name": "agent-run",
        "timestamp": f"2026-11-29T08:00:0{i}.000Z",
        "observations": [
            {
                "id": f"obs-mitm-{i}-0123456789ab",
                "type": "GENERATION",
                "name": "llm",
                "startTime": f"2026-11-29T08:00:0{i}.010Z",
                "model": "gpt-4o",
            }
        ],
    }


def test_what_mitmdump_recorded_imports_from_its_flows_and_its_har(
    mitm_bin: Path, tmp_path: Path
) -> None:
    flows, har = tmp_path / "flows", tmp_path / "flows.har"
    sent: list[tuple[str, str, bytes]] = []
    with (
        start_sandbox(api_keys={KEY: "proj-mitm"}) as sb,
        _mitmdump(mitm_bin, sb.url, flows, har) as port,
    ):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)  # kept alive
        auth = {"Authorization": f"Bearer {KEY}", "Cookie": "session=mitm-cookie-77"}
        for i in range(3):
            body = json.dumps(_trace(i)).encode()
            conn.request("POST", "/api/public/traces", body,
                         {**auth, "Content-Type": "application/json"})  # fmt: skip
            response = conn.getresponse()
            response.read()
            assert response.status == 200
            sent.append(("POST", "/api/public/traces", body))
        for path in ("/api/public/traces?limit=5", "/health"):
            conn.request("GET", path, headers=auth)
            conn.getresponse().read()
            sent.append(("GET", path, b""))
        conn.close()
    want = [s for s in sent if s[1].startswith("/api/public/")]  # /health is not the API
    for fmt, dump in (("mitmproxy", flows), ("har", har)):
        out = tmp_path / f"{fmt}.atc"
        done = _capture(mitm_bin, "import", fmt, str(dump), "-o", str(out))
        assert done.returncode == 0, done.stderr
        assert "skipped 1 not AgentTrace paths" in done.stderr, done.stderr
        with CorpusReader(out) as reader:
            got = list(reader)
        assert [(r.method, r.path, bytes(r.body)) for r in got] == want, fmt
        assert got[0].offset_ns == 0
        assert all(a.offset_ns <= b.offset_ns for a, b in itertools.pairwise(got))
        for i, record in enumerate(got[:3]):
            body = bytes(record.body)
            spans = {
                (IdKind(kind), body[start : start + length].decode())
                for start, length, kind in record.body_ids
            }
            assert (IdKind.TRACE, f"trace-mitm-{i}-0123456789ab") in spans, fmt
            assert (IdKind.OBSERVATION, f"obs-mitm-{i}-0123456789ab") in spans, fmt
        raw = out.read_bytes()
        assert KEY.encode() not in raw and b"mitm-cookie-77" not in raw, fmt


def test_a_file_mitmproxy_cannot_read_is_one_line(mitm_bin: Path, tmp_path: Path) -> None:
    bad = tmp_path / "not-flows"
    bad.write_bytes(b"12:not a flow,}")
    done = _capture(mitm_bin, "import", "mitmproxy", str(bad), "-o", str(tmp_path / "x.atc"))
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert str(bad) in line and "Traceback" not in done.stderr
