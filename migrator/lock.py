"""The advisory lock that lets one migrator run at a time, and who holds it when we wait.

It is a transaction-level lock (`pg_try_advisory_xact_lock`) held by a transaction left open
on a connection of its own for the whole run, so it survives the per-revision transactions
and can never outlive the migrator's own session: a crash, a SIGKILL or a lost connection
ends the transaction and the lock with it. A session-level lock could: behind a
transaction-pooling PgBouncer (which a check may fail to spot under traffic) it stays on
the pooled server connection, which then serves other clients, and the next deploy waits on
it (exit 7) until the pooler recycles it. An open transaction pins its server connection
even there, and a pooler closes a server connection whose client left mid-transaction.

That transaction takes nothing but the lock (no table, no snapshot kept between statements),
so it blocks no DDL and no CREATE INDEX CONCURRENTLY. We poll instead of blocking in
`pg_advisory_xact_lock`: a blocked session would wait forever if the holder hung, cannot be
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


# The lock's own connection, per connection the caller took the lock with.
_sessions: dict[int, psycopg.Connection[Any]] = {}
# Literal SQL, no parameters: psycopg then uses the simple query protocol. A bound
# statement's unnamed portal keeps its snapshot, and so the transaction's xmin, until the
# next statement: CREATE INDEX CONCURRENTLY (0002) would wait for our idle lock transaction.
_TRY_SQL = f"""
SELECT set_config('idle_in_transaction_session_timeout', '0', true),
       set_config('statement_timeout', '5s', true),
       set_config('lock_timeout', '5s', true),
       pg_try_advisory_xact_lock({LOCK_KEY})
"""


def session(conn: psycopg.Connection[Any]) -> psycopg.Connection[Any] | None:
    """The connection whose open transaction holds the lock taken with `conn`, if any."""
    return _sessions.get(id(conn))


def _open_session(conn: psycopg.Connection[Any]) -> psycopg.Connection[Any]:
    """A second connection like `conn` (same server, role, database, application_name)."""
    try:
        return psycopg.connect(conn.info.dsn, password=conn.info.password, connect_timeout=5,
                               autocommit=False, prepare_threshold=None)
    except psycopg.OperationalError as error:
        raise ConnectError(f"the migration lock's own connection failed: "
                           f"{str(error).strip().splitlines()[-1]}",
                           "run again once the database accepts connections") from None


def acquire(conn: psycopg.Connection[Any], wait_s: float) -> float:
    """Take the lock within `wait_s` seconds; returns how long it took."""
    start = time.monotonic()
    deadline = start + wait_s
    next_report = start
    sleep = 0.05
    release(conn)
    own = _open_session(conn)
    _sessions[id(conn)] = own
    try:
        while True:
            row = own.execute(_TRY_SQL).fetchone()
            if row and row[-1]:
                _verify_held(own)
                return time.monotonic() - start
            own.rollback()  # nothing held: no transaction left open while we wait
            now = time.monotonic()
            info = holder(conn)
            if now >= deadline:
                raise LockWaitTimeout(
                    f"another migrator held the migration lock for the whole {wait_s:g}s "
                    f"wait: {describe(info)}",
                    holder=info,
                )
            if now >= next_report:
                event("lock_waiting", f"waiting for the migration lock held by "
                      f"{describe(info)}", holder=info, waited_s=round(now - start, 1))
                next_report = now + REPORT_EVERY_S
            time.sleep(min(sleep * random.uniform(0.5, 1.5), max(deadline - now, 0.01)))
            sleep = min(sleep * 2, 1.0)
    except BaseException:
        release(conn)
        raise


_HELD_SQL = f"""
SELECT count(*) FROM pg_locks
WHERE locktype = 'advisory' AND granted AND pid = pg_backend_pid()
  AND classid = ({LOCK_KEY} >> 32)::oid AND objid = ({LOCK_KEY} & 4294967295)::oid
  AND objsubid = 1
"""


def _held(own: psycopg.Connection[Any]) -> bool:
    row = own.execute(_HELD_SQL).fetchone()  # literal: see _TRY_SQL
    return bool(row and row[0])


def _verify_held(own: psycopg.Connection[Any]) -> None:
    """The lock must belong to the backend of our open transaction, or a pooler is between
    us (see db.py); it is released with that transaction."""
    if not _held(own):
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
    own = session(conn)
    try:
        held = own is not None and not own.closed and _held(own)
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
    """Let go of the lock: end its transaction and close its connection. Called from
    `finally`, so it must not replace the error that got us here: if the session is gone
    (server restarted, connection cut), so is its lock."""
    own = _sessions.pop(id(conn), None)
    if own is None or own.closed:
        return
    try:
        own.rollback()
    except psycopg.Error:
        pass
    finally:
        own.close()
