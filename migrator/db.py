"""Connecting to PostgreSQL: retried while the server comes up, refused when it is unsafe.

In Kubernetes the hook Job often starts before the database accepts connections (a restart,
a failover, a new namespace), so connection errors are retried until a deadline. A wrong
password, a missing database, a parameter libpq refuses or TLS the server does not offer
will not fix themselves, so they fail at once. A standby or a
transaction-pooling PgBouncer would break the advisory lock and our SET commands, so they
are refused with a message, not discovered half way.
"""

from __future__ import annotations

import math
import random
import re
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg

from migrator import __version__, conninfo
from migrator.config import Settings
from migrator.conninfo import redact
from migrator.errors import (
    AuthError,
    ConfigError,
    ConnectError,
    ConnectOptionsRefused,
    DatabaseBusy,
    LoginRefused,
    MigratorError,
    PermissionDenied,
    UnsafeTargetError,
)
from migrator.logs import event

APPLICATION_NAME = f"yomu-migrate/{__version__}"
ATTEMPT_TIMEOUT_S = 5
# The one schema the models, the revisions and our own tables live in. Every migrator
# session pins search_path to it: the default `"$user", public` would put unqualified DDL
# (and Alembic's own alembic_version) into a schema named after the role, if one exists,
# while our reads look in public, and a same-named table there would answer them instead.
SCHEMA = "public"
# How often a busy migration backend checks that its client still exists. Without it, a
# SIGKILLed or OOM-killed migrator leaves its backend running the current statement (and
# holding the revision's table locks) until that statement ends on its own.
CLIENT_CHECK_MS = 1000

# libpq's words for a connection attempt that will fail the same way every time, checked in
# this order: (text in the error, exit class, the cause, the next step or None for its default).
_PERMANENT: tuple[tuple[str, type[MigratorError], str, str | None], ...] = (
    ("server does not support SSL", ConfigError,
     "the server does not offer TLS, and the URL requires it (sslmode)",
     "use sslmode=prefer (or disable) in the URL, or enable ssl on the server"),
    ("certificate", ConfigError, "the server's TLS certificate could not be verified",
     "check sslrootcert and sslmode (verify-ca, verify-full) in the URL, and the server's "
     "certificate"),
    ("GSSAPI encryption required", ConfigError,
     "the URL requires GSSAPI encryption (gssencmode=require), which cannot be had here",
     "use gssencmode=prefer, or set up Kerberos credentials"),
    ("channel binding required", ConfigError,
     "the URL requires channel binding, which the server did not use",
     "use channel_binding=prefer, or scram-sha-256 with TLS on the server"),
    ("authentication method requirement", ConfigError,
     "the server does not authenticate the way the URL's require_auth demands",
     "change require_auth in the URL, or the server's pg_hba.conf"),
    ("is not permitted to log in", LoginRefused,
     "the role may not log in (NOLOGIN)",
     "a DBA must `ALTER ROLE <role> LOGIN`, or use a role that may log in "
     "(docs/troubleshooting.md#21)"),
    ("does not have CONNECT privilege", LoginRefused,
     "the role has no CONNECT privilege on the database",
     "a DBA must `GRANT CONNECT ON DATABASE <db> TO <role>` (docs/troubleshooting.md#21)"),
    ("unrecognized configuration parameter", ConnectOptionsRefused,
     "the server does not know a setting the URL's options= sets",
     "remove or correct `-c name=value` in the URL's options (docs/troubleshooting.md#22)"),
    ("invalid value for parameter", ConnectOptionsRefused,
     "the server refuses a value the URL's options= sets",
     "correct `-c name=value` in the URL's options (docs/troubleshooting.md#22)"),
    ("definition of service", ConnectOptionsRefused,
     "the URL names a service that is not in the pg_service.conf libpq reads here",
     "add the service to PGSERVICEFILE (or ~/.pg_service.conf), or give host, port and "
     "dbname instead of service= (docs/troubleshooting.md#22)"),
    ("service file", ConnectOptionsRefused,
     "the URL names a service, and the service file libpq reads here does not exist",
     "point PGSERVICEFILE at the pg_service.conf that defines it, or give host, port and "
     "dbname instead of service= (docs/troubleshooting.md#22)"),
    ("password authentication failed", AuthError, "authentication failed", None),
    ("no password supplied", AuthError, "authentication failed (no password in the URL)", None),
    ("no pg_hba.conf entry", AuthError, "the server refuses this user/host (pg_hba.conf)", None),
    ("does not exist", AuthError, "the database or role does not exist", None),
)
_SQLSTATES = {"28P01": "authentication failed", "28000": "authentication failed",
              "3D000": "the database does not exist"}
