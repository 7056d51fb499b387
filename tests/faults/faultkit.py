"""Tools for the fault tests (imported as `faultkit`): test revisions, watched migrator
processes, app traffic that times itself, and sessions that hold locks.

Everything here is real: real PostgreSQL, real child processes, real signals. Every loop is
bounded in count and time, so a broken migrator fails a test instead of hanging the suite.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
from pgtest import (  # noqa: F401 - re-exported for the fault tests
    MIGRATIONS,
    REPO,
    REPO_HEAD,
    add_revision,
    copy_migrations,
)


def migrator_env(url: str, migrations: Path | None = None, **extra: str) -> dict[str, str]:
    """The environment the hook Job gives the migrator, and nothing from ours."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("DATABASE_URL", "MIGRAT", "STATSD"))}
    env.update({"DATABASE_URL": url, "MIGRATOR_LOG_FORMAT": "json", **extra})
    if migrations is not None:
        env["MIGRATOR_MIGRATIONS_DIR"] = str(migrations)
    return env


def _records(out: list[str], err: list[str]) -> list[dict[str, Any]]:
    return ([json.loads(line) for line in out if line.strip()]
            + [json.loads(line) for line in err if line.startswith("{")])


class Migrator:
    """A `migrator` child process whose JSON log lines are read as they come."""

    def __init__(self, *args: str, env: dict[str, str]) -> None:
        self.started = time.monotonic()
        self.ended: float | None = None
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "migrator", *args], env=env, cwd=REPO, text=True,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        self.lines: list[str] = []
        self.errors: list[str] = []
        self._seen = threading.Condition()
        self._readers = [
            threading.Thread(target=self._read, args=(self.proc.stdout, self.lines), daemon=True),
            threading.Thread(target=self._read, args=(self.proc.stderr, self.errors),
                             daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    def _read(self, stream: Any, sink: list[str]) -> None:
        for line in stream:
            with self._seen:
                sink.append(line.rstrip("\n"))
                self._seen.notify_all()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def records(self) -> list[dict[str, Any]]:
        """Every stdout line as JSON (a line that is not JSON fails the test), then the JSON
        lines of stderr, where errors (run_failed, internal_error) go."""
        with self._seen:
            return _records(self.lines, self.errors)

    def events(self) -> list[str]:
        return [str(r.get("event")) for r in self.records()]

    def event(self, name: str) -> dict[str, Any]:
        found = [r for r in self.records() if r.get("event") == name]
        assert found, f"no {name} event in:\n{self.output}"
        return found[-1]

    def wait_for(self, name: str, timeout: float = 15) -> dict[str, Any]:
        """Block until the process logs event `name` (or fail if it ends or time runs out)."""
        deadline = time.monotonic() + timeout
        with self._seen:
            while True:
                for record in _records(self.lines, self.errors):
                    if record.get("event") == name:
                        return dict(record)
                left = deadline - time.monotonic()
                assert left > 0, f"no {name} event within {timeout}s:\n{self.output}"
                assert self.proc.poll() is None or any(r.is_alive() for r in self._readers), \
                    f"the migrator ended without {name}:\n{self.output}"
                self._seen.wait(min(left, 0.1))

    def wait(self, timeout: float = 60) -> int:
        code = self.proc.wait(timeout)
        self.ended = self.ended or time.monotonic()
        for reader in self._readers:
            reader.join(5)
        return code

    @property
    def seconds(self) -> float:
        assert self.ended is not None, "wait() first"
        return self.ended - self.started

    @property
    def output(self) -> str:
        with self._seen:
            return "\n".join(self.lines + self.errors)

    def stop(self) -> None:
        """SIGKILL it if it still runs: cleanup after a failed test."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.wait(10)


class AppLoad(threading.Thread):
    """The app: one statement every `every_s` on a connection of its own, each one timed.

    Bounded: stops after `max_queries` statements or `max_s` seconds, whatever comes first.
    """

    def __init__(self, url: str, statement: str, params: Callable[[], tuple[Any, ...]] | None
                 = None, every_s: float = 0.02, max_queries: int = 1500,
                 max_s: float = 30) -> None:
        super().__init__(daemon=True)
        self.url, self.statement, self.params = url, statement, params
        self.every_s, self.max_queries, self.max_s = every_s, max_queries, max_s
        self.latencies: list[float] = []
        self.failures: list[str] = []
        self._done = threading.Event()
        self.ready = threading.Event()

    def run(self) -> None:
        with psycopg.connect(self.url, autocommit=True,
                             application_name="fault-test-app") as conn:
            self.ready.set()
            end = time.monotonic() + self.max_s
            while (not self._done.is_set() and len(self.latencies) < self.max_queries
                   and time.monotonic() < end):
                start = time.monotonic()
                try:
                    conn.execute(self.statement, self.params() if self.params else None)
                except psycopg.Error as error:
                    self.failures.append(str(error).splitlines()[0])
                took = time.monotonic() - start
                self.latencies.append(took)
                self._done.wait(max(self.every_s - took, 0))

    def finish(self) -> None:
        self._done.set()
        self.join(10)
        assert not self.is_alive(), "the app load thread did not stop"

    @property
    def longest_ms(self) -> float:
        return max(self.latencies, default=0.0) * 1000


class LockHolder(threading.Thread):
    """A session that opens a transaction, runs `statements` (taking their locks), holds
    them for `hold_s` (or until `release()`), then commits."""

    def __init__(self, url: str, statements: list[str], hold_s: float,
                 application_name: str = "fault-test-holder") -> None:
        super().__init__(daemon=True)
        self.url, self.statements, self.hold_s = url, statements, hold_s
        self.application_name = application_name
        self.locked = threading.Event()
        self.pid: int | None = None
        self.released_at: float | None = None  # time.monotonic() at commit
        self._release = threading.Event()

    def run(self) -> None:
        with psycopg.connect(self.url, application_name=self.application_name) as conn:
            row = conn.execute("SELECT pg_backend_pid()").fetchone()
            self.pid = row[0] if row else None
            for statement in self.statements:
                conn.execute(statement)
            self.locked.set()
            self._release.wait(self.hold_s)
            conn.commit()
            self.released_at = time.monotonic()

    def start_holding(self, timeout: float = 10) -> LockHolder:
        self.start()
        assert self.locked.wait(timeout), "the lock holder never got its locks"
        return self

    def release(self) -> None:
        self._release.set()
        self.join(10)


# A pause in a test revision that only the first run takes: the test sets `fault.pause` on
# the database, interrupts the run during the pause, clears it, and the rerun is quick.
PAUSE = "SELECT pg_sleep(coalesce(current_setting('fault.pause', true), '0')::float)"


def set_pause(url: str, seconds: float | None) -> None:
    """New sessions of the database of `url` pause `seconds` at PAUSE (None: not at all)."""
    with psycopg.connect(url, autocommit=True) as conn:
        name = conn.info.dbname
        if seconds is None:
            conn.execute(f'ALTER DATABASE "{name}" RESET fault.pause')
        else:
            conn.execute(f"ALTER DATABASE \"{name}\" SET fault.pause = '{seconds}'")


def pausing(url: str) -> bool:
    """A migrator session is in PAUSE now."""
    return bool(sql(url, "SELECT 1 FROM pg_stat_activity WHERE state = 'active' AND "
                         "query = %s AND application_name LIKE 'yomu-migrate/%%'", (PAUSE,)))


def start_paused(url: str, migrations: Path, spawn: Callable[..., Migrator], revision: str,
                 statements: list[str], *args: str) -> Migrator:
    """`migrator upgrade *args` with a new `revision` of `statements` (one of them PAUSE),
    returned once the revision sits in its pause (up to 30 s): the moment to cause a fault."""
    add_revision(migrations, revision, statements)
    set_pause(url, 30)
    runner = spawn("upgrade", *args, env=migrator_env(url, migrations))
    wait_until(lambda: pausing(url), 30, "the revision reaches its pause")
    return runner


def sql(url: str, statement: str, params: tuple[Any, ...] | None = None) -> list[Any]:
    """Run one statement in its own autocommit session; its rows (empty if none)."""
    with psycopg.connect(url, autocommit=True) as conn:
        cursor = conn.execute(statement, params)
        return cursor.fetchall() if cursor.description else []


def current(url: str) -> str | None:
    rows = sql(url, "SELECT version_num FROM alembic_version")
    return rows[0][0] if rows else None


def column_exists(url: str, table: str, column: str) -> bool:
    return bool(sql(url, "SELECT 1 FROM information_schema.columns WHERE table_schema ="
                         " 'public' AND table_name = %s AND column_name = %s", (table, column)))


def migrator_sessions(url: str) -> list[tuple[int, str, str]]:
    """Backends of the migrator still connected to the database of `url`."""
    return [tuple(r) for r in sql(
        url, "SELECT pid, application_name, state FROM pg_stat_activity WHERE "
             "application_name LIKE 'yomu-migrate/%%' AND datname = current_database()")]


def advisory_locks(url: str) -> list[tuple[int, bool]]:
    return [tuple(r) for r in sql(
        url, "SELECT pid, granted FROM pg_locks WHERE locktype = 'advisory' AND "
             "database = (SELECT oid FROM pg_database WHERE datname = current_database())")]


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> float:
    """Poll `condition` (every 50 ms) until true; returns the seconds it took."""
    start = time.monotonic()
    while not condition():
        assert time.monotonic() - start < timeout, f"not within {timeout}s: {what}"
        time.sleep(0.05)
    return time.monotonic() - start


def new_email() -> tuple[str, str]:
    token = uuid.uuid4().hex
    return (f"g-{token}", f"{token}@example.test")
