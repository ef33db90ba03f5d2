"""The bundled corpora: each regenerates byte for byte from the command its README gives."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from click.testing import CliRunner

from capture.cli import main as cli
from capture.corpus import CorpusReader
from corpora import BUNDLED, bundled_path

README = Path(__file__).parents[2] / "corpora" / "README.md"
COMMAND = re.compile(r"`(capture synth [^`]+)`")


def readme_commands() -> dict[str, list[str]]:
    commands = {}
    for line in COMMAND.findall(README.read_text()):
        args = shlex.split(line)[1:]
        name = Path(args[args.index("-o") + 1]).stem
        commands[name] = args
    return commands


def test_readme_lists_every_bundled_corpus() -> None:
    assert set(readme_commands()) == set(BUNDLED)


@pytest.mark.parametrize("name", sorted(BUNDLED))
def test_readme_command_regenerates_the_bundled_file(tmp_path: Path, name: str) -> None:
    args = readme_commands()[name]
    args[args.index("-o") + 1] = str(tmp_path / f"{name}.atc")
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert (tmp_path / f"{name}.atc").read_bytes() == bundled_path(name).read_bytes()


@pytest.mark.parametrize("name", sorted(BUNDLED))
def test_bundled_corpus_matches_its_spec(name: str) -> None:
    spec = BUNDLED[name]
    with CorpusReader(bundled_path(name)) as reader:
        assert reader.header.meta.workload == spec.workload
        assert reader.header.meta.extra["command"] == spec.command()
        assert reader.header.records > 1000
