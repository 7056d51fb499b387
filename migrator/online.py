"""Index builds that never block the app: CREATE INDEX CONCURRENTLY, safe to retry.

A plain CREATE INDEX holds a SHARE lock on the table for the whole build, so every write of
the app waits. CONCURRENTLY takes SHARE UPDATE EXCLUSIVE, which writes pass, but it cannot
run inside a transaction, and when it fails it leaves an INVALID index behind that
`IF NOT EXISTS` would then mistake for done. So each build first drops an invalid leftover
of the same name, and the whole step can be rerun until it succeeds.

Use from a revision:

    from migrator.online import create_index

    def upgrade() -> None:
        create_index("sessions_user_id_expires_at_idx", "sessions", ["user_id", "expires_at"])
"""

from __future__ import annotations

import contextlib
import logging
import re
from typing import Any

import psycopg
from alembic import op
from sqlalchemy.engine import Connection

from migrator.logs import event

_CREATE = re.compile(r"^CREATE (UNIQUE )?INDEX ", re.IGNORECASE)
# CONCURRENTLY waits for transactions that might use the index, but never blocks the app's
# reads or writes, so its lock_timeout may be long; it is still bounded.
DEFAULT_WAIT_MS = 60_000
# Key of Alembic's config.attributes: while SQL is rendered for review (`plan`, `upgrade
# --sql`), a read-only connection to the database it is for, or None.
LIVE_CONNECTION = "migrator.live_connection"
_INVALID_SQL = "SELECT NOT indisvalid FROM pg_index WHERE indexrelid = to_regclass(%s)"


def live_connection() -> psycopg.Connection[Any] | None:
    """The database that offline SQL is being rendered for, if the caller named one."""
    config = op.get_context().config
    return None if config is None else config.attributes.get(LIVE_CONNECTION)


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def create_index(name: str, table: str, columns: list[str], *, unique: bool = False,
                 where: str | None = None) -> None:
    """Build index `name` on `table` concurrently; `columns` are SQL (e.g. "created_at DESC")."""
    definition = (f"CREATE {'UNIQUE ' if unique else ''}INDEX {_quote(name)} ON {_quote(table)}"
                  f" ({', '.join(columns)})" + (f" WHERE {where}" if where else ""))
    build_concurrently(name, definition)


def drop_index(name: str) -> None:
    """Drop an index without blocking the app (the contract step of expand/contract)."""
    with op.get_context().autocommit_block():
        op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {_quote(name)}")


def build_concurrently(name: str, definition: str) -> None:
    """Run `definition` (a CREATE INDEX statement) concurrently, replacing an INVALID leftover."""
    statement = _CREATE.sub(r"CREATE \1INDEX CONCURRENTLY IF NOT EXISTS ", definition, count=1)
    context = op.get_context()
    with context.autocommit_block():
        if context.as_sql:
            _render(name, statement)
            return
        bind = op.get_bind()
        if bind.exec_driver_sql(_INVALID_SQL, (_quote(name),)).scalar():
            event("index_rebuild", f"index {name} is INVALID (an earlier build failed): "
                  "dropping and building it again", logging.WARNING)
            bind.exec_driver_sql(f"DROP INDEX CONCURRENTLY IF EXISTS {_quote(name)}")
        _build(bind, statement)
    event("index_built", f"index {name} built concurrently")


def _render(name: str, statement: str) -> None:
    """The SQL for review: what will run on the live database if there is one, and the
    conditional drop as a comment otherwise (run blindly, it would drop a valid index)."""
    live = live_connection()
    state = None if live is None else live.execute(_INVALID_SQL, (_quote(name),)).fetchone()
    if live is None:
        op.execute(f"/* only if an earlier failed build left {name} INVALID, the migrator "
                   f"first runs: DROP INDEX CONCURRENTLY IF EXISTS {_quote(name)} */")
    elif state == (False,):
        op.execute(f"/* index {name} exists and is valid: nothing to build */")
        return
    elif state == (True,):
        op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {_quote(name)}")
    op.execute(statement)


def _build(bind: Connection, statement: str) -> None:
    """The build with a longer lock_timeout, restored afterwards. An interrupt (SIGTERM,
    Ctrl-C) leaves the connection unusable: nothing more is sent on it, so the interrupt is
    what the run reports, and the next run rebuilds the INVALID index."""
    previous = bind.exec_driver_sql("SHOW lock_timeout").scalar()
    bind.exec_driver_sql(f"SET lock_timeout = {DEFAULT_WAIT_MS}")
    try:
        bind.exec_driver_sql(statement)
    except Exception:
        with contextlib.suppress(Exception):  # the build's error is the one to report
            _restore(bind, previous)
        raise
    _restore(bind, previous)


def _restore(bind: Connection, value: object) -> None:
    bind.exec_driver_sql("SELECT set_config('lock_timeout', %(v)s, false)", {"v": value})
