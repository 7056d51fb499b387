"""The database misbehaves: restarted mid-run, not up yet, never up, wrong password; and
failures that will not get better (TLS refused, a bad parameter) are not retried."""

from __future__ import annotations

import select
import socket
import time
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest
from faultkit import (
    PAUSE,
    REPO_HEAD,
    Migrator,
    add_revision,
    column_exists,
    current,
    migrator_env,
    pausing,
    set_pause,
    sql,
    start_paused,
    wait_until,
)
from pgtest import TEST_PASSWORD

from migrator.chain import load_chain
from migrator.localdb import LocalPostgres


def _one_line_failure(runner: Migrator, code: int) -> str:
    failed = runner.event("run_failed")
    assert failed["exit_code"] == code
    assert "\n" not in failed["message"]
    assert "Traceback" not in runner.output, runner.output
    return str(failed["message"])


def test_restart_mid_revision_fails_clearly_and_rerun_succeeds(
        own_server: LocalPostgres, migrations: Path, spawn: Callable[..., Migrator]) -> None:
    url = own_server.dsn()
    runner = start_paused(url, migrations, spawn, "r01",
                          ["ALTER TABLE users ADD COLUMN restart_note text", PAUSE],
                          "--connect-timeout", "5")
    own_server.restart()
    assert runner.wait(30) == 4, runner.output
    message = _one_line_failure(runner, 4)
    assert "r01" in message and "rolled back" in message
    assert current(url) == load_chain(migrations).revisions[-2].id
    assert not column_exists(url, "users", "restart_note")

    set_pause(url, None)
    rerun = spawn("upgrade", env=migrator_env(url, migrations))
    assert rerun.wait(30) == 0, rerun.output
    assert current(url) == "r01" and column_exists(url, "users", "restart_note")


def test_database_up_three_seconds_late_is_waited_for(
        own_server: LocalPostgres, spawn: Callable[..., Migrator]) -> None:
    url = own_server.dsn()
    own_server.stop()
    runner = spawn("upgrade", "--connect-timeout", "15", env=migrator_env(url))
    time.sleep(3)
    assert runner.proc.poll() is None, runner.output
    own_server.start()
    assert runner.wait(30) == 0, runner.output
    assert "connect_retry" in runner.events()
    assert current(url) == load_chain(migrations_dir()).head


def migrations_dir() -> Path:
    from migrator.config import default_migrations_dir

    return default_migrations_dir()


def test_database_never_up_exits_4_at_the_deadline(
        own_server: LocalPostgres, spawn: Callable[..., Migrator]) -> None:
    own_server.stop()
    runner = spawn("upgrade", "--connect-timeout", "5", env=migrator_env(own_server.dsn()))
    assert runner.wait(30) == 4, runner.output
    assert 5 <= runner.seconds < 5 + 2, f"took {runner.seconds:.2f}s"
    message = _one_line_failure(runner, 4)
    assert f"127.0.0.1:{own_server.port}/postgres" in message


def test_unresolvable_host_is_retried_then_exits_4(spawn: Callable[..., Migrator]) -> None:
    runner = spawn("upgrade", "--connect-timeout", "2",
                   env=migrator_env("postgresql://app:pw@no-such-host.invalid:5432/yomu"))
    assert runner.wait(30) == 4, runner.output
    assert runner.seconds >= 2
    _one_line_failure(runner, 4)
    assert ":pw@" not in runner.output


def test_wrong_password_fails_at_once_without_showing_it(
        database_url: str, spawn: Callable[..., Migrator]) -> None:
    wrong = "Wr0ng-" + TEST_PASSWORD[::-1]
    url = database_url.replace(TEST_PASSWORD, wrong)
    runner = spawn("upgrade", "--connect-timeout", "30", env=migrator_env(url))
    assert runner.wait(30) == 5, runner.output
    assert runner.seconds < 3, "an authentication failure must not be retried"
    message = _one_line_failure(runner, 5)
    assert "authentication failed" in message
    assert wrong not in runner.output and TEST_PASSWORD not in runner.output
    assert "connect_retry" not in runner.events()


def test_missing_database_fails_at_once(
        database_url: str, spawn: Callable[..., Migrator]) -> None:
    url = database_url.rsplit("/", 1)[0] + "/no_such_db"
    runner = spawn("upgrade", "--connect-timeout", "30", env=migrator_env(url))
    assert runner.wait(30) == 5, runner.output
    assert runner.seconds < 3
    assert "does not exist" in _one_line_failure(runner, 5)
    assert TEST_PASSWORD not in runner.output
    with psycopg.connect(database_url) as conn:  # the real database is untouched
        assert conn.execute("SELECT to_regclass('alembic_version')").fetchone() == (None,)


