"""`check` and `status` as production runs them: behind DDL locks, on read-only databases
and hot standbys, within their --wait; and what an upgrade reports when only the check of
its committed result fails."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest
from faultkit import (
    REPO_HEAD,
    LockHolder,
    Migrator,
    add_revision,
    advisory_locks,
    current,
    migrator_env,
    sql,
    wait_until,
)
from pgtest import run_migrator

from migrator.history import OWN_TABLES
from migrator.localdb import LocalPostgres

APP_TABLES = ["users", "sessions", "bookmarks"]


def _lock_all(url: str, tables: list[str]) -> LockHolder:
    return LockHolder(url, [f"LOCK TABLE {', '.join(tables)} IN ACCESS EXCLUSIVE MODE"],
                      hold_s=60).start_holding()


def _timed(*args: str, env: dict[str, str]) -> tuple[float, dict[str, object], int]:
    started = time.monotonic()
    result = run_migrator(*args, "--json", env=env)
    return (time.monotonic() - started, json.loads(result.stdout.strip().splitlines()[-1]),
            result.returncode)


@pytest.mark.parametrize("verb", ["status", "check"])
def test_ddl_locks_on_every_app_table_leave_the_schema_readable(at_head: str, verb: str) -> None:
    """A migration's ALTER TABLE holds ACCESS EXCLUSIVE: the catalog is still readable."""
    holder = _lock_all(at_head, APP_TABLES)
    try:
        seconds, report, code = _timed(verb, env=migrator_env(at_head))
    finally:
        holder.release()
    assert code == 0, report
    assert report["schema_matches"] is True
    assert seconds < 5, seconds


@pytest.mark.parametrize("verb", ["status", "check"])
def test_a_check_constraint_behind_a_lock_is_busy_at_once(at_head: str, verb: str) -> None:
    """Only a CHECK's (or an expression index's) text must be read from the locked table."""
    sql(at_head, "ALTER TABLE bookmarks ADD CONSTRAINT title_short CHECK (length(title) < 900)")
    holder = _lock_all(at_head, APP_TABLES)
    try:
        seconds, report, code = _timed(verb, env=migrator_env(at_head))
    finally:
        holder.release()
    assert code == 19, report
    assert report["error"] == "busy" and "lock_timeout" in str(report["message"])
    # The cause and who holds the lock, not the server error's caret line.
    message = str(report["message"])
    assert "canceling statement due to lock timeout" in message, message
    assert "^" not in message, message
    assert f"pid {holder.pid} (fault-test-holder" in message, message
    assert "AccessExclusiveLock on bookmarks" in message, message
    assert seconds < 5, seconds


def test_check_wait_returns_within_its_wait_when_every_table_stays_locked(at_head: str) -> None:
    holder = _lock_all(at_head, [*APP_TABLES, *OWN_TABLES])
    try:
        started = time.monotonic()
        result = run_migrator("check", "--wait", "4", env=migrator_env(at_head))
        seconds = time.monotonic() - started
    finally:
        holder.release()
    assert result.returncode == 19, result.stdout + result.stderr
    assert seconds < 4 + 1 + 0.8, seconds  # the wait, a second, and the interpreter's start
    lines = [json.loads(line) for line in (result.stdout + result.stderr).splitlines()
             if line.startswith("{")]
    waiting = [line["message"] for line in lines if line["event"] == "check_waiting"]
    assert waiting and all(str(m).startswith("busy, retrying") for m in waiting)


def test_check_wait_returns_within_its_wait_when_the_server_is_down(
        own_server: LocalPostgres) -> None:
    url = own_server.dsn()
    assert run_migrator("upgrade", env=migrator_env(url)).returncode == 0
    own_server.stop()
    started = time.monotonic()
    result = run_migrator("check", "--wait", "3", env=migrator_env(url))
    seconds = time.monotonic() - started
    assert result.returncode == 4, result.stdout + result.stderr
    assert seconds < 3 + 1 + 0.8, seconds


def _least_privilege(server: LocalPostgres) -> tuple[str, str]:
    """Owner and app roles on a trust-auth server (no passwords): their URLs."""
    admin = server.dsn()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute("CREATE ROLE owner LOGIN; CREATE ROLE app LOGIN")
        conn.execute("CREATE DATABASE yomu OWNER owner")
        conn.execute("REVOKE TEMP ON DATABASE yomu FROM PUBLIC")
    base = admin.rsplit("/", 1)[0].replace("postgres@", "{}@")
    owner, app = base.format("owner") + "/yomu", base.format("app") + "/yomu"
    env = {"MIGRATION_DATABASE_URL": owner, "DATABASE_URL": app, "MIGRATOR_APP_ROLE": "app"}
    assert run_migrator("upgrade", env=env).returncode == 0
    return owner, app


