"""deploy/Containerfile builds the image from the package: what it copies is enough to build
the wheel with its compiled parts, the installed wheel runs `replay k8s manifest`, and the
image runs as a numeric user (the pods' runAsNonRoot) with `replay` as its entry point."""

from __future__ import annotations

import configparser
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).parents[1]
CONTAINERFILE = ROOT / "deploy" / "Containerfile"
COMPILED = ("capture/_spanwalk.", "replay/_frame.", "replay/_fill.")  # setup.py's extensions


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Containerfile, continuation lines joined."""
    text = CONTAINERFILE.read_text().replace("\\\n", " ")
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def test_the_image_runs_replay_as_a_numeric_user_with_the_k8s_extra() -> None:
    steps = instructions()
    assert ("ENTRYPOINT", '["replay"]') in steps
    user = [rest for word, rest in steps if word == "USER"][-1]
    assert all(part.isdigit() for part in user.split(":"))
    extras = configparser.ConfigParser()
    extras.read(ROOT / "setup.cfg")
    assert "kubernetes" in extras["options.extras_require"]["k8s"]
    assert any(word == "RUN" and "[k8s]" in rest for word, rest in steps)


def test_what_it_copies_builds_a_wheel_that_runs_the_k8s_commands(tmp_path: Path) -> None:
    context = tmp_path / "context"
    context.mkdir()
    for word, rest in instructions():
        if word == "COPY" and not rest.startswith("--from"):
            *sources, _dest = rest.split()
            for source in sources:
                src = ROOT / source
                if src.is_dir():
                    shutil.copytree(
                        src, context / source, ignore=shutil.ignore_patterns("__pycache__")
                    )
                else:
                    shutil.copy2(src, context / source)
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(wheels), str(context)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    (wheel,) = wheels.glob("*.whl")
    with zipfile.ZipFile(wheel) as built:  # (the build stage installs a C compiler for them)
        names = built.namelist()
    for extension in COMPILED:
        built_it = any(n.startswith(extension) and n.endswith(".so") for n in names)
        assert built_it, f"{extension}so is not in the wheel: setup.py not copied, or no C compiler"
    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site),
         str(wheel)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-c", "from replay.cli import main; main()", "k8s", "manifest",
         "--segments", "2", "--image", "agenttrace-replay:test", "--", "ingestion"],
        cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(site)},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "kind: Job" in done.stdout
    assert "image: agenttrace-replay:test" in done.stdout
