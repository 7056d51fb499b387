"""Helpers for tests that run the migrator against real PostgreSQL (imported as `pgtest`)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from migrator.chain import load_chain
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


@dataclass(frozen=True)
class Roles:
    """A database as production has it: an owner role that migrates, the API's role that
    may not create anything (no CREATE on the schema, no TEMP), each with a password."""

    database: str
    owner: str
    app: str
    owner_url: str
    app_url: str
    admin_url: str  # a superuser, for what a DBA does by hand

    def env(self, **extra: str) -> dict[str, str]:
        """The hook Job's environment: the owner migrates, MIGRATOR_APP_ROLE names the API."""
        return {"MIGRATION_DATABASE_URL": self.owner_url, "DATABASE_URL": self.app_url,
                "MIGRATOR_APP_ROLE": self.app, **extra}

    def app_env(self, **extra: str) -> dict[str, str]:
        """The API's init container's environment: the app role only."""
        return {"DATABASE_URL": self.app_url, **extra}


def role_url(server: LocalPostgres, user: str, password: str, database: str) -> str:
    return (f"postgresql://{quote(user, safe='')}:{quote(password, safe='')}"
            f"@127.0.0.1:{server.port}/{database}")


MIGRATIONS = REPO / "migrations"
REPO_HEAD = load_chain(MIGRATIONS).head  # test revisions are added after it

_REVISION = '''"""Fault-test revision {rev} (written by tests/faults)."""

from alembic import op

revision = "{rev}"
down_revision = "{down}"
branch_labels = None
depends_on = None
{extra}

def upgrade() -> None:
{upgrade}


def downgrade() -> None:
{downgrade}
'''


def copy_migrations(tmp_path: Path) -> Path:
    """The repo's migrations/ in a folder of the test's own, to add test revisions to."""
    target = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS, target, ignore=shutil.ignore_patterns("__pycache__"))
    return target


def add_revision(migrations: Path, rev: str, upgrade: list[str],
                 downgrade: list[str] | None = None, extra: str = "") -> Path:
    """A revision after the folder's head whose upgrade runs `upgrade` (SQL statements, or
    Python lines starting with `py:`) in order."""
    def body(lines: list[str] | None) -> str:
        out = [line[3:].strip() if line.startswith("py:") else f"op.execute({line!r})"
               for line in lines or []]
        return "\n".join("    " + line for line in out or ["pass"])

    chain = load_chain(migrations)
    if chain.get(rev) is not None:  # a developer's own revision may have any id
        raise ValueError(f"revision {rev} is in {migrations} already: pick another id")
    path = migrations / "versions" / f"{rev}_fault_test.py"
    down = chain.head
    path.write_text(_REVISION.format(rev=rev, down=down, extra=extra, upgrade=body(upgrade),
                                     downgrade=body(downgrade)))
    return path


