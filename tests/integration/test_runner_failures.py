"""How a revision's failure is told (migrator/runner.py): each cause its own exit code and
one line naming the revision, and what a revision took, as the history records it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from pgtest import REPO, add_revision, copy_migrations, json_lines, run_migrator

SLEEPING = ("SELECT pid FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(30)' "
            "AND application_name LIKE 'yomu-migrate/%%'")


@pytest.fixture
def sleeping_revision(database_url: str, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """The repo's revisions applied, then a revision that adds a column and sleeps."""
    migrations = copy_migrations(tmp_path)
    assert run_migrator("upgrade", env={"DATABASE_URL": database_url}).returncode == 0
    add_revision(migrations, "q01", ["ALTER TABLE users ADD COLUMN q_note text",
                                     "SELECT pg_sleep(30)"])
    yield database_url, migrations


def _interrupt_the_sleep(url: str, migrations: Path, how: str) -> tuple[int, dict[str, object]]:
    """Run `upgrade`, and once the revision sleeps, apply `how` (a function) to its backend."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "MIGRAT"))}
    env.update(DATABASE_URL=url, MIGRATOR_MIGRATIONS_DIR=str(migrations),
               MIGRATOR_LOG_FORMAT="json")
    proc = subprocess.Popen([sys.executable, "-m", "migrator", "upgrade", "--json"], env=env,
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        with psycopg.connect(url, autocommit=True) as admin:
            deadline = time.monotonic() + 20
            while not (row := admin.execute(SLEEPING).fetchone()):
                assert time.monotonic() < deadline, "the revision never reached its sleep"
                time.sleep(0.05)
            admin.execute(f"SELECT {how}(%s)", (row[0],))  # type: ignore[arg-type]
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return proc.returncode, json.loads(out.strip().splitlines()[-1])


def _column_exists(url: str) -> bool:
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT 1 FROM information_schema.columns WHERE table_name = "
                            "'users' AND column_name = 'q_note'").fetchone() is not None


def test_a_lost_revision_session_is_exit_4_and_rolled_back(
        sleeping_revision: tuple[str, Path]) -> None:
    url, migrations = sleeping_revision
    code, report = _interrupt_the_sleep(url, migrations, "pg_terminate_backend")
    assert code == 4, report
    assert report["message"] == (
        "lost the database connection during revision q01 (terminating connection due to "
        "administrator command); the revision was rolled back")
    assert "run again" in str(report["next_step"])
    assert not _column_exists(url)


def test_a_cancelled_statement_is_a_failed_revision_not_a_timeout(
        sleeping_revision: tuple[str, Path]) -> None:
    url, migrations = sleeping_revision
    code, report = _interrupt_the_sleep(url, migrations, "pg_cancel_backend")
    assert code == 12, report
    assert report["message"] == ("revision q01 failed and was rolled back: canceling "
                                 "statement due to user request")
    assert report["revision"] == "q01"
    assert not _column_exists(url)


def test_what_a_revision_took_is_recorded(database_url: str, tmp_path: Path) -> None:
    migrations = copy_migrations(tmp_path)
    add_revision(migrations, "q01", ["SELECT pg_sleep(0.4)"])
    env = {"DATABASE_URL": database_url, "MIGRATOR_MIGRATIONS_DIR": str(migrations)}
    result = run_migrator("upgrade", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    applied = {line["revision"]: line["duration_ms"] for line in json_lines(result.stdout)
               if line["event"] == "revision_applied"}
    assert 400 <= applied["q01"] < 5000  # type: ignore[operator]
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT duration_ms FROM yomu_migrate_history WHERE revision = "
                           "'q01'").fetchone()
    assert row is not None and 400 <= row[0] <= applied["q01"]  # type: ignore[operator]


def test_downgrade_to_a_middle_revision_stops_there(database_url: str) -> None:
    """`migrator downgrade 0001` from the head undoes the revisions after 0001, not 0001."""
    env = {"DATABASE_URL": database_url}
    assert run_migrator("upgrade", env=env).returncode == 0
    result = run_migrator("downgrade", "0001", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == [("0001",)]
        assert conn.execute("SELECT revision FROM yomu_migrate_history").fetchall() == [
            ("0001",)]
        assert conn.execute("SELECT to_regclass('users') IS NOT NULL").fetchone() == (True,)
