"""`python -m bench --quick`: every scenario still runs, so the benchmarks cannot rot.

The quick run is too small to judge speed (docs/benchmarks.md has the real numbers); this
checks the table is whole and the docs block gets rewritten.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCENARIOS = ("no-op at head", "empty DB to head", "-revision chain, per revision",
             "adopt a legacy DB", "lock", "hook Job wall time")


def test_quick_bench_prints_every_row_and_writes_the_docs_block(tmp_path: Path) -> None:
    doc = tmp_path / "benchmarks.md"
    doc.write_text("# B\n\n<!-- bench:start -->\nstale table\n<!-- bench:end -->\n\nafter\n")
    proc = subprocess.run([sys.executable, "-m", "bench", "--quick", "--write", str(doc)],
                          cwd=REPO, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = [line for line in proc.stdout.splitlines()
            if line.startswith("| ") and not line.startswith("| scenario")]
    for scenario in SCENARIOS:
        assert any(scenario in row for row in rows), (scenario, proc.stdout)
    assert len([r for r in rows if "-revision chain" in r]) >= 2
    first = [cell.strip() for cell in rows[0].split("|")]
    assert re.fullmatch(r"\d+ ms", first[2]) and re.fullmatch(r"\d+\.\d\dx", first[4])
    assert "CPUs (nproc)" in proc.stdout and "PostgreSQL" in proc.stdout
    written = doc.read_text()
    assert "stale table" not in written and rows[0] in written and written.endswith("after\n")
