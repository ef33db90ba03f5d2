"""Fixtures every test package may use."""

from __future__ import annotations

import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # helpers shared by test packages (stderr_lines)


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """An empty directory directly under /tmp, removed afterwards: a $TMPDIR for processes
    that put Unix sockets in it, whose paths must fit 108 bytes however deep pytest's own
    tmp_path is (under pytest-xdist it is deeper)."""
    path = Path(tempfile.mkdtemp(prefix="at-test-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)