@pytest.mark.parametrize("verb", ["status", "check", "history", "plan"])
def test_reading_verbs_work_on_a_read_only_database_as_each_role(
        own_server: LocalPostgres, verb: str) -> None:
    owner, app = _least_privilege(own_server)
    sql(own_server.dsn(), "ALTER DATABASE yomu SET default_transaction_read_only = on")
    for url in (owner, app):
        result = run_migrator(verb, env=migrator_env(url))
        assert result.returncode == 0, (url, result.stdout + result.stderr)


def test_reading_verbs_work_on_a_hot_standby_as_the_app_role(
        own_server: LocalPostgres, standby: LocalPostgres) -> None:
    _least_privilege(own_server)  # after the clone: it reaches the standby by streaming
    app = standby.dsn().rsplit("/", 1)[0].replace("postgres@", "app@") + "/yomu"
    wait_until(lambda: _at_head(app), 20, "the standby replays the migration")
    for verb in ("status", "check", "history", "plan"):
        result = run_migrator(verb, "--json", env=migrator_env(app))
        assert result.returncode == 0, (verb, result.stdout + result.stderr)
    status = json.loads(run_migrator("status", "--json", env=migrator_env(app)).stdout)
    assert status["current"] == REPO_HEAD and status["schema_matches"] is True


def _at_head(url: str) -> bool:
    try:
        return current(url) == REPO_HEAD
    except psycopg.Error:
        return False


def test_a_schema_mismatch_after_commit_is_exit_17_with_the_revision_applied(
        at_head: str, migrations: Path, spawn: Callable[..., Migrator]) -> None:
    add_revision(migrations, "x9001", ["ALTER TABLE users ALTER COLUMN display_name SET NOT NULL"])
    run = spawn("upgrade", env=migrator_env(at_head, migrations))
    assert run.wait(60) == 17, run.output
    assert current(at_head) == "x9001"  # committed, and it stays
    failed = run.event("run_failed")
    assert failed["outcome"] == "failure.verify"
    assert "applied x9001 and committed" in str(failed["message"])
    assert "users.display_name" in str(failed["message"])
    assert advisory_locks(at_head) == []


def test_the_rerun_after_an_exit_17_checks_again_and_is_not_a_silent_no_op(
        at_head: str, migrations: Path, spawn: Callable[..., Migrator]) -> None:
    """The hook goes green only when the schema matches: a rerun at head that applies
    nothing still checks it while no match at head was ever recorded."""
    rev = f"t{uuid.uuid4().hex[:10]}"
    add_revision(migrations, rev, ["ALTER TABLE users ALTER COLUMN display_name SET NOT NULL"])
    env = migrator_env(at_head, migrations)
    assert spawn("upgrade", env=env).wait(60) == 17
    rerun = spawn("upgrade", env=env)
    assert rerun.wait(60) == 17, rerun.output
    failed = rerun.event("run_failed")
    assert "no revision to apply" in str(failed["message"]), failed
    assert "users.display_name" in str(failed["message"]), failed
    # Fixed by hand (or by the next revision): the rerun checks, matches, and records it.
    sql(at_head, "ALTER TABLE users ALTER COLUMN display_name DROP NOT NULL")
    fixed = spawn("upgrade", env=env)
    assert fixed.wait(60) == 0, fixed.output
    assert sql(at_head, "SELECT verified_at IS NOT NULL FROM yomu_migrate_history"
                        " WHERE revision = %s", (rev,)) == [(True,)]


def test_a_check_that_cannot_run_after_commit_is_exit_17_not_a_failed_migration(
        at_head: str, migrations: Path, spawn: Callable[..., Migrator]) -> None:
    # Reading a CHECK's definition opens its table, which a session keeps locked.
    sql(at_head, "ALTER TABLE bookmarks ADD CONSTRAINT title_short CHECK (length(title) < 900)")
    add_revision(migrations, "x9001", ["COMMENT ON TABLE users IS 'people who sign in'"])
    holder = _lock_all(at_head, ["bookmarks"])
    try:
        run = spawn("upgrade", env=migrator_env(at_head, migrations))
        assert run.wait(60) == 17, run.output
    finally:
        holder.release()
    assert current(at_head) == "x9001"
    failed = run.event("run_failed")
    assert "applied x9001 and committed" in str(failed["message"])
    assert "could not be checked" in str(failed["message"])
    assert "revision_applied" in run.events()
