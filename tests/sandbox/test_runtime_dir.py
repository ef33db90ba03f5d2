"""The sandbox starts however deep $TMPDIR is: its queue socket's path must fit a Unix socket
address (108 bytes on Linux), so a deeper $TMPDIR makes it use /tmp instead."""

from __future__ import annotations

import json
import os
import urllib.request
from pathlib import Path

import pytest

from sandbox.process import start_sandbox


def test_a_tmpdir_too_deep_for_a_unix_socket_still_starts(
    short_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tempfile

    deep = short_tmp / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    assert len(os.fsencode(deep / "agenttrace-sandbox-xxxxxxxx" / "queue.sock")) > 108
    monkeypatch.setenv("TMPDIR", str(deep))
    monkeypatch.setattr(tempfile, "tempdir", str(deep))
    with start_sandbox() as sb:
        auth = {"Authorization": f"Bearer {sb.api_key}"}
        body = json.dumps({"id": "deep-tmpdir-1", "name": "t", "observations": []}).encode()
        post = urllib.request.Request(
            sb.url + "/api/public/traces",
            data=body,
            headers={"Content-Type": "application/json", **auth},
        )
        with urllib.request.urlopen(post, timeout=30) as answer:
            assert answer.status == 200
        sb.flush()  # through the queue socket to the store
        get = urllib.request.Request(sb.url + "/api/public/traces/deep-tmpdir-1", headers=auth)
        with urllib.request.urlopen(get, timeout=30) as answer:
            assert json.load(answer)["id"] == "deep-tmpdir-1"
    assert list(deep.iterdir()) == []  # nothing of it left in $TMPDIR either
