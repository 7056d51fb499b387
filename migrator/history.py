"""Our own record of applied revisions: checksum, when, how long, which migrator.

Alembic keeps only the current revision id. That cannot tell an edited revision file from
the one that ran, nor tell an old image that the unknown revision in the database is a newer
one built on top of its head. This table can: rows are written in the same transaction as
the revision itself, so it never disagrees with `alembic_version`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

TABLE = "yomu_migrate_history"
VERSION_TABLE = "alembic_version"
OWN_TABLES = (TABLE, VERSION_TABLE)

CREATE_SQL = f"""
CREATE TABLE IF NOT EXISTS public.{TABLE} (
    revision text PRIMARY KEY,
    down_revision text,
    checksum text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now(),
    duration_ms integer NOT NULL,
    migrator_version text NOT NULL,
    applied_by text NOT NULL DEFAULT current_user,
    verified_at timestamptz
);
-- Tables made before verified_at existed get it once (a catalog look first: ALTER TABLE
-- would lock the table, which the app's `check` reads, for the whole revision).
DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_attribute WHERE attname = 'verified_at'
                 AND attrelid = 'public.yomu_migrate_history'::regclass) THEN
    ALTER TABLE public.yomu_migrate_history ADD COLUMN verified_at timestamptz;
  END IF;
END $$
"""

RECORD_SQL = f"""
INSERT INTO public.{TABLE} (revision, down_revision, checksum, duration_ms, migrator_version)
VALUES (%s, %s, %s, %s, %s)
ON CONFLICT (revision) DO UPDATE SET down_revision = EXCLUDED.down_revision,
    checksum = EXCLUDED.checksum, applied_at = now(), duration_ms = EXCLUDED.duration_ms,
    migrator_version = EXCLUDED.migrator_version, applied_by = current_user,
    verified_at = NULL
"""

# When the schema at this revision was last found to be the models': a no-op `upgrade`
# at head trusts it, and checks the schema itself while it is NULL (after an exit 17, or
# a history written by a migrator that did not record it).
VERIFIED_SQL = f"""
UPDATE public.{TABLE} SET verified_at = now() WHERE revision = %s AND checksum = %s
"""

FORGET_SQL = f"DELETE FROM public.{TABLE} WHERE revision = %s"


@dataclass(frozen=True)
class Applied:
    revision: str
    down_revision: str | None
    checksum: str
    applied_at: datetime
    duration_ms: int
    migrator_version: str
    verified: bool = False  # the schema at this revision was found to be the models'


@dataclass(frozen=True)
class DbState:
    """What the database says: its current revision and our record of how it got there."""

    current: str | None
    applied: dict[str, Applied]
    has_history_table: bool


def read_state(conn: psycopg.Connection[Any]) -> DbState:
    row = conn.execute(
        "SELECT to_regclass(%s) IS NOT NULL, to_regclass(%s) IS NOT NULL",
        (f"public.{VERSION_TABLE}", f"public.{TABLE}"),
    ).fetchone()
    assert row is not None
    has_version, has_history = row
    current: str | None = None
    if has_version:
        versions = [r[0] for r in conn.execute(
            f"SELECT version_num FROM public.{VERSION_TABLE}")]
        if len(versions) > 1:
            from migrator.errors import UnknownRevision

            raise UnknownRevision(
                f"the database has several current revisions ({', '.join(versions)}): "
                "a branched history this migrator does not deploy"
            )
        current = versions[0] if versions else None
    applied: dict[str, Applied] = {}
    if has_history:
        for r in conn.execute(
            # verified_at through to_jsonb: a table older than that column reads as NULL.
            f"SELECT revision, down_revision, checksum, applied_at, duration_ms,"
            f" migrator_version, to_jsonb(h) ->> 'verified_at' IS NOT NULL"
            f" FROM public.{TABLE} h"
        ):
            applied[r[0]] = Applied(*r)
    return DbState(current, applied, has_history)


def ensure_table(conn: psycopg.Connection[Any]) -> None:
    conn.execute(CREATE_SQL)


def record(cursor: Any, revision: str, down: str | None, checksum: str, duration_ms: int,
           version: str) -> None:
    cursor.execute(RECORD_SQL, (revision, down, checksum, duration_ms, version))


def mark_verified(conn: psycopg.Connection[Any], revision: str, checksum: str) -> None:
    conn.execute(CREATE_SQL)
    conn.execute(VERIFIED_SQL, (revision, checksum))


def forget(cursor: Any, revision: str) -> None:
    cursor.execute(FORGET_SQL, (revision,))

