"""No credential reaches a results file, a summary, a progress line or a merged file; a
--target with userinfo is refused in one line that does not repeat the password."""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from hostile import assert_one_line_error, run_command

SECRET = "sk_live_SECRET123:proj"


@pytest.fixture
def listener() -> Iterator[str]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    yield f"127.0.0.1:{sock.getsockname()[1]}"
    sock.close()


def test_userinfo_in_target_is_refused_without_repeating_it(listener: str) -> None:
    ran = run_command("replay", "run", "--target", f"http://user:hunter2@{listener}", "-q")
    line = assert_one_line_error(ran, "credentials in the URL", "--api-key")
    assert "hunter2" not in ran.stderr + ran.stdout
    assert "user:" not in line


def test_api_key_never_reaches_results_summary_or_progress(
    tiny_server_url: str, tmp_path: Path, small_corpus: Path
) -> None:
    out = tmp_path / "r.json"
    ran = run_command(
        "replay", "run", str(small_corpus), "--target", tiny_server_url,
        "--api-key", SECRET, "--duration", "2s", "--workers", "1", "--out", str(out),
        timeout=120,
    )  # fmt: skip
    assert ran.status == 0, ran.stderr
    text = out.read_text()
    assert SECRET not in text and "SECRET123" not in ran.stdout + ran.stderr
    command_line = json.loads(text)["meta"]["command_line"]
    assert re.search(r"--api-key '?\*\*\*'?", command_line), command_line
    # a merge of it carries nothing more
    merged = tmp_path / "m.json"
    again = run_command("replay", "merge", str(out), "-o", str(merged))
    assert again.status == 0, again.stderr
    assert "SECRET123" not in merged.read_text() + again.stdout


def test_merge_redacts_what_older_files_hold(tmp_path: Path, results_doc: dict) -> None:
    # A file written before redaction (or by hand) holds a key and a password: merge drops them
    results_doc["meta"]["command_line"] = f"replay run --api-key {SECRET} --rate 5"
    results_doc["meta"]["target"] = "http://admin:pa55word@127.0.0.1:9"
    path = tmp_path / "old.json"
    path.write_text(json.dumps(results_doc))
    merged = tmp_path / "m.json"
    ran = run_command("replay", "merge", str(path), "-o", str(merged))
    assert ran.status == 0, ran.stderr
    for where in (merged.read_text(), ran.stdout):
        assert "SECRET123" not in where and "pa55word" not in where
    meta = json.loads(merged.read_text())["meta"]
    assert meta["target"] == "http://***@127.0.0.1:9"
    assert "--api-key '***'" in meta["command_line"] or "--api-key ***" in meta["command_line"]
