"""Never queue the app behind DDL: a long reader or writer holds the table, the app keeps
querying every 20 ms, and a revision needs a conflicting lock.

A waiting ALTER/CREATE INDEX sits in the table's lock queue and every later query of the
app queues behind it. With lock_timeout the wait, and so the app's stall, is capped; the
revision retries until the holder is gone.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from faultkit import (
    AppLoad,
    LockHolder,
    Migrator,
    add_revision,
    column_exists,
    current,
    migrator_env,
    new_email,
    sql,
)

from migrator.chain import load_chain

CAP_MS = 250  # MIGRATOR_LOCK_TIMEOUT_CAP_MS default: the app's worst stall
SLACK_MS = 100
HOLD_S = 6

@dataclass(frozen=True)
class Case:
    holder: list[str]  # what the long transaction runs (and the locks it keeps)
    app: str  # what the app runs every 20 ms
    app_params: Callable[[], tuple[str, str]] | None
    revision: list[str]  # the test revision's SQL
    landed: str  # a query with a row once the revision is in


READER = Case(
    holder=["SELECT count(*) FROM users"],  # ACCESS SHARE, like a long report query
    app="SELECT id FROM users ORDER BY created_at DESC LIMIT 5", app_params=None,
    revision=["ALTER TABLE users ADD COLUMN lockq_note text"],  # needs ACCESS EXCLUSIVE
    landed="SELECT 1 FROM information_schema.columns WHERE column_name = 'lockq_note'",
)
WRITER = Case(
    holder=["INSERT INTO users (google_id, email) VALUES ('g-holder', 'holder@x.test')"],
    app="INSERT INTO users (google_id, email) VALUES (%s, %s)", app_params=new_email,
    # A plain CREATE INDEX needs SHARE, which conflicts with the writers' ROW EXCLUSIVE.
    revision=["CREATE INDEX users_lockq_idx ON users (display_name)"],
    landed="SELECT 1 FROM pg_indexes WHERE indexname = 'users_lockq_idx'",
)


def _landed(url: str, case: Case) -> bool:
    return bool(sql(url, case.landed))


@pytest.mark.parametrize("case", [READER, WRITER], ids=["reader-vs-alter", "writer-vs-index"])
def test_app_never_stalls_longer_than_the_cap(
        case: Case, at_head: str, migrations: Path,
        spawn: Callable[..., Migrator]) -> None:
    add_revision(migrations, "q01", case.revision)
    app = AppLoad(at_head, case.app, case.app_params, every_s=0.02, max_s=HOLD_S + 20)
    app.start()
    assert app.ready.wait(10)
    holder = LockHolder(at_head, case.holder, HOLD_S).start_holding()
    runner = spawn("upgrade", env=migrator_env(at_head, migrations))
    try:
        runner.wait_for("lock_retry", timeout=HOLD_S)
        assert not _landed(at_head, case), "the revision ran while the table was held"
        holder.join(HOLD_S + 5)
        assert runner.wait(30) == 0, runner.output
    finally:
        holder.release()
        app.finish()

    assert holder.released_at is not None and runner.ended is not None
    assert runner.ended > holder.released_at, "the revision landed before the holder ended"
    assert _landed(at_head, case) and current(at_head) == "q01"
    retries = [r for r in runner.records() if r.get("event") == "lock_retry"]
    assert len(retries) >= 3, runner.output
    assert f"pid {holder.pid} (fault-test-holder" in retries[0]["message"]
    assert not app.failures, app.failures[:3]
    assert len(app.latencies) >= HOLD_S / 0.03, "the app barely ran: the test proved nothing"
    print(f"longest app stall {app.longest_ms:.0f} ms over {len(app.latencies)} queries, "
          f"{len(retries)} retries")
    assert app.longest_ms <= CAP_MS + SLACK_MS, (
        f"an app query stalled {app.longest_ms:.0f} ms (cap {CAP_MS} ms)")


def test_gives_up_with_exit_8_naming_the_holder_and_applies_nothing(
        at_head: str, migrations: Path, spawn: Callable[..., Migrator]) -> None:
    add_revision(migrations, "q01", READER.revision)
    holder = LockHolder(at_head, ["SELECT count(*) FROM users"], hold_s=30,
                        application_name="nightly-report").start_holding()
    try:
        runner = spawn("upgrade", env=migrator_env(
            at_head, migrations, MIGRATOR_RETRY_DEADLINE="2", MIGRATOR_LOCK_RETRIES="40"))
        assert runner.wait(30) == 8, runner.output
        assert runner.seconds < 2 + 3
        failed = runner.event("run_failed")
        assert failed["outcome"] == "failure.lock_timeout"
        assert f"pid {holder.pid} (nightly-report" in failed["message"]
        assert "AccessShareLock on users" in failed["message"]
        assert failed["details"]["blockers"][0]["pid"] == holder.pid
        assert current(at_head) == load_chain(migrations).revisions[-2].id
        assert not column_exists(at_head, "users", "lockq_note")
    finally:
        holder.release()


def test_run_started_logs_every_setting_once(
        at_head: str, spawn: Callable[..., Migrator]) -> None:
    runner = spawn("upgrade", "--lock-timeout", "120", "--lock-timeout-cap", "300",
                   "--statement-timeout", "45000", env=migrator_env(
                       at_head, MIGRATOR_IDLE_IN_TRANSACTION_TIMEOUT_MS="30000",
                       MIGRATOR_LOCK_RETRIES="7", MIGRATOR_RETRY_DEADLINE="9"))
    assert runner.wait() == 0, runner.output
    started = [r for r in runner.records() if r.get("event") == "run_started"]
    assert len(started) == 1
    settings = started[0]["settings"]
    assert settings["lock_timeout_ms"] == 120 and settings["lock_timeout_cap_ms"] == 300
    assert settings["statement_timeout_ms"] == 45000
    assert settings["idle_in_transaction_timeout_ms"] == 30000
    assert settings["lock_retries"] == 7 and settings["retry_deadline_s"] == 9
    assert "s3cr3t" not in runner.output


def test_revision_settings_override_the_run_and_reach_the_session(
        at_head: str, migrations: Path, spawn: Callable[..., Migrator]) -> None:
    """`migrator_settings` in a revision wins for that revision; lock_timeout cannot."""
    add_revision(migrations, "q01", [
        "CREATE TABLE fault_settings AS SELECT current_setting('statement_timeout') AS st,"
        " current_setting('idle_in_transaction_session_timeout') AS idle,"
        " current_setting('lock_timeout') AS lt"],
        extra='migrator_settings = {"statement_timeout": "7min", "lock_timeout": "0",'
              ' "idle_in_transaction_session_timeout": "90s"}\n')
    runner = spawn("upgrade", env=migrator_env(at_head, migrations))
    assert runner.wait() == 0, runner.output
    assert sql(at_head, "SELECT st, idle, lt FROM fault_settings") == [("7min", "90s", "100ms")]


def test_statement_timeout_stops_a_runaway_revision(
        at_head: str, migrations: Path, spawn: Callable[..., Migrator]) -> None:
    add_revision(migrations, "q01", ["ALTER TABLE users ADD COLUMN lockq_note text",
                                     "SELECT pg_sleep(30)"])
    start = time.monotonic()
    runner = spawn("upgrade", "--statement-timeout", "1000",
                   env=migrator_env(at_head, migrations))
    assert runner.wait(30) == 12, runner.output
    assert time.monotonic() - start < 10
    assert "statement_timeout" in runner.event("run_failed")["message"]
    assert not column_exists(at_head, "users", "lockq_note")
