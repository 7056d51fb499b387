"""Taking table locks without queueing the app: short lock_timeout, jittered retries.

A statement that waits for a table lock sits in the table's lock queue, and every query of
the app on that table queues behind it: a 6 s report query becomes a 6 s outage. So every
attempt runs with a short `lock_timeout`: if the lock is not free at once, the attempt gives
up, its transaction rolls back, and we retry after a jittered, growing pause, with a
lock_timeout that ramps up to a cap (the cap is the longest the app can be stalled). There
is never a final attempt without a timeout. Revisions and grants both go through here.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import Any, TypeVar

import psycopg

from migrator.config import Settings
from migrator.conninfo import redact
from migrator.errors import LockTimeoutExhausted
from migrator.logs import event

T = TypeVar("T")
# lock_not_available (lock_timeout) and deadlock_detected: the app had the table; try again.
RETRY_SQLSTATES = {"55P03", "40P01"}

BLOCKERS_SQL = """
SELECT a.pid, a.application_name, a.state, l.relation::regclass::text, l.mode,
       round(extract(epoch FROM now() - a.xact_start))::int
FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.granted AND l.relation IS NOT NULL AND a.xact_start IS NOT NULL
  AND a.application_name NOT LIKE 'yomu-migrate/%%'
  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND l.relation IN (SELECT oid FROM pg_class WHERE relnamespace = 'public'::regnamespace)
ORDER BY a.xact_start LIMIT 3
"""


def sqlstate(error: BaseException) -> str | None:
    orig = getattr(error, "orig", error)
    return getattr(orig, "sqlstate", None)


def one_line(error: BaseException) -> str:
    orig = getattr(error, "orig", None) or error
    first = str(orig).strip().splitlines()
    return redact(first[0] if first else type(orig).__name__)


def blockers(conn: psycopg.Connection[Any]) -> list[dict[str, Any]]:
    """Who holds locks on our tables now: the likely reason we could not get ours."""
    try:
        rows = conn.execute(BLOCKERS_SQL).fetchall()
    except psycopg.Error:
        return []
    return [{"pid": r[0], "application_name": r[1], "state": r[2], "table": r[3],
             "mode": r[4], "transaction_s": r[5]} for r in rows]


def describe(found: list[dict[str, Any]]) -> str:
    if not found:
        return "a session that has since finished"
    return ", ".join(
        f"pid {b['pid']} ({b['application_name'] or 'no application_name'}, {b['state']}, "
        f"{b['mode']} on {b['table']} for {b['transaction_s']}s)" for b in found
    )


def with_lock_retries(settings: Settings, what: str, attempt: Callable[[int], T],
                      watcher: psycopg.Connection[Any], **details: Any) -> T:
    """`attempt(lock_timeout_ms)` until it gets its locks; other errors pass through."""
    lock_timeout = settings.lock_timeout_ms
    deadline = time.monotonic() + settings.retry_deadline_s
    pause = 0.2
    for number in range(1, settings.lock_retries + 1):
        try:
            return attempt(lock_timeout)
        except Exception as error:
            if sqlstate(error) not in RETRY_SQLSTATES:
                raise
            found = blockers(watcher)
            wait = min(pause * random.uniform(0.5, 1.5), 5.0)
            if number == settings.lock_retries or time.monotonic() + wait > deadline:
                raise LockTimeoutExhausted(
                    f"{what} could not get its locks in {number} attempts (lock_timeout up "
                    f"to {lock_timeout} ms); held by {describe(found)}",
                    blockers=found, **details,
                ) from None
            event("lock_retry", f"{what}: table busy ({one_line(error)}), attempt {number} "
                  f"failed; retrying in {wait:.2f}s; held by {describe(found)}",
                  logging.WARNING, attempt=number, blockers=found, **details)
            time.sleep(wait)
            pause = min(pause * 2, 5.0)
            lock_timeout = min(round(lock_timeout * 1.5), settings.lock_timeout_cap_ms)
    raise AssertionError("unreachable: the loop returns or raises")
