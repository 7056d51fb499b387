"""The lock_timeout retry loop (migrator/retry.py) against real table locks.

Every revision and every grant goes through it: the first attempt waits at most
`lock_timeout` (100 ms), each retry waits 1.5 times longer up to the cap (250 ms, the app's
worst stall), pauses between attempts are jittered (0.2 s doubling to 5 s, x0.5-1.5), and
attempts are bounded by a count and a deadline. Only a lock timeout or a deadlock is
retried; the session that held the table is named.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Iterator

import psycopg
import pytest
import sqlalchemy as sa

from migrator import retry
from migrator.config import Settings
from migrator.errors import LockTimeoutExhausted

Conn = psycopg.Connection[tuple[object, ...]]


class Attempts:
    """An attempt adds a column to `items`, waiting at most the lock_timeout it is given."""

    def __init__(self, url: str, sql: str = "ALTER TABLE items ADD COLUMN note text") -> None:
        self.conn: Conn = psycopg.connect(url, autocommit=True, application_name="yomu-migrate/t")
        self.sql = sql
        self.timeouts: list[int] = []

    def __call__(self, lock_timeout_ms: int) -> str:
        self.timeouts.append(lock_timeout_ms)
        with self.conn.transaction():
            self.conn.execute(f"SET LOCAL lock_timeout = {lock_timeout_ms}")  # type: ignore[arg-type]
            self.conn.execute(self.sql)  # type: ignore[arg-type]
        return "done"


@pytest.fixture
def url(database_url: str) -> str:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE items (id int); CREATE TABLE other (id int)")
    return database_url


@pytest.fixture
def attempts(url: str) -> Iterator[Attempts]:
    made = Attempts(url)
    yield made
    made.conn.close()


@pytest.fixture
def watcher(url: str) -> Iterator[Conn]:
    with psycopg.connect(url, autocommit=True) as conn:
        yield conn


def _holder(url: str, name: str | None = "nightly-report") -> Conn:
    """A session with an open transaction holding ACCESS SHARE on `items`."""
    conn: Conn = psycopg.connect(url, **({"application_name": name} if name else {}))
    conn.execute("SELECT count(*) FROM items")
    return conn


def _settings(url: str, **values: float) -> Settings:
    return Settings(database_url=url, **values)  # type: ignore[arg-type]


def test_a_free_table_is_one_attempt_at_the_first_timeout(url: str, attempts: Attempts,
                                                          watcher: Conn) -> None:
    assert retry.with_lock_retries(_settings(url), "t", attempts, watcher) == "done"
    assert attempts.timeouts == [100]


def test_retries_ramp_to_the_cap_and_land_after_the_holder_ends(
        url: str, attempts: Attempts, watcher: Conn, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="migrator")
    holder = _holder(url)
    pid = holder.info.backend_pid
    letting_go = threading.Timer(1.5, holder.commit)
    letting_go.start()
    try:
        started = time.monotonic()
        result = retry.with_lock_retries(_settings(url), "revision 0003", attempts, watcher)
        took = time.monotonic() - started
    finally:
        letting_go.join()
        holder.close()
    assert result == "done" and took >= 1.5
    assert attempts.timeouts[:3] == [100, 150, 225]
    assert set(attempts.timeouts[3:]) <= {250}, "the cap is the app's worst stall"
    retries = [r for r in caplog.records if getattr(r, "event", None) == "lock_retry"]
    assert len(retries) == len(attempts.timeouts) - 1
    message = retries[0].getMessage()
    assert message.startswith("revision 0003: table busy (canceling statement due to lock "
                              "timeout), attempt 1 failed; retrying in ")
    assert f"held by pid {pid} (nightly-report, idle in transaction, AccessShareLock on " \
           f"items for " in message
    assert [r.attempt for r in retries] == list(range(1, len(retries) + 1))  # type: ignore[attr-defined]


def test_pauses_double_from_a_fifth_of_a_second_to_five_seconds(
        url: str, attempts: Attempts, watcher: Conn, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each pause is the schedule times a jitter of 0.5 to 1.5; here the jitter's ends."""
    slept: list[float] = []
    monkeypatch.setattr(retry.time, "sleep", slept.append)
    holder = _holder(url)
    try:
        for jitter, expected in ((1.5, [0.3, 0.6, 1.2, 2.4, 4.8, 5.0, 5.0]),
                                 (0.5, [0.1, 0.2, 0.4, 0.8, 1.6, 2.5, 2.5])):
            monkeypatch.setattr(retry.random, "uniform",
                                lambda low, high, j=jitter: (low, high) == (0.5, 1.5) and j)
            slept.clear()
            attempts.timeouts.clear()
            with pytest.raises(LockTimeoutExhausted):
                retry.with_lock_retries(_settings(url, lock_retries=8), "t", attempts, watcher)
            assert slept == pytest.approx(expected)
            # lock_timeout x1.5 per attempt, up to the cap: the app's worst stall
            assert attempts.timeouts == [100, 150, 225, 250, 250, 250, 250, 250]
    finally:
        holder.close()


