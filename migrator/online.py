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

import logging
import re

from alembic import op
from sqlalchemy import text

from migrator.logs import event

_CREATE = re.compile(r"^CREATE (UNIQUE )?INDEX ", re.IGNORECASE)
# CONCURRENTLY waits for transactions that might use the index, but never blocks the app's
# reads or writes, so its lock_timeout may be long; it is still bounded.
DEFAULT_WAIT_MS = 60_000


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
            # A block comment: a trailing `--` one would swallow the `;` Alembic appends.
            op.execute(f"/* only if INVALID */ DROP INDEX CONCURRENTLY IF EXISTS {_quote(name)}")
            op.execute(statement)
            return
        bind = op.get_bind()
        invalid = bind.execute(
            text("SELECT NOT indisvalid FROM pg_index WHERE indexrelid = to_regclass(:n)"),
            {"n": _quote(name)},
        ).scalar()
        if invalid:
            event("index_rebuild", f"index {name} is INVALID (an earlier build failed): "
                  "dropping and building it again", logging.WARNING)
            bind.exec_driver_sql(f"DROP INDEX CONCURRENTLY IF EXISTS {_quote(name)}")
        previous = bind.exec_driver_sql("SHOW lock_timeout").scalar()
        bind.exec_driver_sql(f"SET lock_timeout = {DEFAULT_WAIT_MS}")
        try:
            bind.exec_driver_sql(statement)
        finally:
            bind.exec_driver_sql("SELECT set_config('lock_timeout', %(v)s, false)",
                                 {"v": previous})
        event("index_built", f"index {name} built concurrently")
