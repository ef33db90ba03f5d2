"""``python -m sandbox``: the same command as ``replay sandbox``."""

from __future__ import annotations

from sandbox.cli import main

if __name__ == "__main__":
    main()
