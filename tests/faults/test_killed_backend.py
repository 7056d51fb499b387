"""The revision's backend is SIGKILLed (the OOM killer, a node's cgroup): PostgreSQL goes
through crash recovery and closes every session without a word. The run must still say, in
one line, that the connection was lost and the revision rolled back (exit 4)."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from pathlib import Path

import psycopg
from faultkit import (
    PAUSE,
    Migrator,
    column_exists,
    sql,
    start_paused,
    wait_until,
)

from migrator.localdb import LocalPostgres


def test_a_killed_backend_is_a_lost_connection(
        own_server: LocalPostgres, migrations: Path, spawn: Callable[..., Migrator]) -> None:
    url = own_server.dsn()
    runner = start_paused(url, migrations, spawn, "k01",
                          ["ALTER TABLE users ADD COLUMN killed_note text", PAUSE],
                          "--connect-timeout", "5")
    pid = sql(url, "SELECT pid FROM pg_stat_activity WHERE query = %s", (PAUSE,))[0][0]
    os.kill(pid, signal.SIGKILL)
    assert runner.wait(30) == 4, runner.output
    failed = runner.event("run_failed")
    assert failed["message"] == ("lost the database connection during revision k01 "
                                 "(consuming input failed: server closed the connection "
                                 "unexpectedly); the revision was rolled back")
    wait_until(lambda: _up(url), 30, "the server is back from crash recovery")
    assert not column_exists(url, "users", "killed_note")


def _up(url: str) -> bool:
    try:
        return bool(sql(url, "SELECT 1"))
    except psycopg.OperationalError:  # in recovery, or not accepting connections yet
        return False
