"""The contract tests read manifests with the chart tests' renderer (tests/chart/chart_render)."""

from __future__ import annotations

import sys
from pathlib import Path

# tests/chart is not a package: make its helper importable when only tests/contract runs.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "chart"))