def test_lost_lock_session_stops_the_run_before_the_next_commit(
        at_head: str, migrations: Path, spawn: Callable[..., Migrator]) -> None:
    """The lock session dies (terminated, or a restart the revision's own connection did
    not see): the revision in flight must not commit without the lock, none may follow."""
    add_revision(migrations, "r01", ["ALTER TABLE users ADD COLUMN lost_note text", PAUSE])
    add_revision(migrations, "r02", ["CREATE TABLE lost_after (id int PRIMARY KEY)"])
    set_pause(at_head, 2)
    runner = spawn("upgrade", env=migrator_env(at_head, migrations))
    wait_until(lambda: pausing(at_head), 20, "the revision reaches its pause")
    set_pause(at_head, None)
    lock_pid = sql(at_head, "SELECT pid FROM pg_locks WHERE locktype = 'advisory'")[0][0]
    sql(at_head, "SELECT pg_terminate_backend(%s)", (lock_pid,))
    # The pause ends, and the revision would commit now, were the lock not checked first.
    assert runner.wait(30) == 4, runner.output
    assert "lost the migration lock" in runner.event("run_failed")["message"]
    assert current(at_head) == REPO_HEAD
    assert not column_exists(at_head, "users", "lost_note")

    rerun = spawn("upgrade", env=migrator_env(at_head, migrations))
    assert rerun.wait(30) == 0, rerun.output
    assert current(at_head) == "r02"


def test_server_that_never_answers_is_abandoned_at_the_deadline(
        spawn: Callable[..., Migrator]) -> None:
    """A port that accepts TCP but never speaks (a hung server, a half-open proxy)."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)  # the kernel completes handshakes; nobody ever answers
        port = silent.getsockname()[1]
        runner = spawn("upgrade", "--connect-timeout", "3", env=migrator_env(
            f"postgresql://app:pw@127.0.0.1:{port}/yomu"))
        assert runner.wait(30) == 4, runner.output
    assert 3 <= runner.seconds < 3 + 1.5, f"took {runner.seconds:.2f}s"
    _one_line_failure(runner, 4)


def test_tls_the_server_does_not_offer_fails_at_once_naming_the_effective_host(
        own_server: LocalPostgres, spawn: Callable[..., Migrator]) -> None:
    """sslmode=require against a server without TLS will not get better: exit 3, at once,
    naming where libpq connected (the ?host= that overrode the URL's host)."""
    url = (f"postgresql://postgres:Pw-Not-Shown@db.invalid:5432/postgres?host=127.0.0.1"
           f"&port={own_server.port}&sslmode=require")
    runner = spawn("upgrade", "--connect-timeout", "30", env=migrator_env(url))
    assert runner.wait(30) == 3, runner.output
    assert runner.seconds < 3, "a permanent error must not be retried"
    message = _one_line_failure(runner, 3)
    assert f"cannot connect to 127.0.0.1:{own_server.port}/postgres" in message
    assert "TLS" in message and "db.invalid" not in runner.output
    assert "sslmode" in runner.event("run_failed")["next_step"]
    assert "connect_retry" not in runner.events() and "Pw-Not-Shown" not in runner.output


@pytest.mark.parametrize(("query", "says"), [
    ("sslmode=bogus", "sslmode must be one of"),
    ("bogus=1", "unknown parameter 'bogus'"),
    ("target_session_attrs=writable", "target_session_attrs must be one of"),
    ("keepalives=on", "keepalives must be a whole number"),
])
def test_a_parameter_libpq_refuses_exits_3_without_connecting(
        spawn: Callable[..., Migrator], query: str, says: str) -> None:
    with socket.socket() as listener:  # would see any connection attempt
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        port = listener.getsockname()[1]
        runner = spawn("upgrade", "--connect-timeout", "30", env=migrator_env(
            f"postgresql://app:pw@127.0.0.1:{port}/yomu?{query}"))
        assert runner.wait(30) == 3, runner.output
        assert says in _one_line_failure(runner, 3)
        assert select.select([listener], [], [], 0)[0] == [], "the migrator connected"
    assert runner.seconds < 3