# An option libpq checks only when it connects (validated before, see conninfo.py).
_BAD_OPTION = re.compile(r"invalid .*value|invalid port number|could not match .* to|"
                         r"could not parse network address|invalid connection option")


def _permanent(exc: psycopg.OperationalError, target: str,
               params: dict[str, Any] | None = None) -> MigratorError | None:
    """The error to stop with at once, or None when retrying may help."""
    if exc.sqlstate in _SQLSTATES:
        return AuthError(f"cannot connect to {target}: {_SQLSTATES[exc.sqlstate]}")
    text = str(exc)
    if (params or {}).get("sslnegotiation") == "direct" and "SSL" in text:
        # A server without TLS (or older than PostgreSQL 17) reads the TLS hello as a bad
        # startup packet and hangs up: the same answer on every attempt.
        return ConnectOptionsRefused(
            f"cannot connect to {target}: the server does not answer TLS directly "
            "(sslnegotiation=direct needs TLS on a PostgreSQL 17 or later server)",
            "drop sslnegotiation=direct from the URL (the default negotiates TLS first), or "
            "enable ssl on the server (docs/troubleshooting.md#22)")
    for needle, kind, why, next_step in _PERMANENT:
        if needle in text:
            return kind(f"cannot connect to {target}: {why}", next_step)
    if _BAD_OPTION.search(text):
        return ConfigError(f"cannot connect to {target}: libpq refuses a parameter of the URL "
                           f"({conninfo.vocabulary_only(_last_line(text))})")
    return None


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


def _one_line(exc: BaseException) -> str:
    """The server's own one-line cause for an error it sent (not its query text and caret
    line), else libpq's cause for the last host it tried (not its hint), scrubbed."""
    primary = getattr(getattr(exc, "diag", None), "message_primary", None)
    if isinstance(exc, psycopg.Error) and exc.sqlstate and primary:
        return redact(str(primary))
    lines = [line.strip() for line in redact(str(exc)).splitlines() if line.strip()]
    causes = [line for line in lines if "failed:" in line] or lines
    return causes[-1].removeprefix("connection failed: ") if causes else type(exc).__name__


def connect(settings: Settings, purpose: str = "run", **kwargs: Any) -> psycopg.Connection[Any]:
    """A connection, retrying what can get better until `connect_timeout_s` has passed.

    Permanent failures (a refused parameter, TLS the server does not offer, a wrong password)
    stop at once; the message names where libpq connected (a `?host=` wins over the URL's
    host), never the password.
    """
    if settings.conninfo is None:
        raise ConfigError("no database to connect to: DATABASE_URL is not set")
    target = settings.conninfo.describe()
    deadline = time.monotonic() + settings.connect_timeout_s
    delay = 0.2
    attempt = 0
    while True:
        attempt += 1
        # A server that accepts but never answers must not carry us past the deadline
        # (libpq's floor is 2 s).
        left = math.ceil(deadline - time.monotonic())
        params = {**settings.conninfo.connect_params(),
                  "application_name": f"{APPLICATION_NAME} {purpose}",
                  "connect_timeout": max(2, min(ATTEMPT_TIMEOUT_S, left)), **kwargs}
        try:
            conn = psycopg.connect(**params)
        except psycopg.OperationalError as exc:
            permanent = _permanent(exc, target, params)
            if permanent:
                raise permanent from None
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ConnectError(
                    f"cannot connect to {target} after {attempt} attempts in "
                    f"{settings.connect_timeout_s:g}s: {_one_line(exc)}"
                ) from None
            if attempt == 1 or attempt % 10 == 0:
                event("connect_retry", f"database not reachable yet, retrying: {_one_line(exc)}")
            time.sleep(min(delay * random.uniform(0.5, 1.5), remaining))
            delay = min(delay * 2, 2.0)
        else:
            return conn


def session_settings(settings: Settings, lock_timeout_ms: int | None = None) -> dict[str, str]:
    """Timeouts for migration sessions: no statement or open transaction hangs forever."""
    return {
        "lock_timeout": f"{lock_timeout_ms or settings.lock_timeout_ms}ms",
        "statement_timeout": f"{settings.statement_timeout_ms}ms",
        "idle_in_transaction_session_timeout": f"{settings.idle_in_transaction_timeout_ms}ms",
        "client_connection_check_interval": f"{CLIENT_CHECK_MS}ms",
        "search_path": SCHEMA,
    }


