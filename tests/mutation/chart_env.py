"""Mutation testing of the chart's env rendering: what the hook Job and the API's init
container hand the migrator (variable names, values, Secret keys, conditions).

No Python mutation tool reads Helm templates, so this one is small and specific: each
mutant is one change to one line of the env blocks (a variable renamed or dropped, a value
taken from the wrong setting, a Secret key or name changed, a condition inverted, a literal
altered), written to a copy of the chart. The chart, contract and end-to-end tests then
render that copy (YOMU_CHART_DIR) and must fail. The real chart is never touched.

    python tests/mutation/chart_env.py            # every mutant; prints the table
    python tests/mutation/chart_env.py --list     # the mutants only
    python tests/mutation/chart_env.py --only deployment.yaml:62   # some of them
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "chart"
# Fast renders first, the runs against PostgreSQL last: most mutants die early (-x).
TESTS = ["tests/chart/test_chart_hook.py", "tests/chart/test_chart_api.py",
         "tests/chart/test_chart_security.py", "tests/contract",
         "tests/observability/test_prefix_end_to_end.py"]
# Where the env is rendered: (file, first line's pattern, pattern of the line after the block).
REGIONS = [
    ("templates/migrations/job.yaml", r"^\s+env:$", r"^\s+securityContext:"),
    ("templates/api/deployment.yaml", r"^\s+env:$", r"^\s+securityContext:"),
    ("templates/_helpers.tpl", r'define "yomu\.migrations\.databaseEnv"', r"^\{\{/\*"),
    ("templates/_helpers.tpl", r'define "yomu\.migrations\.statsdEnv"', r"^\{\{/\*"),
]
SETTINGS = ["lockWaitSeconds", "lockTimeoutMs", "lockTimeoutCapMs", "lockRetries",
            "retryDeadlineSeconds", "statementTimeoutMs", "idleInTransactionTimeoutMs",
            "connectTimeoutSeconds"]
LITERALS = [("value: json", "value: text"), ('"9125"', '"9126"'), ('join ","', 'join ";"'),
            (".svc", ".svc.mutant")]


@dataclass(frozen=True)
class Mutant:
    path: str
    line: int  # 1-based
    what: str
    before: str
    after: list[str]  # the replacement lines (empty: deleted, with its block)
    block: int = 1  # how many lines it replaces

    def apply(self, text: str) -> str:
        lines = text.split("\n")
        lines[self.line - 1:self.line - 1 + self.block] = self.after
        return "\n".join(lines)


def _regions() -> Iterator[tuple[str, int, list[str]]]:
    """(file, first line number, lines) of each env block."""
    for path, start, stop in REGIONS:
        lines = (CHART / path).read_text().split("\n")
        first = next(i for i, line in enumerate(lines) if re.search(start, line))
        after = next(i for i in range(first + 1, len(lines)) if re.search(stop, lines[i]))
        yield path, first + 1, lines[first:after]


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def mutants() -> list[Mutant]:
    out: list[Mutant] = []
    for path, first, lines in _regions():
        for offset, line in enumerate(lines):
            number = first + offset
            env = re.match(r"^(\s*)- name: ([A-Z_]+)$", line)
            if env:
                out.append(Mutant(path, number, f"rename {env.group(2)}", line,
                                  [line + "_MUTANT"]))
                size = 1 + next((k for k, nxt in enumerate(lines[offset + 1:])
                                 if _indent(nxt) <= _indent(line) or not nxt.strip()),
                                len(lines) - offset - 1)
                out.append(Mutant(path, number, f"drop {env.group(2)}", line, [], size))
            key = re.match(r"^(\s*key: )(.+)$", line)
            if key:
                out.append(Mutant(path, number, f"Secret key {key.group(2)}", line,
                                  [f"{key.group(1)}MUTANT_KEY"]))
            secret = re.match(r"^(\s*name: )(\{\{.*\}\})$", line)
            if secret:
                out.append(Mutant(path, number, "Secret name", line,
                                  [f"{secret.group(1)}mutant-secret"]))
            setting = re.search(r"\$m\.settings\.(\w+)", line)
            if setting and setting.group(1) in SETTINGS:
                other = SETTINGS[(SETTINGS.index(setting.group(1)) + 1) % len(SETTINGS)]
                out.append(Mutant(path, number, f"{setting.group(1)} -> {other}", line,
                                  [line.replace(setting.group(1), other)]))
            condition = re.match(r"^(\s*\{\{-? (?:else )?if )(.+?)( -?\}\})$", line)
            if condition:
                out.append(Mutant(path, number, f"negate `{condition.group(2)}`", line, [
                    f"{condition.group(1)}not ({condition.group(2)}){condition.group(3)}"]))
            with_ = re.match(r"^(\s*\{\{-? with )(.+?)( -?\}\})$", line)
            if with_:
                out.append(Mutant(path, number, f"skip `with {with_.group(2)}`", line,
                                  [f"{with_.group(1)}list{with_.group(3)}"]))
            for old, new in LITERALS:
                if old in line:
                    out.append(Mutant(path, number, f"{old} -> {new}", line,
                                      [line.replace(old, new)]))
    return out


def run(mutant: Mutant, python: str) -> tuple[bool, float]:
    """True when the tests kill `mutant` (fail on the mutated chart)."""
    with tempfile.TemporaryDirectory(prefix="chart-mutant-") as tmp:
        chart = Path(tmp) / "chart"
        shutil.copytree(CHART, chart)
        target = chart / mutant.path
        target.write_text(mutant.apply(target.read_text()))
        started = time.monotonic()
        result = subprocess.run(
            [python, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *TESTS],
            cwd=REPO, env={**os.environ, "YOMU_CHART_DIR": str(chart)},
            capture_output=True, text=True, check=False)
        return result.returncode != 0, time.monotonic() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--list", action="store_true", help="list the mutants, run nothing")
    parser.add_argument("--only", action="append", default=[], metavar="TEXT",
                        help="only the mutants whose `file:line what` contains TEXT")
    args = parser.parse_args(argv)
    found = [m for m in mutants()
             if not args.only or any(t in f"{m.path}:{m.line} {m.what}" for t in args.only)]
    if args.list:
        for m in found:
            print(f"{m.path}:{m.line}  {m.what}")
        return 0
    survivors, started = [], time.monotonic()
    for number, m in enumerate(found, 1):
        killed, seconds = run(m, sys.executable)
        print(f"[{number}/{len(found)}] {'killed  ' if killed else 'SURVIVED'} {seconds:5.1f}s"
              f"  {m.path}:{m.line}  {m.what}", flush=True)
        if not killed:
            survivors.append(m)
    total = len(found)
    print(f"\nchart env rendering: {total} mutants, {total - len(survivors)} killed, "
          f"{len(survivors)} survived, score {100 * (total - len(survivors)) / total:.0f}%, "
          f"{time.monotonic() - started:.0f}s")
    for m in survivors:
        print(f"  survived: {m.path}:{m.line}  {m.what}:  {m.before.strip()}")
    return 1 if survivors else 0


if __name__ == "__main__":
    sys.exit(main())
