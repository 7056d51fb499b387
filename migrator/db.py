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
import time
from typing import Any

import psycopg

from migrator import __version__, conninfo
from migrator.config import Settings
from migrator.conninfo import redact
from migrator.errors import AuthError, ConfigError, ConnectError, MigratorError, UnsafeTargetError
from migrator.logs import event

APPLICATION_NAME = f"yomu-migrate/{__version__}"
ATTEMPT_TIMEOUT_S = 5
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


def _permanent(exc: psycopg.OperationalError, target: str) -> MigratorError | None:
    """The error to stop with at once, or None when retrying may help."""
    if exc.sqlstate in _SQLSTATES:
        return AuthError(f"cannot connect to {target}: {_SQLSTATES[exc.sqlstate]}")
    text = str(exc)
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
    """libpq's cause for the last host it tried (not its hint), scrubbed before it is cut."""
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
            permanent = _permanent(exc, target)
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
    }


def set_statement(values: dict[str, str]) -> tuple[str, dict[str, str]]:
    """One round trip that sets every value for the session (`SET` cannot take parameters)."""
    calls, params = [], {}
    for i, (name, value) in enumerate(values.items()):
        calls.append(f"set_config(%(n{i})s, %(v{i})s, false)")
        params.update({f"n{i}": name, f"v{i}": value})
    return "SELECT " + ", ".join(calls), params


def refuse_unsafe_target(conn: psycopg.Connection[Any]) -> None:
    """A standby, a read-only server, or a pooler that does not keep our session.

    `conn` is in autocommit mode: each statement below is a transaction of its own.
    """
    row = conn.execute(
        "SELECT pg_is_in_recovery(), current_setting('default_transaction_read_only'),"
        " pg_backend_pid()"
    ).fetchone()
    assert row is not None
    in_recovery, read_only, pid = row
    if in_recovery:
        raise UnsafeTargetError("the server is a hot standby (in recovery): it cannot be migrated")
    if read_only == "on":
        raise UnsafeTargetError("the server is read-only (default_transaction_read_only = on)")
    # Session state must survive between transactions (advisory lock, SET). Behind a
    # transaction-pooling PgBouncer it does not: a value set now is gone, or another backend
    # answers, in the next transaction.
    conn.execute("SELECT set_config('yomu_migrate.session_probe', %s, false)", (str(pid),))
    probe = conn.execute(
        "SELECT current_setting('yomu_migrate.session_probe', true), pg_backend_pid()"
    ).fetchone()
    if (probe is None or probe[0] != str(pid) or probe[1] != pid
            or _second_session_pid(conn) == pid):
        raise UnsafeTargetError(
            "the connection does not keep its session between transactions "
            "(a transaction-pooling PgBouncer?)",
            "give the migrator a direct connection to PostgreSQL, or a session-pooling one "
            "(docs/troubleshooting.md#6)",
        )


def _second_session_pid(conn: psycopg.Connection[Any]) -> int:
    """The backend pid a second, concurrent connection gets.

    Two open connections to PostgreSQL always have two backends. A transaction-pooling
    PgBouncer hands the server session `conn` just used back to its pool at the end of each
    transaction, and with few clients gives that same session to the next one: the probe
    above alone passes then (it sees its own session again), this one does not.
    """
    try:
        with psycopg.connect(conn.info.dsn, password=conn.info.password,
                             connect_timeout=ATTEMPT_TIMEOUT_S, autocommit=True) as other:
            row = other.execute("SELECT pg_backend_pid()").fetchone()
    except psycopg.OperationalError as exc:
        raise ConnectError(
            f"a second connection failed (the migrator needs two): {_one_line(exc)}"
        ) from None
    assert row is not None
    return int(row[0])
