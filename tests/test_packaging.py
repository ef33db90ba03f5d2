"""A plain, non-editable install carries everything the commands need, corpora included."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from capture.corpus import CorpusReader
from corpora import bundled_path

ROOT = Path(__file__).parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(out),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (built,) = out.glob("*.whl")
    return built


def test_wheel_holds_packages_corpora_and_scripts(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        entry_points = next(n for n in names if n.endswith("entry_points.txt"))
        scripts = zf.read(entry_points).decode()
    for corpus in ("ingestion", "query", "mixed"):
        assert f"corpora/{corpus}.atc" in names
    for package in ("capture", "replay", "planner", "sandbox"):
        assert f"{package}/__init__.py" in names
        assert f"{package}/py.typed" in names
    for script in ("capture = ", "replay = ", "planner = "):
        assert script in scripts
    assert not any(n.startswith("tests/") for n in names)


def test_installed_wheel_finds_its_bundled_corpus(wheel: Path, tmp_path: Path) -> None:
    site = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "-q",
            "--target",
            str(site),
            str(wheel),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    env = {**os.environ, "PYTHONPATH": str(site)}
    code = "import corpora, capture; print(corpora.bundled_path()); print(capture.__file__)"
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    corpus, module = done.stdout.split()
    assert Path(corpus).is_relative_to(site) and Path(corpus).is_file()
    assert Path(module).is_relative_to(site)
    shown = subprocess.run(
        [sys.executable, "-c", "from capture.cli import main; main()", "inspect", corpus, "--json"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert shown.returncode == 0, shown.stderr
    with CorpusReader(bundled_path("ingestion")) as source:
        assert json.loads(shown.stdout)["records"] == source.header.records
