"""Shared helpers of the observability tests: the external tools they run, and paths."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
# The rules' source: a template with ${...} placeholders, tested as the chart renders it.
RULES_SOURCE = REPO / "chart" / "files" / "prometheus-rules.yaml"
MAPPING = REPO / "chart" / "files" / "statsd-mapping.yaml"
RULES_TEST = HERE / "rules_test.yaml"
OBSERVABILITY_DOC = REPO / "docs" / "observability.md"
TROUBLESHOOTING_DOC = REPO / "docs" / "troubleshooting.md"


def require(tool: str, package: str) -> str:
    """Path of `tool`; a missing tool fails the test (CI installs it), never skips it."""
    path = shutil.which(tool)
    if path is None:
        pytest.fail(
            f"{tool} is not installed: it comes from Debian's `{package}` package; "
            "run `make tools` (CI does)",
            pytrace=False,
        )
    return path


def run(args: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run a tool with a bound on time; the output is kept for the assertion message."""
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=60)
