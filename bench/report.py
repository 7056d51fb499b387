"""Rows of the benchmark table, the table itself, and the machine it ran on."""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Row:
    """One line of the table: ours and plain Alembic, measured in the same run."""

    scenario: str
    ours: str
    alembic: str = "-"
    ratio: float | None = None  # ours / alembic
    target: str = "-"
    ok: bool | None = None  # None: nothing to judge (pending, or informational)

    def cells(self) -> list[str]:
        verdict = {True: "yes", False: "**NO**", None: "-"}[self.ok]
        ratio = f"{self.ratio:.2f}x" if self.ratio is not None else "-"
        return [self.scenario, self.ours, self.alembic, ratio, self.target, verdict]


HEADER = ["scenario", "ours (migrator)", "plain Alembic", "ratio", "target", "met"]


def table(rows: list[Row]) -> str:
    """A Markdown table: readable in a terminal, and pasted as is into docs/benchmarks.md."""
    cells = [HEADER, *[row.cells() for row in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(HEADER))]

    def line(values: list[str]) -> str:
        return "| " + " | ".join(v.ljust(w) for v, w in zip(values, widths, strict=True)) + " |"

    return "\n".join([line(HEADER), "|" + "|".join("-" * (w + 2) for w in widths) + "|",
                      *[line(c) for c in cells[1:]]])


def seconds(value: float) -> str:
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"


def machine(server_version: str) -> str:
    """nproc, CPU model, memory, PostgreSQL and Python versions: numbers mean little without."""
    cpu = platform.processor() or "unknown CPU"
    memory = "unknown memory"
    cpuinfo, meminfo = Path("/proc/cpuinfo"), Path("/proc/meminfo")
    if cpuinfo.exists():
        models = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines()
                  if line.startswith("model name")]
        cpu = models[0] if models else cpu
    if meminfo.exists():
        kib = int(meminfo.read_text().split("MemTotal:", 1)[1].split()[0])
        memory = f"{kib / 1024 / 1024:.1f} GiB"
    return (f"{len(os.sched_getaffinity(0))} CPUs (nproc), {cpu}, {memory} memory, PostgreSQL "
            f"{server_version}, Python {platform.python_version()}, {platform.system()} "
            f"{platform.release()}")
