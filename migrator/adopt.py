"""Adopting a database that the legacy init.sql built, from inside the first revision.

Production already has the tables, with real rows. The first revision therefore compares the
live schema with its own (frozen) table definitions before it changes anything: anything it
cannot reconcile safely is refused with every difference listed, and the transaction rolls
back untouched. Otherwise it creates only what is missing: tables in the revision's
transaction, indexes on existing tables concurrently (a plain CREATE INDEX would block the
app's writes for the whole build). Rerunning it after a crash at any point finishes the job.
"""

from __future__ import annotations

import logging

from alembic import op
from sqlalchemy import MetaData

from migrator import online, schema
from migrator.errors import DriftRefused
from migrator.logs import event


def adopt(metadata: MetaData) -> None:
    """Create the tables of `metadata` where missing; adopt the ones that exist."""
    context = op.get_context()
    if context.as_sql:  # offline SQL for review: what an empty database gets
        for statement in schema.ddl(metadata):
            op.execute(statement)
        return
    bind = op.get_bind()
    conn = bind.connection.driver_connection
    live = schema.snapshot(conn)  # type: ignore[arg-type]
    want = schema.expected(conn, metadata)  # type: ignore[arg-type]
    diffs = schema.compare(live, want)
    refused = [d for d in diffs if d.action == "refuse"]
    if refused:
        raise DriftRefused(
            f"the existing schema cannot be adopted safely ({len(refused)} difference(s)): "
            + "; ".join(str(d) for d in refused),
            differences=[d.as_dict() for d in diffs],
        )
    for diff in diffs:
        if diff.action == "warn":
            event("schema_extra", str(diff), logging.WARNING, table=diff.table)
    existing = [t.name for t in metadata.sorted_tables if t.name in live]
    for table in metadata.sorted_tables:
        if table.name not in live:
            table.create(bind)
            event("table_created", f"created table {table.name}", table=table.name)
    if existing:
        event("adopting", f"adopting existing tables: {', '.join(existing)}", tables=existing)
    for diff in diffs:
        if diff.action in ("create", "rebuild") and diff.item is not None:
            online.build_concurrently(diff.item, want[diff.table].indexes[diff.item]["def"])
