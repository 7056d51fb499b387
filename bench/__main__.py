"""`python -m bench [--quick] [--write docs/benchmarks.md]`: one table, ours vs plain Alembic.

Exits non-zero when a target is missed (a full run only: the quick run is too small to
judge speed, but it still fails when adoption rewrites a table or a command fails).
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from bench.report import machine, table
from bench.suite import QUICK, Sizes, run

START, END = "<!-- bench:start -->", "<!-- bench:end -->"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true",
                        help="tiny sizes, one run each: proves the suite works, judges nothing")
    parser.add_argument("--write", type=Path, metavar="MARKDOWN",
                        help=f"also put the table between {START} and {END} in this file")
    args = parser.parse_args(argv)
    started = time.monotonic()
    rows, version = run(QUICK if args.quick else Sizes(), args.quick)
    report = (f"Measured {datetime.now(UTC):%Y-%m-%d} on {machine(version)}"
              f"{' (QUICK run: sizes too small to judge)' if args.quick else ''}.\n\n"
              f"{table(rows)}\n")
    print(report)
    print(f"({time.monotonic() - started:.0f} s)", file=sys.stderr)
    if args.write:
        text = args.write.read_text()
        block = f"{START}\n{report}{END}"
        text, found = re.subn(re.escape(START) + ".*?" + re.escape(END), lambda _: block, text,
                              flags=re.S)
        if not found:
            print(f"{args.write} has no {START} ... {END} block", file=sys.stderr)
            return 2
        args.write.write_text(text)
    missed = [row.scenario for row in rows if row.ok is False]
    if missed and not args.quick:
        print("targets missed: " + "; ".join(missed), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
