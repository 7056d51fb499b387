"""Helpers for tests that run the migrator against real PostgreSQL (imported as `pgtest`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from migrator.localdb import LocalPostgres, bin_dir

REPO = Path(__file__).resolve().parent.parent
LEGACY_INIT_SQL = REPO / "docker" / "postgres" / "init.sql"
TEST_PASSWORD = "s3cr3t-Pa55word"


def superuser_dsn(server: LocalPostgres, database: str = "postgres") -> str:
    return server.dsn(database, password=TEST_PASSWORD)


def run_migrator(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run the real CLI in a child process, as the hook Job does."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "MIGRAT"))}
    full_env.update(env or {})
    full_env.setdefault("MIGRATOR_LOG_FORMAT", "json")
    return subprocess.run(
        [sys.executable, "-m", "migrator", *args],
        env=full_env, capture_output=True, text=True, timeout=timeout, cwd=REPO,
    )


def schema_dump(url: str) -> str:
    """`pg_dump --schema-only`, minus the lines that differ on every run."""
    out = subprocess.run(
        [str(bin_dir() / "pg_dump"), "--schema-only", "--no-owner", "--no-privileges", url],
        check=True, capture_output=True, text=True,
    ).stdout
    return "\n".join(
        line for line in out.splitlines()
        if line and not line.startswith(("--", "\\restrict", "\\unrestrict"))
    )


def json_lines(stdout: str) -> list[dict[str, object]]:
    """Every stdout line as JSON: a line that is not JSON fails the test."""
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


def records(result: subprocess.CompletedProcess[str]) -> list[dict[str, object]]:
    """The log records of a run: stdout's lines, then stderr's (errors go there), all JSON."""
    return json_lines(result.stdout) + json_lines(result.stderr)


def events(result: subprocess.CompletedProcess[str]) -> list[str]:
    return [str(line["event"]) for line in records(result)]
