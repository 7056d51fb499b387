"""The observability tests render the chart with tests/chart/chart_render and run rendered
containers with tests/contract/contract_run, as the chart and contract tests do."""

from __future__ import annotations

import sys
from pathlib import Path

# tests/chart and tests/contract are not packages: make their helpers importable.
for folder in ("chart", "contract"):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / folder))
