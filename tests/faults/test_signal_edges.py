"""A signal at every point of the migrator's life (start-up, waiting, between revisions,
right after a commit, while granting) gives exit 14, no traceback, and a message that is
true: it names what committed and what was rolled back, as the database has it.

Real processes, real signals, real PostgreSQL; test revisions get ids of their own, after
the repo's head whatever it is."""

from __future__ import annotations

import signal
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest
from faultkit import (
    PAUSE,
    LockHolder,
    Migrator,
    add_revision,
    advisory_locks,
    current,
    migrator_env,
    pausing,
    set_pause,
    sql,
    wait_until,
)
from pgtest import Roles, superuser_dsn

from migrator.localdb import LocalPostgres


def _rev() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


def _handler_installed(pid: int) -> bool:
    """The process catches SIGTERM: the earliest moment a signal is ours to handle (before
    it, the interpreter itself is still starting)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("SigCgt:"):
                    return bool(int(line.split()[1], 16) >> (signal.SIGTERM - 1) & 1)
    except FileNotFoundError:
        return False
    return False


def _history(url: str) -> set[str]:
    if not sql(url, "SELECT to_regclass('public.yomu_migrate_history')")[0][0]:
        return set()
    return {row[0] for row in sql(url, "SELECT revision FROM yomu_migrate_history")}


def _stopped(runner: Migrator, name: str) -> dict[str, object]:
    code = runner.wait(30)
    assert code == 14, f"exit {code}:\n{runner.output}"
    assert "Traceback" not in runner.output, runner.output
    failed = runner.event("run_failed")
    assert failed["outcome"] == "failure.interrupted" and failed["exit_code"] == 14, failed
    assert f"stopped by {name}" in str(failed["message"]), failed
    return failed


def _committed(failed: dict[str, object]) -> list[str]:
    """The revisions the run_failed line says committed (its details.committed)."""
    details = failed.get("details") or {}
    assert isinstance(details, dict)
    return list(details.get("committed") or [])


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
@pytest.mark.parametrize("delay", [0.0, 0.03, 0.1, 0.25, 0.5])
def test_a_signal_while_starting_exits_14_without_a_traceback(
        signum: signal.Signals, delay: float, database_url: str, migrations: Path,
        spawn: Callable[..., Migrator]) -> None:
    """From the moment the handler is in place: during the imports, the settings, the
    first connection. The revision pauses, so the run is still going when the signal comes."""
    rev = _rev()
    add_revision(migrations, rev, [PAUSE])
    set_pause(database_url, 30)
    runner = spawn("upgrade", env=migrator_env(database_url, migrations))
    wait_until(lambda: _handler_installed(runner.pid), 20, "the handler is installed")
    time.sleep(delay)
    runner.proc.send_signal(signum)
    failed = _stopped(runner, signum.name)
    assert _history(database_url) == set(), "nothing may have committed"
    message = str(failed["message"])
    assert "committed" not in message, message
    assert "nothing was changed" in message or "no revision was applied" in message \
        or f"revision {rev} was in progress and was rolled back" in message, message
    assert advisory_locks(database_url) == []


def test_sigterm_between_revisions_names_the_committed_and_the_rolled_back(
        at_head: str, migrations: Path, spawn: Callable[..., Migrator]) -> None:
    first, second = _rev(), _rev()
    add_revision(migrations, first, ["CREATE TABLE sig_first (id int PRIMARY KEY)"])
    add_revision(migrations, second, ["CREATE TABLE sig_second (id int PRIMARY KEY)", PAUSE])
    set_pause(at_head, 30)
    runner = spawn("upgrade", env=migrator_env(at_head, migrations))
    wait_until(lambda: pausing(at_head), 30, "the second revision reaches its pause")
    runner.proc.send_signal(signal.SIGTERM)
    failed = _stopped(runner, "SIGTERM")
    message = str(failed["message"])
    assert f"applied {first} and committed" in message, message
    assert f"revision {second} was in progress and was rolled back" in message, message
    assert _committed(failed) == [first]
    assert current(at_head) == first
    assert advisory_locks(at_head) == []


def test_sigterm_after_the_revision_committed_does_not_say_it_was_rolled_back(
        roles: Roles, tmp_path: Path, spawn: Callable[..., Migrator]) -> None:
    """The revision commits, then the grants wait for a table the app holds: a SIGTERM now
    must say the revision committed (it did), and that only the grants were rolled back."""
    from faultkit import copy_migrations

    owner_only = {"MIGRATION_DATABASE_URL": roles.owner_url}
    assert spawn("upgrade", env=migrator_env(roles.owner_url, **owner_only)).wait(60) == 0
    migrations = copy_migrations(tmp_path)
    rev = _rev()
    add_revision(migrations, rev, ["CREATE TABLE sig_kept (id int PRIMARY KEY)"])
    holder = LockHolder(roles.admin_url, ["LOCK TABLE users IN ACCESS EXCLUSIVE MODE"], 60)
    holder.start_holding()
    try:
        runner = spawn("upgrade", env=migrator_env(
            roles.owner_url, migrations, MIGRATOR_APP_ROLE=roles.app,
            MIGRATOR_RETRY_DEADLINE="60"))
        retry = runner.wait_for("lock_retry", 60)
        assert "granting" in str(retry["message"]), retry
        runner.proc.send_signal(signal.SIGTERM)
        failed = _stopped(runner, "SIGTERM")
    finally:
        holder.release()
    message = str(failed["message"])
    assert f"applied {rev} and committed" in message, message
    assert "was in progress and was rolled back" not in message, message
    assert "grants in progress were rolled back" in message, message
    assert current(roles.admin_url) == rev


def test_a_signal_at_any_moment_of_a_whole_upgrade_tells_the_truth(
        pg_server: LocalPostgres, tmp_path: Path, spawn: Callable[..., Migrator]) -> None:
    """From base through every revision of the repo and two of the test's own, SIGTERM at
    a sweep of moments: each run exits 14 (or 0, done before the signal came), and what it
    says committed is exactly what the database recorded."""
    from faultkit import copy_migrations

    migrations = copy_migrations(tmp_path)
    ours = [_rev(), _rev()]
    add_revision(migrations, ours[0], ["CREATE TABLE sweep_a (id int PRIMARY KEY)"])
    add_revision(migrations, ours[1], ["CREATE TABLE sweep_b (id int PRIMARY KEY)"])
    admin = superuser_dsn(pg_server)
    stopped = 0
    for step in range(16):
        name = f"sweep_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        url = superuser_dsn(pg_server, name)
        try:
            runner = spawn("upgrade", env=migrator_env(url, migrations))
            wait_until(lambda r=runner: _handler_installed(r.pid) or r.proc.poll() is not None,
                       20, "the handler is installed")
            time.sleep(step * 0.12)
            if runner.proc.poll() is None:
                runner.proc.send_signal(signal.SIGTERM)
            code = runner.wait(60)
            applied = _history(url)
            if code == 0:
                continue
            stopped += 1
            failed = _stopped(runner, "SIGTERM")
            said = set(_committed(failed))
            assert said == applied, (step, failed["message"], applied)
            message = str(failed["message"])
            if "was in progress and was rolled back" in message:
                rolled = message.split("revision ", 1)[1].split(" ", 1)[0]
                assert rolled not in applied, (step, message, applied)
            assert advisory_locks(url) == []
        finally:
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    assert stopped >= 8, f"only {stopped} of 16 runs were still going when signalled"
