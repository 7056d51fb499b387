"""The migration lock (migrator/lock.py) on a real server: one migrator per database,
polled quickly, the holder named, checked before each revision, released cleanly."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator

import psycopg
import pytest

from migrator import lock
from migrator.errors import ConnectError, LockWaitTimeout

Conn = psycopg.Connection[tuple[object, ...]]


@pytest.fixture
def conn(database_url: str) -> Iterator[Conn]:
    with psycopg.connect(database_url, autocommit=True, application_name="yomu-test lock") as c:
        yield c


@pytest.fixture
def other(database_url: str) -> Iterator[Conn]:
    """Another migrator's lock session on the same database."""
    with psycopg.connect(database_url, autocommit=True, application_name="other-migrator") as c:
        yield c


def _lock_pid(conn: Conn) -> int:
    own = lock.session(conn)
    assert own is not None
    return own.info.backend_pid


def test_a_free_lock_is_taken_at_once_and_names_its_holder(conn: Conn, other: Conn) -> None:
    assert lock.holder(other) is None
    assert lock.acquire(conn, 5) < 0.5
    info = lock.holder(other)
    assert info is not None
    # Held by the open transaction of the lock's own connection, made like `conn`.
    own = lock.session(conn)
    assert own is not None and info["pid"] == own.info.backend_pid != conn.info.backend_pid
    assert info["application_name"] == "yomu-test lock"
    assert info["client_addr"] == "127.0.0.1"
    assert info["state"] == "idle in transaction" and 0 <= info["connected_s"] < 60
    lock.ensure_held(conn, "before revision 0001")  # ours: no error


def test_a_held_lock_times_out_naming_the_holder(conn: Conn, other: Conn,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="migrator")
    lock.acquire(other, 1)
    started = time.monotonic()
    with pytest.raises(LockWaitTimeout) as raised:
        lock.acquire(conn, 0.7)
    assert 0.7 <= time.monotonic() - started < 0.7 + 0.3
    pid = _lock_pid(other)
    # Named at once, then every REPORT_EVERY_S (5 s): once in a 0.7 s wait.
    waiting = [r for r in caplog.records if getattr(r, "event", None) == "lock_waiting"]
    assert [(r.waited_s, r.holder["pid"]) for r in waiting] == [(0.0, pid)]  # type: ignore[attr-defined]
    assert raised.value.message.startswith(
        f"another migrator held the migration lock for the whole 0.7s wait: pid {pid} "
        "(other-migrator) from 127.0.0.1, connected ")
    assert raised.value.message.endswith("s, idle in transaction")
    assert raised.value.details["holder"]["pid"] == pid  # type: ignore[index]
    with pytest.raises(ConnectError, match="lost the migration lock during revision 0002"):
        lock.ensure_held(conn, "during revision 0002")


def test_the_lock_is_taken_within_a_poll_of_its_release(conn: Conn, other: Conn) -> None:
    """The first polls come every 50 ms or so (x0.5-1.5, doubling): a runner queued behind
    a quick one does not sleep a second for nothing."""
    lock.acquire(other, 1)
    threading.Timer(0.1, lock.release, (other,)).start()
    waited = lock.acquire(conn, 5)
    assert 0.1 <= waited < 0.45


def test_the_lock_is_per_database(conn: Conn, other: Conn, database_url: str) -> None:
    """Another database of the same cluster (staging beside dev) has its own lock."""
    lock.acquire(other, 1)
    with psycopg.connect(database_url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as c:
        assert lock.holder(c) is None
        assert lock.acquire(c, 0.5) < 0.5
        lock.release(c)
    assert lock.holder(conn) is not None


def test_release_lets_the_next_one_in_and_survives_a_dead_session(conn: Conn,
                                                                  other: Conn) -> None:
    lock.acquire(conn, 1)
    lock.release(conn)
    assert lock.holder(other) is None
    lock.acquire(conn, 1)
    other.execute("SELECT pg_terminate_backend(%s)", (_lock_pid(conn),))
    time.sleep(0.1)
    lock.release(conn)  # the session is gone, and so is its lock: no error
    assert lock.session(conn) is None
    lock.release(conn)  # released: nothing to do
    assert lock.acquire(other, 1) < 0.5


def test_a_lost_session_is_a_lost_lock(conn: Conn, other: Conn) -> None:
    lock.acquire(conn, 1)
    other.execute("SELECT pg_terminate_backend(%s)", (_lock_pid(conn),))
    time.sleep(0.1)
    with pytest.raises(ConnectError) as raised:
        lock.ensure_held(conn, "before revision 0003")
    assert raised.value.message.startswith("lost the migration lock before revision 0003: ")
    assert raised.value.message.endswith("stopped so that no two migrators run at once")
    assert raised.value.next_step == ("run again: revisions already applied stay applied, "
                                      "the rest follow")
    lock.release(conn)
    with pytest.raises(ConnectError):
        lock.ensure_held(conn, "before revision 0003")


def test_describe_says_who_holds_it() -> None:
    assert lock.describe(None) == "a session that has since ended"
    assert lock.describe({"pid": 7, "application_name": "", "client_addr": "local",
                          "connected_s": 3, "state": "active"}) == \
        "pid 7 (no application_name) from local, connected 3s, active"


def test_the_key_is_the_one_every_version_uses(conn: Conn, other: Conn) -> None:
    """An older image mid-rollout takes the same lock: the bytes `yomu-mig` as a bigint
    (docs/safety.md), or two versions could migrate at once."""
    other.execute("SELECT pg_advisory_lock(x'796f6d752d6d6967'::bigint)")
    info = lock.holder(conn)
    assert info is not None and info["pid"] == other.info.backend_pid
    with pytest.raises(LockWaitTimeout):
        lock.acquire(conn, 0.2)
