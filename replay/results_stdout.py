"""``replay run --out -``: the results document on stdout, after the run, and nothing else.

The run writes its results to a private temporary file as it would to any ``--out`` file,
and its human summary goes to stderr instead of stdout; when the run is over, the file is
copied to stdout and removed. So stdout holds exactly one ``replay-results/1`` document
(or nothing, when the run could not start), which a pipe or a pod's log can carry:
``replay run ... --out - | replay merge ...`` or ``replay k8s collect``.
"""

from __future__ import annotations

import atexit
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any, TextIO

DASH = "-"


class StdoutResults:
    """Stands in for ``--out -``: ``take`` before the plan, ``finish`` after the run."""

    def __init__(self, path: Path | None) -> None:
        self.path = path

    @classmethod
    def take(cls, options: dict[str, Any]) -> StdoutResults:
        """If ``options["out"]`` is ``-``, point it at a temporary file of ours."""
        if options.get("out") != DASH:
            return cls(None)
        folder = Path(tempfile.mkdtemp(prefix="replay-out-"))
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        path = folder / "results.json"
        options["out"] = str(path)
        return cls(path)

    @property
    def summary_stream(self) -> TextIO | None:
        """Where the run's summary goes: stderr with ``--out -``, else the default."""
        return sys.stderr if self.path is not None else None

    def finish(self, stdout: TextIO | None = None) -> None:
        """Copy the results (if the run wrote any) to stdout; remove the temporary file."""
        if self.path is None:
            return
        out = stdout or sys.stdout
        try:
            with self.path.open(encoding="utf-8") as results:
                shutil.copyfileobj(results, out)
            out.flush()
        except FileNotFoundError:
            pass
        finally:
            shutil.rmtree(self.path.parent, ignore_errors=True)
