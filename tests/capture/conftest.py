"""The capture tests share `production.py` (a synthetic production fleet) by plain import."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
