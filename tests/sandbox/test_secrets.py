"""The sandbox's API keys and admin token: never on a command line, never in its log, nothing
left in $TMPDIR (a signal during start-up included), compared in constant time."""

from __future__ import annotations

import hmac
import json
import os
import signal
import subprocess
import sys
import textwrap
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from sandbox import auth as auth_module
from sandbox.app import App, Keys, Services
from sandbox.process import start_sandbox
from sandbox.wire import Request

KEY = "sk-secret-7f3a91c2"
TOKEN = "admin-secret-51be0d"
PREFIX = "agenttrace-sandbox-"


@pytest.fixture
def tmpdir_env(short_tmp: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A private $TMPDIR for this process and the sandboxes it starts."""
    import tempfile

    monkeypatch.setenv("TMPDIR", str(short_tmp))
    monkeypatch.setattr(tempfile, "tempdir", str(short_tmp))
    yield short_tmp


def _leftovers(tmp: Path) -> list[str]:
    return sorted(p.name for p in tmp.iterdir() if p.name.startswith(PREFIX))


def _command_lines(pid: int) -> list[str]:
    parent = psutil.Process(pid)
    return [" ".join(p.cmdline()) for p in [parent, *parent.children(recursive=True)]]


def test_no_secret_on_any_command_line_or_in_the_log(tmpdir_env: Path) -> None:
    with start_sandbox(api_keys={KEY: "proj-s"}, admin_token=TOKEN) as sb:
        lines = _command_lines(sb.pid)
        assert len(lines) >= 3  # supervisor, worker, pod
        for line in lines:
            assert KEY not in line and TOKEN not in line, line
        request = urllib.request.Request(
            sb.url + "/api/public/traces", headers={"Authorization": f"Bearer {KEY}"}
        )
        with urllib.request.urlopen(request, timeout=30) as answer:
            assert answer.status == 200  # the key reached the sandbox all the same
        sb.flush()  # the admin token too
        log = sb.read_log()
        assert "AgentTrace sandbox on" in log
        assert KEY not in log and TOKEN not in log
        assert not [name for name in _leftovers(tmpdir_env) if name.endswith(".log")]
    assert _leftovers(tmpdir_env) == []  # no log file, no runtime directory


def test_a_generated_key_is_not_logged_and_keep_logs_keeps_a_clean_log(tmpdir_env: Path) -> None:
    sb = start_sandbox(keep_logs=True)
    try:
        assert sb.log_path is not None and sb.log_path.parent == tmpdir_env
    finally:
        sb.stop()
    text = sb.log_path.read_text()
    assert "AgentTrace sandbox on" in text
    assert sb.api_key not in text and sb.admin_token not in text
    sb.log_path.unlink()


_STARTER = textwrap.dedent(
    """
    import sys
    from sandbox.process import start_sandbox
    print("starting", flush=True)
    with start_sandbox(api_keys={%r: "proj-s"}, admin_token=%r):
        print("started", flush=True)
        sys.stdin.read()
    """
)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_during_start_up_leaves_nothing_behind(tmpdir_env: Path, sig: int) -> None:
    env = dict(os.environ, TMPDIR=str(tmpdir_env))
    with subprocess.Popen(
        [sys.executable, "-c", _STARTER % (KEY, TOKEN)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
        text=True,
        # SIGINT must be able to interrupt it even where this suite runs with SIGINT ignored
        # (a shell's background job): Python raises KeyboardInterrupt only over the default
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    ) as caller:
        assert caller.stdout is not None
        assert caller.stdout.readline().strip() == "starting"
        supervisors = psutil.Process(caller.pid).children()
        caller.send_signal(sig)  # within start_sandbox: it waits for the ready line
        caller.wait(timeout=60)
        _, alive = psutil.wait_procs(supervisors, timeout=60)
        assert not alive  # the sandbox it started stopped too
    assert _leftovers(tmpdir_env) == []


def _foreground(args: list[str], env: dict[str, str]) -> tuple[subprocess.Popen[str], list[str]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "sandbox", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
        text=True,
    )
    assert proc.stdout is not None
    banner = []
    while not banner or "try:" not in banner[-1]:
        line = proc.stdout.readline()
        assert line, f"the sandbox ended before its banner: {banner}"
        banner.append(line)
    return proc, banner


def _status(url: str, key: str) -> int:
    request = urllib.request.Request(
        url + "/api/public/traces", headers={"Authorization": f"Bearer {key}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as exc:
        exc.close()
        return int(exc.code)


@pytest.mark.parametrize("source", ["file", "env"])
def test_people_give_secrets_by_file_or_environment(tmp_path: Path, source: str) -> None:
    env = dict(os.environ)
    if source == "file":
        keys = tmp_path / "keys"
        keys.write_text(f"# keys\n{KEY}:proj-s\n\nsk-other:proj-t\n")
        token = tmp_path / "token"
        token.write_text(TOKEN + "\n")
        args = ["--api-key-file", str(keys), "--admin-token-file", str(token)]
    else:
        env.update(API_KEYS=f"{KEY}:proj-s,sk-other:proj-t", ADMIN_TOKEN=TOKEN)
        args = []
    proc, banner = _foreground(args, env)
    try:
        url = banner[0].split(" on ")[1].split()[0]
        assert _status(url, KEY) == 200 and _status(url, "sk-other") == 200
        assert _status(url, "sk-wrong") == 401
        text = "".join(banner)
        assert KEY not in text and TOKEN not in text and "(given)" in text
        for line in _command_lines(proc.pid):
            assert KEY not in line and TOKEN not in line
    finally:
        proc.terminate()
        status = proc.wait(timeout=60)
        assert proc.stdout is not None
        proc.stdout.close()
    assert status == 0


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (f"{KEY}\n", "--api-key-file {path}, line 1: expected KEY:PROJECT"),
        (
            f"\n# c\n{KEY}:a\n{KEY}:b\n",
            "--api-key-file {path}, line 4: an API key is given for two",
        ),
    ],
)
def test_a_bad_key_file_is_one_line_naming_the_line_without_the_key(
    tmp_path: Path, content: str, expected: str
) -> None:
    path = tmp_path / "keys"
    path.write_text(content)
    done = subprocess.run(
        [sys.executable, "-m", "sandbox", "--port", "0", "--api-key-file", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and expected.format(path=path) in lines[0], done.stderr
    assert KEY not in done.stderr


# --- constant-time comparisons -------------------------------------------------------------


def _app() -> App:
    services = Services(
        enqueue=lambda project, items: None,
        flush=lambda timeout: True,
        run=lambda fn, *args: ([], 0),
        metrics_text=lambda: (b"", "text/plain"),
        ready=lambda: True,
    )
    return App(Keys({KEY: "proj-s"}, TOKEN), services)


def _get(app: App, path: str, token: str, method: str = "GET") -> int:
    request = Request(method, path, "", {"authorization": f"Bearer {token}"}, b"")
    return app.handle(request).status


def test_tokens_and_keys_are_compared_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    compared: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(auth_module.hmac, "compare_digest", spy)
    app = _app()
    assert _get(app, "/api/public/traces", KEY) == 200
    assert (KEY.encode(), KEY.encode()) in compared
    compared.clear()
    assert _get(app, "/admin/flush", TOKEN[:-1] + "x", "POST") == 401
    assert _get(app, "/admin/flush", TOKEN, "POST") == 200
    assert {TOKEN.encode()} == {b for _, b in compared} and len(compared) == 2


def test_secrets_pipe_round_trip() -> None:
    from sandbox.secrets_input import Secrets, encode_pipe, read_pipe

    read_fd, write_fd = os.pipe()
    os.write(write_fd, encode_pipe({KEY: "proj-s"}, TOKEN))
    os.close(write_fd)
    secrets = Secrets()
    read_pipe(read_fd, secrets)
    assert secrets.api_keys == {KEY: "proj-s"} and secrets.admin_token == TOKEN
    assert json.loads(encode_pipe({}, None)) == {"api_keys": {}, "admin_token": ""}
