"""Rewrite the bundled corpora from their specs: `python -m corpora.regenerate [DIR]`."""

from __future__ import annotations

import sys
from pathlib import Path

from capture.synth import write_synth_corpus
from corpora import BUNDLED


def regenerate(directory: Path) -> list[Path]:
    return [write_synth_corpus(spec, directory / f"{name}.atc") for name, spec in BUNDLED.items()]


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent
    for path in regenerate(target):
        print(f"wrote {path}")
