"""Stopping the migrator: SIGTERM/SIGINT roll back and release; SIGKILL leaves nothing half
done, and the next run completes."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest
from faultkit import (
    PAUSE,
    Migrator,
    add_revision,
    advisory_locks,
    column_exists,
    current,
    migrator_env,
    migrator_sessions,
    pausing,
    set_pause,
    sql,
    start_paused,
    wait_until,
)

from migrator import lock
from migrator.chain import load_chain

# DDL, a long pause, more DDL: a kill during the pause lands between two statements.
SLOW = ["ALTER TABLE users ADD COLUMN sig_note text", PAUSE,
        "CREATE TABLE sig_after (id int PRIMARY KEY)"]


def _table_exists(url: str, name: str) -> bool:
    return bool(sql(url, "SELECT to_regclass(%s)", (f"public.{name}",))[0][0])


def _start_slow(url: str, migrations: Path, spawn: Callable[..., Migrator]) -> Migrator:
    runner = start_paused(url, migrations, spawn, "s01", SLOW)
    set_pause(url, None)  # for the rerun; the paused session keeps its value
    return runner


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_rolls_back_releases_the_lock_and_exits_14(
        signum: signal.Signals, at_head: str, migrations: Path,
        spawn: Callable[..., Migrator]) -> None:
    before = current(at_head)
    runner = _start_slow(at_head, migrations, spawn)
    sent = time.monotonic()
    runner.proc.send_signal(signum)
    assert runner.wait(10) == 14, runner.output
    assert runner.ended is not None and runner.ended - sent < 2, "slow to stop"
    print(f"{signum.name}: exited {(runner.ended - sent) * 1000:.0f} ms after the signal")
    failed = runner.event("run_failed")
    assert failed["outcome"] == "failure.interrupted" and failed["exit_code"] == 14
    assert signum.name in failed["message"]
    assert "Traceback" not in runner.output
    # Nothing of the revision, no lock, no session left behind.
    assert current(at_head) == before
    assert not column_exists(at_head, "users", "sig_note")
    assert advisory_locks(at_head) == []
    assert migrator_sessions(at_head) == []
    assert not pausing(at_head), "the running statement was not cancelled"

    rerun = spawn("upgrade", env=migrator_env(at_head, migrations))
    assert rerun.wait(30) == 0, rerun.output
    assert current(at_head) == "s01" and _table_exists(at_head, "sig_after")


def test_sigkill_mid_revision_leaves_nothing_half_applied(
        at_head: str, migrations: Path, spawn: Callable[..., Migrator]) -> None:
    before = current(at_head)
    runner = _start_slow(at_head, migrations, spawn)
    runner.proc.kill()
    assert runner.wait(10) == -signal.SIGKILL
    # The orphaned backend notices its client is gone (client_connection_check_interval),
    # cancels pg_sleep and rolls back; the lock session ends at once.
    gone = wait_until(lambda: not migrator_sessions(at_head), 4, "the orphaned sessions end")
    assert gone < 3
    assert current(at_head) == before
    assert not column_exists(at_head, "users", "sig_note")
    assert advisory_locks(at_head) == []

    rerun = spawn("upgrade", env=migrator_env(at_head, migrations))
    assert rerun.wait(30) == 0, rerun.output
    assert current(at_head) == load_chain(migrations).head == "s01"
    assert column_exists(at_head, "users", "sig_note") and _table_exists(at_head, "sig_after")
    rows = sql(at_head, "SELECT count(*) FROM yomu_migrate_history WHERE revision = 's01'")
    assert rows == [(1,)]


def test_sigkill_then_immediate_rerun_waits_out_the_orphan(
        at_head: str, migrations: Path, spawn: Callable[..., Migrator]) -> None:
    """Rerun at once, while the killed run's backend may still hold its table locks."""
    runner = _start_slow(at_head, migrations, spawn)
    runner.proc.kill()
    runner.wait(10)
    rerun = spawn("upgrade", env=migrator_env(at_head, migrations))
    assert rerun.wait(30) == 0, rerun.output
    assert current(at_head) == "s01" and _table_exists(at_head, "sig_after")


def test_sigterm_while_waiting_for_the_lock_exits_14_at_once(
        at_head: str, migrations: Path, spawn: Callable[..., Migrator]) -> None:
    add_revision(migrations, "s01", ["CREATE TABLE sig_after (id int PRIMARY KEY)"])
    with psycopg.connect(at_head, autocommit=True) as other:
        other.execute("SELECT pg_advisory_lock(%s)", (lock.LOCK_KEY,))
        runner = spawn("upgrade", "--lock-wait", "30", env=migrator_env(at_head, migrations))
        runner.wait_for("lock_waiting")
        runner.proc.send_signal(signal.SIGTERM)
        assert runner.wait(10) == 14, runner.output
        assert runner.event("run_failed")["outcome"] == "failure.interrupted"
        assert [pid for pid, _ in advisory_locks(at_head)] == [other.info.backend_pid]
    assert migrator_sessions(at_head) == []
    assert not _table_exists(at_head, "sig_after")
