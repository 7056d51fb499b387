"""The advisory lock that lets one migrator run at a time, and who holds it when we wait.

It is a session-level lock on a connection of its own, held for the whole run, so it
survives the per-revision transactions. We poll `pg_try_advisory_lock` instead of blocking
in `pg_advisory_lock`: a blocked session would wait forever if the holder hung, cannot be
bounded by our --lock-wait, and deadlocks with CREATE INDEX CONCURRENTLY in another session
(which waits for every open transaction, including a blocked lock request).
"""

from __future__ import annotations

import random
import time
from typing import Any

import psycopg

from migrator.errors import ConnectError, LockWaitTimeout, UnsafeTargetError
from migrator.logs import event

# One bigint key for "the yomu schema", the same in every migrator version: 'yomu-mig'.
LOCK_KEY = int.from_bytes(b"yomu-mig", "big") & 0x7FFF_FFFF_FFFF_FFFF
REPORT_EVERY_S = 5.0

_HOLDER_SQL = """
SELECT a.pid, a.application_name, host(a.client_addr), a.state,
       round(extract(epoch FROM now() - a.backend_start))::int AS connected_s
FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.locktype = 'advisory' AND l.granted
  AND l.classid = (%(key)s >> 32)::oid AND l.objid = (%(key)s & 4294967295)::oid
  AND l.objsubid = 1 AND l.database = (SELECT oid FROM pg_database
                                       WHERE datname = current_database())
"""


def holder(conn: psycopg.Connection[Any]) -> dict[str, Any] | None:
    """The session holding the migration lock, if any."""
    row = conn.execute(_HOLDER_SQL, {"key": LOCK_KEY}).fetchone()
    if row is None:
        return None
    pid, app, addr, state, connected_s = row
    return {"pid": pid, "application_name": app, "client_addr": addr or "local",
            "state": state, "connected_s": connected_s}


def describe(info: dict[str, Any] | None) -> str:
    if info is None:
        return "a session that has since ended"
    return (f"pid {info['pid']} ({info['application_name'] or 'no application_name'}) "
            f"from {info['client_addr']}, connected {info['connected_s']}s, {info['state']}")


def acquire(conn: psycopg.Connection[Any], wait_s: float) -> float:
    """Take the lock within `wait_s` seconds; returns how long it took."""
    start = time.monotonic()
    deadline = start + wait_s
    next_report = start
    sleep = 0.05
    while True:
        row = conn.execute("SELECT pg_try_advisory_lock(%s)", (LOCK_KEY,)).fetchone()
        if row and row[0]:
            _verify_held(conn)
            return time.monotonic() - start
        now = time.monotonic()
        info = holder(conn)
        if now >= deadline:
            raise LockWaitTimeout(
                f"another migrator held the migration lock for the whole {wait_s:g}s wait: "
                f"{describe(info)}",
                holder=info,
            )
        if now >= next_report:
            event("lock_waiting", f"waiting for the migration lock held by {describe(info)}",
                  holder=info, waited_s=round(now - start, 1))
            next_report = now + REPORT_EVERY_S
        time.sleep(min(sleep * random.uniform(0.5, 1.5), max(deadline - now, 0.01)))
        sleep = min(sleep * 2, 1.0)


_HELD_SQL = """
SELECT count(*) FROM pg_locks
WHERE locktype = 'advisory' AND granted AND pid = pg_backend_pid()
  AND classid = (%(key)s >> 32)::oid AND objid = (%(key)s & 4294967295)::oid AND objsubid = 1
"""


def _held(conn: psycopg.Connection[Any]) -> bool:
    row = conn.execute(_HELD_SQL, {"key": LOCK_KEY}).fetchone()
    return bool(row and row[0])


def _verify_held(conn: psycopg.Connection[Any]) -> None:
    """The lock must belong to our own backend, or a pooler is between us (see db.py)."""
    if not _held(conn):
        raise UnsafeTargetError(
            "the migration lock was granted to another backend: a pooler sits between the "
            "migrator and PostgreSQL",
            "give the migrator a direct connection (docs/troubleshooting.md#6)",
        )


def ensure_held(conn: psycopg.Connection[Any], during: str) -> None:
    """Stop unless our lock session is alive and still holds the lock.

    The revisions run on other connections, which reconnect after a server restart or a
    killed session; the lock does not come back with them. Going on without it could run
    two migrators at once, so the run stops here instead (and the next run resumes).
    """
    try:
        held = not conn.closed and _held(conn)
    except psycopg.Error:
        held = False
    if not held:
        raise ConnectError(
            f"lost the migration lock {during}: its database session ended (server "
            "restart, failover, or the session was terminated); stopped so that no two "
            "migrators run at once",
            "run again: revisions already applied stay applied, the rest follow",
        )


def release(conn: psycopg.Connection[Any]) -> None:
    """Let go of the lock. Called from `finally`, so it must not replace the error that got
    us here: if the session is gone (server restarted, connection cut), so is its lock."""
    if conn.closed:
        return
    try:
        conn.execute("SELECT pg_advisory_unlock(%s)", (LOCK_KEY,))
    except psycopg.Error:
        conn.close()
