"""A transaction-pooling PgBouncer with other clients' traffic: every run is refused (exit 6)
before it changes anything, and no run leaves the migration lock on a pooled server
connection (the next deploy would wait on it, exit 7, until the pooler recycled it).

Real PgBouncer (Debian), real PostgreSQL, real migrator processes; the traffic is other
clients running short transactions through the same pool the whole time."""

from __future__ import annotations

import random
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable

import psycopg
from faultkit import REPO, Migrator, migrator_env, sql, wait_until
from test_unsafe_targets import PgBouncer, pgbouncer  # noqa: F401 - the fixture

from migrator import lock
from migrator.localdb import LocalPostgres

RUNS = 12


class Traffic:
    """`clients` connections through the pooler, each running short transactions until
    stopped: the pool's server connections change hands all the time, as in production."""

    def __init__(self, dsn: str, clients: int = 8) -> None:
        self.dsn, self.queries, self.errors = dsn, 0, []  # type: ignore[var-annotated]
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(i,), daemon=True)
                         for i in range(clients)]
        for thread in self._threads:
            thread.start()

    def _run(self, number: int) -> None:
        with psycopg.connect(self.dsn, autocommit=True, application_name="other-client",
                             prepare_threshold=None) as c:
            while not self._stop.is_set():
                try:
                    if number % 3 == 0:
                        c.execute("SELECT pg_sleep(0.002)")
                    elif number % 3 == 1:
                        with c.transaction():
                            c.execute("SELECT 1")
                            c.execute("SELECT pg_sleep(0.001)")
                    else:  # a longer one: the pool runs short of idle servers now and then
                        with c.transaction():
                            c.execute("SELECT pg_sleep(0.03)")
                    self.queries += 1
                    time.sleep(random.uniform(0, 0.004))  # a client between its queries
                except psycopg.Error as error:
                    self.errors.append(str(error).splitlines()[0])
                    return

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(10)


def _our_locks(url: str) -> list[tuple[int, str]]:
    """Sessions holding the migration lock, anywhere on the server."""
    return [tuple(r) for r in sql(url, """
        SELECT l.pid, coalesce(a.application_name, '') FROM pg_locks l
        LEFT JOIN pg_stat_activity a ON a.pid = l.pid
        WHERE l.locktype = 'advisory' AND l.classid = (%(key)s >> 32)::oid
          AND l.objid = (%(key)s & 4294967295)::oid""", {"key": lock.LOCK_KEY})]  # type: ignore[arg-type]


def test_transaction_pooling_under_traffic_is_refused_every_time_and_leaves_no_lock(
        own_server: LocalPostgres, pgbouncer: Callable[..., PgBouncer],  # noqa: F811
        spawn: Callable[..., Migrator]) -> None:
    bouncer = pgbouncer("transaction", 10)  # servers enough to change hands
    admin = own_server.dsn()
    outcomes = []
    # One database (one pool): a refused run changes nothing, so each starts from base.
    name = f"pool_{uuid.uuid4().hex[:8]}"
    sql(admin, f'CREATE DATABASE "{name}"')
    via_pool = bouncer.dsn().rsplit("/", 1)[0] + f"/{name}"
    for _ in range(RUNS):
        traffic = Traffic(via_pool)
        try:
            runner = spawn("upgrade", env=migrator_env(via_pool))
            code = runner.wait(90)
        finally:
            traffic.stop()
        assert not traffic.errors, traffic.errors
        assert traffic.queries > 0
        outcomes.append(code)
        direct = own_server.dsn(name)
        assert _our_locks(direct) == [], (code, runner.output)
        assert code == 6, runner.output
        assert runner.event("run_failed")["outcome"] == "failure.unsafe_target"
        assert not sql(direct, "SELECT to_regclass('public.alembic_version')")[0][0], \
            "a refused run changed the database"
    assert outcomes == [6] * RUNS


_HOLD_THEN_WAIT = """
import sys, time, psycopg
from migrator import lock
conn = psycopg.connect(sys.argv[1], autocommit=True, prepare_threshold=None)
lock.acquire(conn, 10)
print("held", flush=True)
time.sleep(60)
"""


def test_the_lock_cannot_outlive_its_client_even_through_a_transaction_pooler(
        own_server: LocalPostgres, pgbouncer: Callable[..., PgBouncer],  # noqa: F811
        ) -> None:
    """Safe by design, whatever the pooler check says: the lock is held by an open
    transaction, which pins its server connection and ends with the client."""
    bouncer = pgbouncer("transaction", 10)
    name = f"pool_{uuid.uuid4().hex[:8]}"
    sql(own_server.dsn(), f'CREATE DATABASE "{name}"')
    via_pool = bouncer.dsn().rsplit("/", 1)[0] + f"/{name}"
    direct = own_server.dsn(name)
    traffic = Traffic(via_pool)
    try:
        for _ in range(3):
            child = subprocess.Popen([sys.executable, "-c", _HOLD_THEN_WAIT, via_pool],
                                     cwd=REPO, stdout=subprocess.PIPE, text=True)
            try:
                assert child.stdout is not None and child.stdout.readline() == "held\n"
                time.sleep(0.5)  # other clients' transactions go through the pool meanwhile
                assert len(_our_locks(direct)) == 1
            finally:
                child.kill()
                child.wait(10)
            wait_until(lambda: _our_locks(direct) == [], 10, "the lock ends with its client")
    finally:
        traffic.stop()
    assert not traffic.errors, traffic.errors
