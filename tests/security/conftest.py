"""The security tests' shared parts: `hostile.py` (crafted inputs, commands run with their
peak memory) is importable from every test module here."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture
def write_bytes(tmp_path: Path) -> Callable[[str, bytes], Path]:
    def write(name: str, data: bytes) -> Path:
        path = tmp_path / name
        path.write_bytes(data)
        return path

    return write


@pytest.fixture
def small_corpus(tmp_path: Path) -> Path:
    """Two seconds of synthetic ingestion at 20 requests per second."""
    from capture.synth import SynthSpec, write_synth_corpus

    path = tmp_path / "small.atc"
    write_synth_corpus(SynthSpec("ingestion", 20, 2_000_000_000, 1), path)
    return path


@pytest.fixture
def tiny_server_url() -> Iterator[str]:
    """tests/replay/tiny_server.py on a loopback port; terminated in teardown."""
    script = Path(__file__).parent.parent / "replay" / "tiny_server.py"
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("PORT "), line
        yield f"http://127.0.0.1:{int(line.split()[1])}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


@pytest.fixture
def results_doc() -> dict[str, Any]:
    """A valid replay-results/1 document of one second: two requests to one endpoint."""
    from replay.aggregate import RunAggregate
    from replay.histogram import sparse_from_values
    from replay.recorder import SeriesDelta
    from replay.results import RunMeta, build_results

    aggregate = RunAggregate()
    sparse = sparse_from_values([1_000, 2_000])
    series = [SeriesDelta("ingest", "200", 2, (sparse, sparse, sparse))]
    aggregate.add_interval(0, worker=0, offered=2, inflight=0, dropped={}, series=series)
    aggregate.set_duration(1.0)
    meta = RunMeta(corpus="c", target="http://127.0.0.1:9", model="timeline")
    return build_results(aggregate, meta, [])
