"""Promises mutmut cannot remove in one mutant: each layer taken out alone, its tests run.

`python tests/mutation/promises.py` (or `make mutation-promises`). Each mutant removes one
whole promise (the READ ONLY of the read verbs' transaction, its statement_timeout, one of
the three layers that scrub secrets) in a copy of the tracked tree under .mutation/promises,
then runs the tests that pin it: each must fail. docs/testing.md has the results.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
COPY = REPO / ".mutation" / "promises" / "repo"


def fresh() -> None:
    """The tracked files as they are now (a mutant never touches the working tree)."""
    if COPY.exists():
        shutil.rmtree(COPY)
    files = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True,
                           text=True, check=True).stdout.split("\0")
    for name in filter(None, files):
        if (REPO / name).is_file():
            (COPY / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, COPY / name)


# what it removes, file, text, replacement, the tests that must fail
MUTANTS: list[tuple[str, str, str, str, list[str]]] = [
    ("READ ONLY removed from the read transaction", "migrator/db.py",
     '            "transaction_read_only": "on",\n', "",
     ["tests/integration/test_read_promises.py"]),
    ("statement_timeout removed from the read transaction", "migrator/db.py",
     '    "statement_timeout": f"{settings.statement_timeout_ms}ms",\n'
     '            "transaction_read_only": "on",',
     '    "transaction_read_only": "on",',
     ["tests/integration/test_read_promises.py"]),
    ("the guard on stdout/stderr writes no longer scrubs", "migrator/logs.py",
     "self._stream.write(redact(text))", "self._stream.write(text)",
     ["tests/unit/test_scrub_layers.py",
      "tests/integration/test_output.py::test_a_revision_that_prints_the_url_prints_no_password"]),
    ("the log filter no longer scrubs", "migrator/logs.py",
     "    def filter(self, record: logging.LogRecord) -> bool:\n",
     "    def filter(self, record: logging.LogRecord) -> bool:\n"
     "        redact = redact_data = lambda x: x  # noqa\n",
     ["tests/unit/test_scrub_layers.py"]),
    ("the traceback hook no longer scrubs", "migrator/logs.py",
     'sys.stderr.write(redact("".join(traceback.format_exception(kind, value, tb))))',
     'sys.stderr.write("".join(traceback.format_exception(kind, value, tb)))',
     ["tests/unit/test_scrub_layers.py"]),
]


def main() -> int:
    survived = 0
    for name, path, old, new, tests in MUTANTS:
        fresh()
        target = COPY / path
        source = target.read_text()
        assert source.count(old) == 1, f"{name}: the text to remove is not there once"
        target.write_text(source.replace(old, new))
        result = subprocess.run(
            [sys.executable, "-m", "pytest", "-p", "no:xdist", "-p", "no:cacheprovider", "-q",
             "--timeout=60", *tests], cwd=COPY, capture_output=True, text=True, check=False)
        killed = result.returncode == 1
        survived += not killed
        print(f"{name}: {'killed' if killed else f'SURVIVED (pytest exit {result.returncode})'}"
              f"; {result.stdout.strip().splitlines()[-1]}")
        for line in result.stdout.splitlines():
            if line.startswith("FAILED"):
                print(f"    {line.split(' - ')[0]}")
    return 1 if survived else 0


if __name__ == "__main__":
    sys.exit(main())
