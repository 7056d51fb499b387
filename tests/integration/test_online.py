"""Online index builds (migrator/online.py) end to end, through the real CLI.

CREATE INDEX CONCURRENTLY runs outside the revision's transaction, lets the app write while
it builds, and when it fails it leaves an INVALID index behind; the next run must find that
leftover, drop it and build the index again.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import psycopg
from pgtest import REPO, json_lines, run_migrator

from bench.chain import copy_migrations, fresh_id, write_revision
from migrator.chain import load_chain

INDEX = "sessions_user_id_expires_at_idx"  # revision 0002
UNIQUE = "users_email_uniq"


def _valid(url: str, index: str) -> bool | None:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass(%s)",
                           (index,)).fetchone()
    return None if row is None else bool(row[0])


def _add_user(conn: psycopg.Connection[tuple[object, ...]], email: str) -> None:
    conn.execute("INSERT INTO users (google_id, email) VALUES (%s, %s)", (f"g-{email}", email))


def _session_sql() -> str:
    return ("INSERT INTO sessions (user_id, token, expires_at) SELECT id, gen_random_uuid()::text,"
            " now() + interval '1 day' FROM users LIMIT 1")


def _wait_for_build(url: str, timeout: float = 30) -> int:
    """The pid of the migrator's CREATE INDEX CONCURRENTLY once it waits for older writers."""
    deadline = time.monotonic() + timeout
    with psycopg.connect(url, autocommit=True) as conn:
        while time.monotonic() < deadline:
            row = conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE query LIKE 'CREATE INDEX CONCURRENTLY%%'"
                " AND wait_event_type = 'Lock'").fetchone()
            if row:
                return int(row[0])
            time.sleep(0.05)
    raise AssertionError("the concurrent build never started waiting")


def _spawn_upgrade(url: str, migrations: Path | None = None) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "MIGRAT"))}
    env.update(DATABASE_URL=url, MIGRATOR_LOG_FORMAT="json")
    if migrations:
        env["MIGRATOR_MIGRATIONS_DIR"] = str(migrations)
    return subprocess.Popen([sys.executable, "-m", "migrator", "upgrade"], env=env, cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_build_runs_outside_the_transaction_and_writers_go_on(database_url: str) -> None:
    assert run_migrator("upgrade", "0001", env={"DATABASE_URL": database_url}).returncode == 0
    with psycopg.connect(database_url, autocommit=True) as setup:
        _add_user(setup, "a@x.test")
    older = psycopg.connect(database_url)  # a writer whose transaction is still open
    older.execute(_session_sql())
    proc = _spawn_upgrade(database_url)
    try:
        _wait_for_build(database_url)
        # A plain CREATE INDEX would now sit in the lock queue with SHARE, and this insert
        # would queue behind it; CONCURRENTLY holds SHARE UPDATE EXCLUSIVE, so it goes on.
        with psycopg.connect(database_url, autocommit=True) as app:
            app.execute("SET lock_timeout = '1s'")
            app.execute(_session_sql())
        assert proc.poll() is None  # still waiting for the older writer
        older.commit()
        out, err = proc.communicate(timeout=60)
    finally:
        older.close()
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out + err
    assert _valid(database_url, INDEX) is True
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT count(*) FROM sessions").fetchone() == (2,)


def test_failed_build_leaves_an_invalid_index_that_the_next_run_rebuilds(
        database_url: str, tmp_path: Path) -> None:
    migrations = copy_migrations(tmp_path)
    head = load_chain(migrations).head  # the repo's, whatever it is
    assert head is not None
    write_revision(migrations, fresh_id(migrations),
                   f'online.create_index("{UNIQUE}", "users", ["email"], unique=True)')
    env = {"DATABASE_URL": database_url, "MIGRATOR_MIGRATIONS_DIR": str(migrations)}
    assert run_migrator("upgrade", head, env=env).returncode == 0
    with psycopg.connect(database_url, autocommit=True) as conn:
        _add_user(conn, "same@x.test")
        conn.execute("INSERT INTO users (google_id, email) VALUES ('g-2', 'same@x.test')")

    failed = run_migrator("upgrade", env=env)
    assert failed.returncode == 12, failed.stdout  # migration_failed
    assert "could not create unique index" in failed.stderr  # run_failed is on stderr
    assert _valid(database_url, UNIQUE) is False  # the leftover of the failed build
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchone() == (head,)

    with psycopg.connect(database_url, autocommit=True) as conn:  # fix the cause
        conn.execute("DELETE FROM users WHERE google_id = 'g-2'")
    rerun = run_migrator("upgrade", env=env)
    assert rerun.returncode == 0, rerun.stdout
    assert "index_rebuild" in [line["event"] for line in json_lines(rerun.stdout)]
    assert _valid(database_url, UNIQUE) is True


def test_cancelled_build_is_rebuilt_on_the_next_run(database_url: str) -> None:
    assert run_migrator("upgrade", "0001", env={"DATABASE_URL": database_url}).returncode == 0
    with psycopg.connect(database_url, autocommit=True) as setup:
        _add_user(setup, "a@x.test")
    older = psycopg.connect(database_url)
    older.execute(_session_sql())
    proc = _spawn_upgrade(database_url)
    try:
        pid = _wait_for_build(database_url)
        with psycopg.connect(database_url, autocommit=True) as admin:
            admin.execute("SELECT pg_cancel_backend(%s)", (pid,))
        out, _ = proc.communicate(timeout=60)
    finally:
        older.rollback()
        older.close()
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 12, out
    assert _valid(database_url, INDEX) is False

    rerun = run_migrator("upgrade", env={"DATABASE_URL": database_url})
    assert rerun.returncode == 0, rerun.stdout
    assert "index_rebuild" in [line["event"] for line in json_lines(rerun.stdout)]
    assert _valid(database_url, INDEX) is True