def set_statement(values: dict[str, str], local: bool = False) -> tuple[str, dict[str, str]]:
    """One round trip that sets every value for the session, or with `local` for the current
    transaction only (`SET` cannot take parameters)."""
    calls, params = [], {}
    for i, (name, value) in enumerate(values.items()):
        calls.append(f"set_config(%(n{i})s, %(v{i})s, {'true' if local else 'false'})")
        params.update({f"n{i}": name, f"v{i}": value})
    return "SELECT " + ", ".join(calls), params


def refuse_unsafe_target(conn: psycopg.Connection[Any]) -> None:
    """A standby, a read-only server, or a pooler that does not keep our session.

    `conn` is in autocommit mode: each statement below is a transaction of its own.
    """
    row = conn.execute(
        "SELECT pg_is_in_recovery(), current_setting('default_transaction_read_only')"
    ).fetchone()
    assert row is not None
    in_recovery, read_only = row
    if in_recovery:
        raise UnsafeTargetError("the server is a hot standby (in recovery): it cannot be migrated")
    if read_only == "on":
        raise UnsafeTargetError("the server is read-only (default_transaction_read_only = on)")
    # Session state must survive between transactions (SET, the revisions' settings).
    # Behind a transaction-pooling PgBouncer it does not: a value set now is gone, or
    # another backend answers, in the next transaction.
    if not _session_kept(conn):
        raise UnsafeTargetError(
            "the connection does not keep its session between transactions "
            "(a transaction-pooling PgBouncer?)",
            "give the migrator a direct connection to PostgreSQL, or a session-pooling one "
            "(docs/troubleshooting.md#6)",
        )


PROBE_ROUNDS = 5


def _session_kept(conn: psycopg.Connection[Any]) -> bool:
    """Whether `conn` keeps one server session of its own, asked so that a pool cannot pass
    by chance, even with other clients' traffic.

    Each round marks `conn`'s session, then a second connection opens a transaction (which
    pins whatever server session it gets) and `conn` reads its mark back. A pooler hands
    the session `conn` just released to the next transaction (PgBouncer reuses the most
    recent one): the second connection gets it, or another client does, and then `conn`'s
    next transaction finds another session without the mark. Directly connected, both
    connections keep their own backends and the mark is always there. Literal SQL only, so
    nothing is prepared (a pooler would lose the prepared statements, too).
    """
    try:
        with psycopg.connect(conn.info.dsn, password=conn.info.password,
                             connect_timeout=ATTEMPT_TIMEOUT_S, autocommit=False,
                             prepare_threshold=None) as other:
            for _ in range(PROBE_ROUNDS):
                mark = secrets.token_hex(8)
                marked = conn.execute("SELECT pg_backend_pid(), set_config("
                                      f"'yomu_migrate.session_probe', '{mark}', false)"
                                      ).fetchone()
                pinned = other.execute("SELECT pg_backend_pid()").fetchone()
                again = conn.execute("SELECT pg_backend_pid(), current_setting("
                                     "'yomu_migrate.session_probe', true)").fetchone()
                other.rollback()
                assert marked is not None and pinned is not None
                if pinned[0] == marked[0] or again != (marked[0], mark):
                    return False
    except psycopg.OperationalError as exc:
        raise ConnectError(
            f"a second connection failed (the migrator needs two): {_one_line(exc)}"
        ) from None
    return True


@contextmanager
def read_only(conn: psycopg.Connection[Any], settings: Settings) -> Iterator[None]:
    """One READ ONLY transaction with short local timeouts, for the verbs that only look.

    Local (`SET LOCAL`), so nothing outlives the transaction: the app's DATABASE_URL may go
    through a transaction-pooling PgBouncer, whose server sessions the app shares.
    """
    with conn.transaction():
        conn.execute(*set_statement({
            "lock_timeout": f"{settings.lock_timeout_ms}ms",
            "statement_timeout": f"{settings.statement_timeout_ms}ms",
            "transaction_read_only": "on",
            "search_path": SCHEMA,
        }, local=True))
        yield


def set_session(conn: psycopg.Connection[Any], settings: Settings) -> None:
    """The migration session's timeouts, for its whole life (its statements, grants)."""
    conn.execute(*set_statement(session_settings(settings)))


