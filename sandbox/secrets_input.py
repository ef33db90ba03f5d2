"""Where the sandbox's API keys and admin token come from, other than its command line.

A command line is world-readable (``ps``, ``/proc/PID/cmdline``), so secrets given there
are visible to every user of the machine. People can instead give them in a file
(``--api-key-file``, ``--admin-token-file``) or in the environment (``API_KEYS``,
``ADMIN_TOKEN``), both readable by their owner alone; :func:`sandbox.process.start_sandbox`
hands them to its child on an inherited pipe (``--secrets-fd``), which nothing else can read.

Formats: a key file holds one ``KEY:PROJECT`` per line (blank lines and ``#`` comments are
ignored); ``API_KEYS`` holds ``KEY:PROJECT`` entries separated by commas or whitespace; a
token file's first line is the token. The pipe carries one JSON object,
``{"api_keys": {key: project}, "admin_token": token}``.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from sandbox.config import parse_api_key

API_KEYS_ENV = "API_KEYS"
ADMIN_TOKEN_ENV = "ADMIN_TOKEN"
MAX_SECRETS_BYTES = 16 * 1024 * 1024


class SecretsError(ValueError):
    """A secrets file, variable or pipe that cannot be used; the message names where."""


@dataclass
class Secrets:
    """API keys (key -> project) and an admin token gathered from every source."""

    api_keys: dict[str, str] = field(default_factory=dict)
    admin_token: str = ""

    def add_key(self, key: str, project: str, where: str) -> None:
        if self.api_keys.get(key, project) != project:
            raise SecretsError(f"{where}: an API key is given for two projects")
        self.api_keys[key] = project


def read_key_file(path: str | Path, secrets: Secrets) -> None:
    """Add the ``KEY:PROJECT`` lines of ``path`` to ``secrets``."""
    text = _read(path, "--api-key-file")
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        where = f"--api-key-file {path}, line {number}"
        try:
            key, project = parse_api_key(line)
        except ValueError:
            raise SecretsError(f"{where}: expected KEY:PROJECT") from None
        secrets.add_key(key, project, where)


def read_token_file(path: str | Path) -> str:
    """The token on the first line of ``path``."""
    lines = _read(path, "--admin-token-file").splitlines()
    token = lines[0].strip() if lines else ""
    if not token or any(c.isspace() for c in token):
        raise SecretsError(f"--admin-token-file {path}: the first line must be the token")
    return token


def read_env(environ: Mapping[str, str], secrets: Secrets) -> None:
    """Add ``API_KEYS`` when no key is set yet, ``ADMIN_TOKEN`` when no token is."""
    if secrets.api_keys:
        environ = {ADMIN_TOKEN_ENV: environ.get(ADMIN_TOKEN_ENV, "")}
    for entry in re.split(r"[,\s]+", environ.get(API_KEYS_ENV, "").strip()):
        if not entry:
            continue
        try:
            key, project = parse_api_key(entry)
        except ValueError:
            raise SecretsError(f"{API_KEYS_ENV}: expected KEY:PROJECT entries") from None
        secrets.add_key(key, project, API_KEYS_ENV)
    token = environ.get(ADMIN_TOKEN_ENV, "").strip()
    if token and not secrets.admin_token:
        secrets.admin_token = token


def read_pipe(fd: int, secrets: Secrets) -> None:
    """Add what the parent process wrote on ``fd`` (then closed), and close it."""
    chunks = []
    size = 0
    with os.fdopen(fd, "rb") as pipe:
        while chunk := pipe.read(65536):
            size += len(chunk)
            if size > MAX_SECRETS_BYTES:
                raise SecretsError("--secrets-fd: more than 16 MiB of secrets")
            chunks.append(chunk)
    try:
        raw = json.loads(b"".join(chunks))
        keys = raw.get("api_keys") or {}
        token = raw.get("admin_token") or ""
        if not isinstance(keys, dict) or not isinstance(token, str):
            raise ValueError
        for key, project in keys.items():
            if not isinstance(project, str):
                raise ValueError
            parse_api_key(f"{key}:{project}")
            secrets.add_key(key, project, "--secrets-fd")
    except (ValueError, AttributeError):
        raise SecretsError("--secrets-fd: not a JSON object of api_keys and admin_token") from None
    if token:
        secrets.admin_token = token


def encode_pipe(api_keys: dict[str, str], admin_token: str | None) -> bytes:
    """What :func:`read_pipe` reads."""
    return json.dumps({"api_keys": api_keys, "admin_token": admin_token or ""}).encode()


def _read(path: str | Path, option: str) -> str:
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_SECRETS_BYTES + 1)
    except OSError as exc:
        raise SecretsError(f"{option} {path}: {exc.strerror or exc}") from None
    if len(data) > MAX_SECRETS_BYTES:
        raise SecretsError(f"{option} {path}: larger than 16 MiB")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise SecretsError(f"{option} {path}: not UTF-8 text") from None
