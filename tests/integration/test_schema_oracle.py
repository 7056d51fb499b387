"""The schema comparison reads only the catalog; PostgreSQL itself is the oracle for it.

`schema.expected()` renders the models in the catalog's terms without building anything.
Here PostgreSQL builds each set of tables for real and the comparison must find nothing:
the shipped models, revision 0001's frozen tables, and a fixture of harder constructs. A
model spelled otherwise than PostgreSQL words it fails here, in CI, never in a deploy.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Iterator

import psycopg
import pytest
import sqlalchemy as sa
from pgtest import run_migrator
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, TIMESTAMP

from migrator import schema
from migrator.config import default_migrations_dir
from migrator.models import metadata


def _revision_0001_tables() -> sa.MetaData:
    path = next((default_migrations_dir() / "versions").glob("0001_*.py"))
    spec = importlib.util.spec_from_file_location("revision_0001", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module._meta  # type: ignore[no-any-return]


def _fixture_tables() -> sa.MetaData:
    meta = sa.MetaData()
    things = sa.Table(
        "things", meta,
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("code", sa.String(20, collation="C"), nullable=False, server_default="x"),
        sa.Column("n", sa.Integer, server_default="0"),
        sa.Column("price", sa.Numeric(10, 2), server_default=sa.text("1.50")),
        sa.Column("flag", sa.Boolean, server_default=sa.true(), nullable=False),
        sa.Column("meta", JSONB, server_default=sa.text("'{}'::jsonb")),
        sa.Column("tags", ARRAY(sa.Text)),
        sa.Column("at", TIMESTAMP(timezone=False), server_default=sa.func.now()),
        sa.Column("ts", TIMESTAMP(timezone=True), server_default=sa.text("CURRENT_TIMESTAMP")),
        sa.Column("label", sa.Text),
        sa.Column("parent_id", sa.BigInteger),
        sa.CheckConstraint("n > 0", name="things_n_positive"),
        # Spelled as PostgreSQL words it: the implicit cast of varchar to text is explicit.
        sa.CheckConstraint("length((code)::text) >= 2", name="things_code_len"),
        sa.UniqueConstraint("code", "n", name="things_code_n_key"),
        sa.ForeignKeyConstraint(["parent_id"], ["things.id"], name="things_parent_fkey",
                                ondelete="SET NULL", onupdate="CASCADE", deferrable=True,
                                initially="DEFERRED"),
    )
    sa.Index("things_lower_label_idx", sa.func.lower(things.c.label))
    sa.Index("things_partial_idx", things.c.n, postgresql_where=things.c.flag)
    sa.Index("things_ts_idx", things.c.ts.desc().nulls_last(), things.c.n)
    sa.Index("things_incl_idx", things.c.code, postgresql_include=["n"], unique=True)
    sa.Index("things_ops_idx", things.c.label, postgresql_ops={"label": "text_pattern_ops"})
    sa.Index("things_gin_idx", things.c.tags, postgresql_using="gin")
    # An integer primary key: SQLAlchemy makes it SERIAL, with a sequence default.
    sa.Table("counters", meta, sa.Column("id", sa.Integer, primary_key=True),
             sa.Column("label", sa.Text))
    return meta


@pytest.fixture
def conn(database_url: str) -> Iterator[psycopg.Connection[object]]:
    with psycopg.connect(database_url, autocommit=True) as connection:
        yield connection  # type: ignore[misc]


def _build(conn: psycopg.Connection[object], meta: sa.MetaData) -> None:
    for statement in schema.ddl(meta):
        conn.execute(statement)  # type: ignore[arg-type]


@pytest.mark.parametrize("tables", [lambda: metadata, _revision_0001_tables, _fixture_tables],
                         ids=["models", "revision 0001", "fixture"])
def test_what_postgres_builds_is_what_the_models_say(
        conn: psycopg.Connection[object], tables: object) -> None:
    meta = tables()  # type: ignore[operator]
    _build(conn, meta)
    assert schema.compare(schema.snapshot(conn), schema.expected(conn, meta)) == []  # type: ignore[arg-type]


def test_an_expression_spelled_otherwise_is_reported(conn: psycopg.Connection[object]) -> None:
    meta = _fixture_tables()
    _build(conn, meta)
    check = next(c for c in meta.tables["things"].constraints if c.name == "things_code_len")
    check.sqltext = sa.text("length(code) >= 2")  # type: ignore[attr-defined]
    diffs = schema.compare(schema.snapshot(conn), schema.expected(conn, meta))  # type: ignore[arg-type]
    assert [(d.item, d.action) for d in diffs] == [("things_code_len", "refuse")]


def test_the_comparison_creates_and_writes_nothing(conn: psycopg.Connection[object]) -> None:
    _build(conn, metadata)
    conn.execute("BEGIN READ ONLY")
    conn.execute("SET LOCAL lock_timeout = '50ms'")
    assert schema.verify(conn, metadata) == []  # type: ignore[arg-type]
    conn.execute("COMMIT")


COLLATED = "ALTER TABLE users ALTER COLUMN email TYPE varchar(255) COLLATE \"C\""


def test_collation_drift_refuses_adoption(legacy_database_url: str) -> None:
    with psycopg.connect(legacy_database_url, autocommit=True) as c:
        c.execute(COLLATED)  # type: ignore[arg-type]
    result = run_migrator("upgrade", "--json", env={"DATABASE_URL": legacy_database_url})
    assert result.returncode == 9, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert [d["item"] for d in report["differences"] if d["action"] == "refuse"] == ["email"]
    assert "collation C" in report["message"]


def test_collation_drift_fails_check(database_url: str) -> None:
    env = {"DATABASE_URL": database_url}
    assert run_migrator("upgrade", env=env).returncode == 0
    with psycopg.connect(database_url, autocommit=True) as c:
        c.execute(COLLATED)  # type: ignore[arg-type]
    result = run_migrator("check", "--json", env=env)
    assert result.returncode == 9, result.stdout
    assert "collation C" in json.loads(result.stdout)["message"]