def test_attempts_are_bounded_by_their_number(url: str, attempts: Attempts,
                                              watcher: Conn) -> None:
    holder = _holder(url, name=None)
    pid = holder.info.backend_pid
    try:
        started = time.monotonic()
        with pytest.raises(LockTimeoutExhausted) as raised:
            retry.with_lock_retries(_settings(url, lock_retries=3), "revision 0003", attempts,
                                    watcher, revision="0003")
        took = time.monotonic() - started
    finally:
        holder.close()
    assert attempts.timeouts == [100, 150, 225]
    assert took < 0.475 + 0.3 + 0.6 + 1.0, "pauses of 0.2 and 0.4 s, jittered, and no more"
    error = raised.value
    assert re.fullmatch(
        rf"revision 0003 could not get its locks in 3 attempts \(lock_timeout up to 225 ms\); "
        rf"held by pid {pid} \(no application_name, idle in transaction, AccessShareLock on "
        rf"items for \d+s\)", error.message), error.message
    assert error.details["revision"] == "0003"
    assert [b["pid"] for b in error.details["blockers"]] == [pid]  # type: ignore[union-attr]


def test_attempts_are_bounded_by_the_deadline(url: str, attempts: Attempts,
                                              watcher: Conn) -> None:
    holder = _holder(url)
    try:
        started = time.monotonic()
        with pytest.raises(LockTimeoutExhausted):
            retry.with_lock_retries(_settings(url, retry_deadline_s=1.2), "t", attempts, watcher)
        took = time.monotonic() - started
    finally:
        holder.close()
    assert 2 <= len(attempts.timeouts) < 10
    assert took < 1.2 + 0.3, "no pause may end past the deadline"


def test_a_deadlock_is_retried(url: str, attempts: Attempts, watcher: Conn) -> None:
    """The attempt takes `other` then `items`; the app holds `items` and then wants
    `other`: PostgreSQL ends one of the two, and ours (the quicker to check) retries."""
    attempts.sql = ("SET LOCAL deadlock_timeout = '100ms'; LOCK TABLE other; "
                    "SELECT pg_sleep(0.3); LOCK TABLE items")
    app: Conn = psycopg.connect(url)
    app.execute("LOCK TABLE items IN SHARE MODE")

    def app_wants_other() -> None:
        time.sleep(0.15)  # after our attempt has locked `other`
        app.execute("SELECT count(*) FROM other")
        app.commit()

    thread = threading.Thread(target=app_wants_other)
    thread.start()
    try:
        result = retry.with_lock_retries(_settings(url, lock_timeout_ms=5000,
                                                   lock_timeout_cap_ms=5000), "t", attempts,
                                         watcher)
    finally:
        thread.join(10)
        app.close()
    assert result == "done" and len(attempts.timeouts) == 2


def test_other_errors_are_not_retried(url: str, watcher: Conn) -> None:
    attempts = Attempts(url, "ALTER TABLE missing ADD COLUMN note text")
    try:
        with pytest.raises(psycopg.errors.UndefinedTable):
            retry.with_lock_retries(_settings(url), "t", attempts, watcher)
    finally:
        attempts.conn.close()
    assert attempts.timeouts == [100]


def test_the_holder_named_is_an_app_session_on_our_tables(url: str, attempts: Attempts,
                                                          watcher: Conn) -> None:
    """Our own sessions are left out; with the watcher gone, the message still reads."""
    ours = _holder(url, name="yomu-migrate/0.1.0 migrate")
    try:
        with pytest.raises(LockTimeoutExhausted) as raised:
            retry.with_lock_retries(_settings(url, lock_retries=2), "t", attempts, watcher)
        assert "held by a session that has since finished" in raised.value.message
        watcher.close()
        with pytest.raises(LockTimeoutExhausted) as raised:
            retry.with_lock_retries(_settings(url, lock_retries=2), "t", attempts, watcher)
        assert "held by a session that has since finished" in raised.value.message
    finally:
        ours.close()


def test_a_lock_timeout_raised_through_sqlalchemy_is_retried_and_told_plainly(
        url: str, watcher: Conn, caplog: pytest.LogCaptureFixture) -> None:
    """Revisions run through SQLAlchemy, which wraps the driver's error: it is still a lock
    timeout, and the log shows PostgreSQL's words, not the wrapper's."""
    caplog.set_level(logging.INFO, logger="migrator")
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    timeouts: list[int] = []

    def attempt(lock_timeout_ms: int) -> None:
        timeouts.append(lock_timeout_ms)
        with engine.begin() as conn:
            conn.exec_driver_sql(f"SET LOCAL lock_timeout = {lock_timeout_ms}")
            conn.exec_driver_sql("ALTER TABLE items ADD COLUMN note text")

    holder = _holder(url)
    try:
        with pytest.raises(LockTimeoutExhausted):
            retry.with_lock_retries(_settings(url, lock_retries=2), "revision 0003", attempt,
                                    watcher)
    finally:
        holder.close()
        engine.dispose()
    assert timeouts == [100, 150]
    retried = [r.getMessage() for r in caplog.records if getattr(r, "event", None) == "lock_retry"]
    assert len(retried) == 1
    assert retried[0].startswith("revision 0003: table busy (canceling statement due to lock "
                                 "timeout), attempt 1 failed")


def test_the_oldest_three_holders_are_named(url: str, attempts: Attempts, watcher: Conn) -> None:
    """Many sessions may hold the table: the message names the three whose transactions
    are oldest, oldest first (the likeliest to end the wait by ending)."""
    holders = []
    try:
        for n in range(4):
            holders.append(_holder(url, name=f"report-{n}"))
            time.sleep(0.05)
        oldest = [(str(h.info.backend_pid), f"report-{n}") for n, h in enumerate(holders[:3])]
        with pytest.raises(LockTimeoutExhausted) as raised:
            retry.with_lock_retries(_settings(url, lock_retries=1), "t", attempts, watcher)
    finally:
        for holder in holders:
            holder.close()
    assert re.findall(r"pid (\d+) \((report-\d)", raised.value.message) == oldest
    assert "AccessShareLock on items for 0s), pid " in raised.value.message
