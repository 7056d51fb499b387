"""Adopting a database that the legacy init.sql built, from inside the first revision.

Production already has the tables, with real rows. The first revision therefore compares the
live schema with its own (frozen) table definitions before it changes anything: anything it
cannot reconcile safely is refused with every difference listed, and the transaction rolls
back untouched. Otherwise it creates only what is missing: tables in the revision's
transaction, indexes on existing tables concurrently (a plain CREATE INDEX would block the
app's writes for the whole build). Rerunning it after a crash at any point finishes the job.

The SQL for review (`plan`, `upgrade --sql`) tells the same story: against a live database
it shows what adoption would do there, and without one what an empty database gets.
"""

from __future__ import annotations

import logging
from typing import Any

import psycopg
from alembic import op
from sqlalchemy import MetaData
from sqlalchemy.schema import CreateTable

from migrator import online, schema
from migrator.errors import DriftRefused
from migrator.logs import event


def adopt(metadata: MetaData) -> None:
    """Create the tables of `metadata` where missing; adopt the ones that exist."""
    context = op.get_context()
    if context.as_sql:
        live = online.live_connection()
        if live is None:
            op.execute("/* for an empty database; on one the legacy init.sql built, this "
                       "revision adopts the tables instead (`migrator plan` against it shows "
                       "what it will do) */")
            for statement in schema.ddl(metadata):
                op.execute(statement)
            return
        _adopt(live, metadata, render=True)
        return
    _adopt(op.get_bind().connection.driver_connection, metadata, render=False)  # type: ignore[arg-type]


def _adopt(conn: psycopg.Connection[Any], metadata: MetaData, render: bool) -> None:
    live = schema.snapshot(conn)
    want = schema.expected(conn, metadata)
    diffs = schema.compare(live, want)
    refused = [d for d in diffs if d.action == "refuse"]
    if refused:
        raise DriftRefused(
            f"the existing schema cannot be adopted safely ({len(refused)} difference(s)): "
            + "; ".join(str(d) for d in refused),
            differences=[d.as_dict() for d in diffs],
        )
    for diff in diffs:
        if diff.action == "warn" and not render:
            event("schema_extra", str(diff), logging.WARNING, table=diff.table)
    existing = [t.name for t in metadata.sorted_tables if t.name in live]
    if existing:
        if render:
            op.execute(f"/* adopting the existing tables {', '.join(existing)}: kept as they "
                       "are, with their rows */")
        else:
            event("adopting", f"adopting existing tables: {', '.join(existing)}",
                  tables=existing)
    for table in metadata.sorted_tables:
        if table.name in live:
            continue
        if render:
            op.execute(str(CreateTable(table).compile(dialect=op.get_context().dialect)))
            for index in sorted(table.indexes, key=lambda i: i.name or ""):
                op.execute(want[table.name].indexes[str(index.name)]["ddl"])
        else:
            table.create(op.get_bind())
            event("table_created", f"created table {table.name}", table=table.name)
    for diff in diffs:
        if diff.action in ("create", "rebuild") and diff.item is not None:
            online.build_concurrently(diff.item, want[diff.table].indexes[diff.item]["ddl"])
