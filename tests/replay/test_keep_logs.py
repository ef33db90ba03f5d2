"""`replay run --keep-logs`: the embedded sandbox's log is kept only when asked."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def test_the_sandbox_log_is_kept_only_when_asked(
    replay: Any, synth_corpus: Any, short_tmp: Path
) -> None:
    corpus = str(synth_corpus(rate=10, seconds=1))
    for keep, folder in ((False, short_tmp / "gone"), (True, short_tmp / "kept")):
        folder.mkdir()
        out = folder / "r.json"
        args = ["--workers", "1", "--out", str(out), *(["--keep-logs"] if keep else [])]
        done = replay(corpus, *args, env={"TMPDIR": str(folder)})
        assert done.returncode == 0, done.stderr
        logs = list(folder.glob("agenttrace-sandbox-*.log"))
        assert len(logs) == (1 if keep else 0), logs
        totals = json.loads(out.read_text())["totals"]
        assert totals["ok"] == totals["requests"] > 0
        for log in logs:
            assert log.read_text().strip()  # the sandbox's own lines (tests/sandbox: no secret)
