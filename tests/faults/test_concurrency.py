"""One migrator at a time: a crowd of runners, and a session that will not let go."""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from faultkit import Migrator, add_revision, current, migrator_env, sql

from migrator import lock
from migrator.chain import load_chain
from migrator.errors import LockWaitTimeout

RUNNERS = 20


def test_twenty_runners_at_once_apply_each_revision_once(
        database_url: str, migrations: Path, spawn: Callable[..., Migrator]) -> None:
    # A slow second revision keeps the winner busy, so late runners queue on the lock and
    # must re-read the state after they get it.
    add_revision(migrations, "f01", ["SELECT pg_sleep(2)",
                                     "ALTER TABLE users ADD COLUMN crowd_note text"])
    chain = load_chain(migrations)
    env = migrator_env(database_url, migrations)
    runners = [spawn("upgrade", "--lock-wait", "60", env=env) for _ in range(RUNNERS)]
    codes = [runner.wait(90) for runner in runners]

    assert codes == [0] * RUNNERS, "\n\n".join(r.output for r in runners if r.wait())
    outcomes = Counter(r.event("run_finished")["outcome"] for r in runners)
    assert outcomes == {"success": 1, "noop": RUNNERS - 1}
    applied = [str(r["revision"]) for run in runners for r in run.records()
               if r.get("event") == "revision_applied"]
    assert sorted(applied) == sorted(chain.ids())
    waited_then_found_done = [r for r in runners if "lock_acquired" in r.events()
                              and r.event("run_finished")["outcome"] == "noop"]
    assert waited_then_found_done, "no runner queued on the lock: the test proved nothing"
    assert current(database_url) == chain.head
    rows = sql(database_url, "SELECT revision FROM yomu_migrate_history ORDER BY revision")
    assert [r[0] for r in rows] == sorted(chain.ids())


@pytest.fixture
def lock_held(database_url: str) -> Iterator[tuple[psycopg.Connection[Any], int]]:
    conn = psycopg.connect(database_url, autocommit=True, application_name="fault-holder")
    conn.execute("SELECT pg_advisory_lock(%s)", (lock.LOCK_KEY,))
    row = conn.execute("SELECT pg_backend_pid()").fetchone()
    assert row is not None
    yield conn, row[0]
    conn.close()


def test_held_lock_names_the_holder_and_exits_7_within_the_wait(
        database_url: str, lock_held: tuple[psycopg.Connection[Any], int],
        spawn: Callable[..., Migrator]) -> None:
    _, holder_pid = lock_held
    wait_s = 2
    runner = spawn("upgrade", "--lock-wait", str(wait_s), env=migrator_env(database_url))
    assert runner.wait(30) == 7, runner.output
    assert runner.seconds <= wait_s + 1, f"took {runner.seconds:.2f}s"
    waiting = runner.event("lock_waiting")
    assert waiting["holder"]["pid"] == holder_pid
    assert waiting["holder"]["application_name"] == "fault-holder"
    assert waiting["holder"]["client_addr"] == "127.0.0.1"
    failed = runner.event("run_failed")
    assert failed["outcome"] == "failure.lock_wait" and failed["exit_code"] == 7
    assert f"pid {holder_pid} (fault-holder)" in failed["message"]
    assert "yomu_migrate_history" not in {r[0] for r in sql(
        database_url, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}


def test_waiting_reports_the_holder_every_few_seconds(
        database_url: str, lock_held: tuple[psycopg.Connection[Any], int],
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(lock, "REPORT_EVERY_S", 0.5)
    caplog.set_level(logging.INFO, logger="migrator")
    with psycopg.connect(database_url, autocommit=True) as conn:
        start = time.monotonic()
        with pytest.raises(LockWaitTimeout):
            lock.acquire(conn, 1.6)
        assert 1.6 <= time.monotonic() - start < 2.2
    reports = [r for r in caplog.records if getattr(r, "event", None) == "lock_waiting"]
    # Polls back off (up to 1 s), so a 0.5 s interval yields a report on every other poll.
    assert len(reports) >= 2, [r.getMessage() for r in reports]
    assert all("fault-holder" in r.getMessage() for r in reports)
    waited = [r.waited_s for r in reports]  # type: ignore[attr-defined]
    assert waited == sorted(waited) and waited[-1] >= 0.5


def test_lock_is_taken_soon_after_the_holder_lets_go(
        database_url: str, lock_held: tuple[psycopg.Connection[Any], int]) -> None:
    holder, _ = lock_held
    letting_go = threading.Timer(1.0, holder.execute, ("SELECT pg_advisory_unlock_all()",))
    with psycopg.connect(database_url, autocommit=True) as conn:
        letting_go.start()
        waited = lock.acquire(conn, 5)
        # Polling backs off to at most 1 s (x1.5 jitter): never much later than the release.
        assert 1.0 <= waited < 2.6
        info, own = lock.holder(conn), lock.session(conn)
        assert info is not None and own is not None and info["pid"] == own.info.backend_pid
        lock.release(conn)
        assert lock.holder(conn) is None
    letting_go.join()
