"""Where the repository is: scripts, example DAGs and the package are found from here."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