_DENIED = re.compile(r"permission denied for (\w+) (\S+)|must be owner of (\w+) (\S+)")


# Who holds a lock that stops a read: ACCESS EXCLUSIVE (DDL, LOCK TABLE) on a relation of
# this database, the migrator's own sessions included (a revision's ALTER TABLE).
_READ_BLOCKERS_SQL = """
SELECT a.pid, a.application_name, a.state, l.relation::regclass::text, l.mode,
       round(extract(epoch FROM now() - a.xact_start))::int
FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.granted AND l.mode = 'AccessExclusiveLock' AND l.relation IS NOT NULL
  AND a.pid <> pg_backend_pid()
  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
ORDER BY a.xact_start LIMIT 3
"""


def read_blockers(conn: psycopg.Connection[Any]) -> str:
    """The sessions that likely stopped a read, as one phrase ("" if none is seen now)."""
    from migrator.retry import describe

    try:
        rows = conn.execute(_READ_BLOCKERS_SQL).fetchall()
    except psycopg.Error:
        return ""
    return describe([{"pid": r[0], "application_name": r[1], "state": r[2] or "state hidden",
                      "table": r[3], "mode": r[4], "transaction_s": r[5]} for r in rows]
                    ) if rows else ""


def database_error(error: psycopg.Error, doing: str, role: str | None,
                   holders: str = "") -> MigratorError | None:
    """A database error a user can act on, as the MigratorError of its exit code; `holders`
    names the sessions that held the lock, when the caller could still ask."""
    text = _one_line(error)
    if isinstance(error, psycopg.errors.InsufficientPrivilege):
        return PermissionDenied(f"{doing}: {text}", grant_hint(text, doing, role))
    if isinstance(error, psycopg.errors.LockNotAvailable):
        return DatabaseBusy(f"{doing}: a table it reads was locked by another session "
                            f"for longer than lock_timeout ({text})"
                            + (f"; held by {holders}" if holders else ""))
    if isinstance(error, psycopg.errors.QueryCanceled):
        return DatabaseBusy(f"{doing}: the server did not answer within statement_timeout "
                            f"({text})")
    if isinstance(error, psycopg.errors.ReadOnlySqlTransaction):
        return UnsafeTargetError(f"{doing}: the database is read-only ({text})")
    if isinstance(error, psycopg.OperationalError):
        return ConnectError(f"{doing}: lost the database connection ({text})",
                            "run again once the database is back")
    return None


def grant_hint(message: str, doing: str, role: str | None) -> str:
    """The GRANT (or ownership) that would have let `role` do what `message` refused."""
    who = role or "<the role in the URL>"
    found = _DENIED.search(message)
    if not found:
        return f"grant {who} the privilege named above (docs/troubleshooting.md#18)"
    if found.group(3):
        kind, name = found.group(3), found.group(4)
        return (f"{kind} {name} belongs to another role: run the migration as its owner "
                f"(MIGRATION_DATABASE_URL), or `ALTER {kind.upper()} {name} OWNER TO {who}` "
                "(docs/troubleshooting.md#18)")
    kind, name = found.group(1), found.group(2)
    writes = doing.startswith(("upgrade", "downgrade", "revision"))
    privilege = {"schema": "CREATE" if writes else "USAGE", "sequence": "USAGE",
                 "database": "CONNECT", "function": "EXECUTE"}.get(
        kind, "SELECT, INSERT, UPDATE, DELETE" if writes else "SELECT")
    hint = f"`GRANT {privilege} ON {kind.upper()} {name} TO {who}`"
    if not writes:
        hint += (f", or let each migration run grant it: MIGRATOR_APP_ROLE={who} on the "
                 "migration Job (chart value migrations.appRoles)")
    return hint + " (docs/troubleshooting.md#18)"


@contextmanager
def reading(settings: Settings, purpose: str) -> Iterator[psycopg.Connection[Any]]:
    """A connection for a verb that only looks: one read-only transaction, and a database
    error a user can act on (permission, busy, read-only, lost) as its own exit code."""
    with connect(settings, purpose, autocommit=True) as conn:
        try:
            with read_only(conn, settings):
                yield conn
        except psycopg.Error as error:
            busy = isinstance(error, psycopg.errors.LockNotAvailable) and not conn.closed
            known = database_error(error, purpose, None if conn.closed else conn.info.user,
                                   read_blockers(conn) if busy else "")
            if known is None:
                raise
            raise known from None
