"""SIGKILL during CREATE INDEX CONCURRENTLY: the build stops with its client, leaves an
INVALID index, and the next run drops and rebuilds it. (Failed and cancelled builds are
covered in tests/integration/test_online.py.)"""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path

import psycopg
from faultkit import Migrator, add_revision, current, migrator_env, sql, wait_until
from pgtest import REPO_HEAD

INDEX = "users_killed_build_idx"
BUILD = "SELECT pid FROM pg_stat_activity WHERE query LIKE 'CREATE INDEX CONCURRENTLY%%'"


def _valid(url: str) -> list[bool]:
    return [r[0] for r in sql(url, "SELECT indisvalid FROM pg_index WHERE indexrelid ="
                                   " to_regclass(%s)", (INDEX,))]


def test_killed_concurrent_build_is_rebuilt_on_the_next_run(
        at_head: str, migrations: Path, spawn: Callable[..., Migrator]) -> None:
    add_revision(migrations, "k01", ["py:from migrator.online import create_index",
                                     f"py:create_index({INDEX!r}, 'users', ['display_name'])"])
    before = current(at_head)
    env = migrator_env(at_head, migrations)
    # An older writer: the concurrent build waits for it after creating its (INVALID) entry.
    older = psycopg.connect(at_head)
    try:
        older.execute("INSERT INTO users (google_id, email) VALUES ('g-old', 'old@x.test')")
        runner = spawn("upgrade", env=env)
        wait_until(lambda: bool(sql(at_head, BUILD + " AND wait_event_type = 'Lock'")), 20,
                   "the concurrent build waits for the older writer")
        runner.proc.kill()
        assert runner.wait(10) == -signal.SIGKILL
        # Its backend notices the client is gone (client_connection_check_interval) instead
        # of building on, unseen, once the writer ends.
        wait_until(lambda: not sql(at_head, BUILD), 3, "the orphaned build stops")
        assert _valid(at_head) == [False]
        assert current(at_head) == before
    finally:
        older.rollback()
        older.close()

    rerun = spawn("upgrade", env=env)
    assert rerun.wait(30) == 0, rerun.output
    assert "index_rebuild" in rerun.events()
    assert _valid(at_head) == [True] and current(at_head) == "k01"


def _sigterm_during_build(url: str, env: dict[str, str], spawn: Callable[..., Migrator],
                          table: str) -> Migrator:
    """Start a run, let its concurrent build wait for an older writer, then SIGTERM it."""
    older = psycopg.connect(url)
    try:
        older.execute(f"LOCK TABLE {table} IN ROW EXCLUSIVE MODE")  # an open writer
        runner = spawn("upgrade", env=env)
        wait_until(lambda: bool(sql(url, BUILD + " AND wait_event_type = 'Lock'")), 20,
                   "the concurrent build waits for the older writer")
        runner.proc.send_signal(signal.SIGTERM)
        runner.wait(15)
    finally:
        older.rollback()
        older.close()
    return runner


def _interrupted(runner: Migrator) -> None:
    assert runner.proc.returncode == 14, runner.output
    failed = runner.event("run_failed")
    assert failed["outcome"] == "failure.interrupted", failed
    assert "SIGTERM" in str(failed["message"]) and "INVALID" in str(failed["message"])


def test_sigterm_during_the_0002_build_exits_14_and_the_rerun_finishes(
        database_url: str, spawn: Callable[..., Migrator]) -> None:
    env = migrator_env(database_url)
    assert spawn("upgrade", "0001", env=env).wait(60) == 0
    runner = _sigterm_during_build(database_url, env, spawn, "sessions")
    _interrupted(runner)
    assert current(database_url) == "0001"
    rerun = spawn("upgrade", env=env)
    assert rerun.wait(60) == 0, rerun.output
    assert current(database_url) == REPO_HEAD  # 0002, or a developer's own next revision


def test_sigterm_while_adoption_builds_a_missing_index_exits_14(
        legacy_database_url: str, spawn: Callable[..., Migrator]) -> None:
    sql(legacy_database_url, "DROP INDEX users_email_idx")
    env = migrator_env(legacy_database_url)
    runner = _sigterm_during_build(legacy_database_url, env, spawn, "users")
    _interrupted(runner)
    assert current(legacy_database_url) is None  # 0001 did not commit
    rerun = spawn("upgrade", env=env)
    assert rerun.wait(60) == 0, rerun.output
    assert spawn("check", env=env).wait(30) == 0
