"""Drift is found, named and given the right action; what PostgreSQL says is what we say.

`check` (the API's init container), `status` and adoption all rest on `schema.compare`: a
missing index must be built, an INVALID one rebuilt, anything that risks the app's data or
queries refused, and harmless extras only warned about. Each case here builds the models
in a real PostgreSQL, changes one thing as a DBA or an old init.sql might have, and reads
the verdict. The definitions we read from the catalog's arrays (so that reading never waits
behind a migration's locks) must say exactly what PostgreSQL's own deparser says.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator

import psycopg
import pytest
import sqlalchemy as sa
from pgtest import superuser_dsn
from sqlalchemy.dialects.postgresql import TIMESTAMP

from migrator import schema
from migrator.localdb import LocalPostgres

Conn = psycopg.Connection[tuple[object, ...]]


def _models() -> sa.MetaData:
    """Tables with the constructs whose spelling must match: unnamed constraints (named by
    PostgreSQL's rules), a foreign key into another schema, FK options, index orderings."""
    audit = sa.MetaData(schema="audit")
    actors = sa.Table("actors", audit, sa.Column("id", sa.Integer, primary_key=True))
    meta = sa.MetaData()
    items = sa.Table(
        "items", meta,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("code", sa.String(20), nullable=False, server_default="it's"),
        sa.Column("qty", sa.Integer, server_default="0"),
        sa.Column("label", sa.Text),
        sa.Column("parent_id", sa.Integer),
        sa.Column("actor_id", sa.Integer, sa.ForeignKey(actors.c.id)),
        sa.Column("at", TIMESTAMP(timezone=True)),
        sa.Column("done", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("tag", sa.String(10, collation="C")),
        sa.UniqueConstraint("code", "qty"),
        sa.CheckConstraint("qty >= 0", name="items_qty_check"),
        sa.CheckConstraint("(qty < 1000) OR done"),  # unnamed, two columns: items_check
        sa.ForeignKeyConstraint(["parent_id"], ["items.id"], name="items_parent_fkey",
                                match="FULL", ondelete="CASCADE"),
    )
    sa.Index("items_at_idx", items.c.at.desc(), items.c.qty.nulls_first())
    sa.Index("items_label_idx", items.c.label.desc().nulls_last())
    sa.Index("items_open_idx", items.c.qty, postgresql_where=sa.not_(items.c.done))
    sa.Index("items_big_idx", items.c.code, postgresql_where=items.c.qty > 5)
    # PostgreSQL's defaults (NULLS FIRST descending, LAST ascending), spelled out
    sa.Index("items_defaults_idx", items.c.at.desc().nulls_first(), items.c.qty.asc().nulls_last())
    notes = sa.Table(
        "notes", meta, sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("item_id", sa.Integer, sa.ForeignKey("items.id", ondelete="SET NULL",
                                                       onupdate="RESTRICT")))
    sa.Index("notes_item_id_idx", notes.c.item_id)
    return meta


@pytest.fixture(scope="module")
def built(pg_server: LocalPostgres) -> Iterator[Conn]:
    """A database with the models built, and a table they reference in another schema."""
    admin, name = superuser_dsn(pg_server), f"drift_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f"CREATE DATABASE {name}")  # type: ignore[arg-type]
    with psycopg.connect(superuser_dsn(pg_server, name)) as connection:
        connection.execute("CREATE SCHEMA audit; CREATE TABLE audit.actors (id int PRIMARY KEY)")
        for statement in schema.ddl(_models()):
            connection.execute(statement)  # type: ignore[arg-type]
        connection.commit()
        yield connection
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f"DROP DATABASE {name} WITH (FORCE)")  # type: ignore[arg-type]


@pytest.fixture
def conn(built: Conn) -> Iterator[Conn]:
    """Each case changes the schema in a transaction that is rolled back (DDL is
    transactional in PostgreSQL), so one build serves them all."""
    with built.transaction(force_rollback=True):
        yield built


def _diffs(conn: Conn, change: str = "") -> list[schema.Difference]:
    if change:
        conn.execute(change)  # type: ignore[arg-type]
    return schema.compare(schema.snapshot(conn), schema.expected(conn, _models()))  # type: ignore[arg-type]


def test_the_models_as_built_match(conn: Conn) -> None:
    assert _diffs(conn) == []


def test_tables_of_other_schemas_and_non_tables_are_not_ours(conn: Conn) -> None:
    """Another schema may reuse our names; a report's materialized view has indexes; a
    table may have no column. None of it is drift, and none of it hides our own indexes."""
    diffs = _diffs(conn, """
        CREATE TABLE audit.items (id text, qty numeric NOT NULL);
        CREATE INDEX ON audit.items (qty);
        CREATE MATERIALIZED VIEW a_report AS SELECT qty FROM items;
        CREATE INDEX a_report_qty_idx ON a_report (qty);
        CREATE TABLE a_placeholder (CHECK (true));
    """)
    assert [d for d in diffs if d.table != "a_placeholder"] == []
    assert schema.matches(diffs)


DRIFTS = {
    # columns
    "type": ("ALTER TABLE items ALTER COLUMN code TYPE varchar(30)", [("code", "refuse")],
             "column code is character varying(30), the models say character varying(20)"),
    "collation": ('ALTER TABLE items ALTER COLUMN label TYPE text COLLATE "C"',
                  [("label", "refuse")],
                  "column label has collation C, the models say the default"),
    "default collation": ('ALTER TABLE items ALTER COLUMN tag TYPE varchar(10) COLLATE "default"',
                          [("tag", "refuse")],
                          "column tag has collation the default, the models say C"),
    "nullable": ("ALTER TABLE items ALTER COLUMN code DROP NOT NULL", [("code", "refuse")],
                 "column code is nullable, the models say NOT NULL"),
    "not null": ("ALTER TABLE items ALTER COLUMN qty SET NOT NULL", [("qty", "refuse")],
                 "column qty is NOT NULL, the models say nullable"),
    "default": ("ALTER TABLE items ALTER COLUMN qty SET DEFAULT 1", [("qty", "refuse")],
                "column qty defaults to 1, the models say 0"),
    "a default the models lack": ("ALTER TABLE items ALTER COLUMN label SET DEFAULT 'x'",
                                  [("label", "refuse")],
                                  "column label defaults to 'x', the models say no default"),
    "no default": ("ALTER TABLE items ALTER COLUMN code DROP DEFAULT", [("code", "refuse")],
                   "column code defaults to nothing, the models say 'it''s'"),
    "missing column": ("ALTER TABLE items DROP COLUMN label CASCADE",
                       [("label", "refuse"), ("items_label_idx", "create")],
                       "column is missing"),
    "extra nullable column": ("ALTER TABLE items ADD COLUMN note text", [("note", "warn")],
                              "extra column the models do not know: left alone"),
    "extra NOT NULL column with a default": (
        "ALTER TABLE items ADD COLUMN note text NOT NULL DEFAULT ''", [("note", "warn")],
        "extra column the models do not know: left alone"),
    "extra NOT NULL column without a default": (
        "ALTER TABLE items ADD COLUMN note text NOT NULL", [("note", "refuse")],
        "extra NOT NULL column without a default: the app's inserts would fail"),
    "extra identity column": (
        "ALTER TABLE items ADD COLUMN seq int NOT NULL GENERATED ALWAYS AS IDENTITY",
        [("seq", "warn")], "extra column"),
    "extra generated column": (
        "ALTER TABLE items ADD COLUMN twice int NOT NULL GENERATED ALWAYS AS (qty * 2) STORED",
        [("twice", "warn")], "extra column"),
    # constraints
    "missing constraint": ("ALTER TABLE items DROP CONSTRAINT items_code_qty_key",
                           [("items_code_qty_key", "refuse")],
                           "constraint is missing (UNIQUE (code, qty))"),
    "other columns": ("ALTER TABLE items DROP CONSTRAINT items_code_qty_key, ADD CONSTRAINT "
                      "items_code_qty_key UNIQUE (qty, code)", [("items_code_qty_key", "refuse")],
                      "constraint is UNIQUE (qty, code), the models say UNIQUE (code, qty)"),
    "primary key": ("ALTER TABLE notes DROP CONSTRAINT notes_pkey, ADD CONSTRAINT notes_pkey "
                    "PRIMARY KEY (id, item_id)", [("item_id", "refuse"), ("notes_pkey", "refuse")],
                    "constraint is PRIMARY KEY (id, item_id), the models say PRIMARY KEY (id)"),
    "check": ("ALTER TABLE items DROP CONSTRAINT items_qty_check, ADD CONSTRAINT "
              "items_qty_check CHECK (qty > 0)", [("items_qty_check", "refuse")],
              "constraint is CHECK (qty > 0), the models say CHECK (qty >= 0)"),
    "check not valid": ("ALTER TABLE items DROP CONSTRAINT items_qty_check, ADD CONSTRAINT "
                        "items_qty_check CHECK (qty >= 0) NOT VALID",
                        [("items_qty_check", "refuse")],
                        "constraint is CHECK (qty >= 0) NOT VALID, the models say CHECK "
                        "(qty >= 0)"),
    "fk not valid": ("ALTER TABLE notes DROP CONSTRAINT notes_item_id_fkey, ADD CONSTRAINT "
                     "notes_item_id_fkey FOREIGN KEY (item_id) REFERENCES items(id) ON UPDATE "
                     "RESTRICT ON DELETE SET NULL NOT VALID", [("notes_item_id_fkey", "refuse")],
                     "constraint is FOREIGN KEY (item_id) REFERENCES items(id) ON UPDATE RESTRICT "
                     "ON DELETE SET NULL NOT VALID, the models say FOREIGN KEY (item_id) "
                     "REFERENCES items(id) ON UPDATE RESTRICT ON DELETE SET NULL"),
    "fk action": ("ALTER TABLE notes DROP CONSTRAINT notes_item_id_fkey, ADD CONSTRAINT "
                  "notes_item_id_fkey FOREIGN KEY (item_id) REFERENCES items(id) ON UPDATE "
                  "RESTRICT ON DELETE SET DEFAULT", [("notes_item_id_fkey", "refuse")],
                  "constraint is FOREIGN KEY (item_id) REFERENCES items(id) ON UPDATE RESTRICT "
                  "ON DELETE SET DEFAULT, the models say"),
    "fk match": ("ALTER TABLE items DROP CONSTRAINT items_parent_fkey, ADD CONSTRAINT "
                 "items_parent_fkey FOREIGN KEY (parent_id) REFERENCES items(id) "
                 "ON DELETE CASCADE", [("items_parent_fkey", "refuse")],
                 "constraint is FOREIGN KEY (parent_id) REFERENCES items(id) ON DELETE CASCADE, "
                 "the models say FOREIGN KEY (parent_id) REFERENCES items(id) MATCH FULL ON "
                 "DELETE CASCADE"),
    "fk deferrable": ("ALTER TABLE items ALTER CONSTRAINT items_parent_fkey DEFERRABLE",
                      [("items_parent_fkey", "refuse")],
                      "constraint is FOREIGN KEY (parent_id) REFERENCES items(id) MATCH FULL ON "
                      "DELETE CASCADE DEFERRABLE, the models say"),
    "extra constraint": ("ALTER TABLE items ADD CONSTRAINT items_label_key UNIQUE (label)",
                         [("items_label_key", "warn")], "extra constraint (UNIQUE (label))"),
    "extra exclusion constraint": (
        "ALTER TABLE items ADD COLUMN during tsrange, ADD CONSTRAINT items_no_overlap EXCLUDE "
        "USING gist (during WITH &&)", [("during", "warn"), ("items_no_overlap", "warn")],
        "items.items_no_overlap: extra constraint (EXCLUDE USING gist (during WITH &&)): left"),
    # indexes
    "missing index": ("DROP INDEX items_at_idx", [("items_at_idx", "create")],
                      "index is missing"),
    "index order": ("DROP INDEX items_at_idx; CREATE INDEX items_at_idx ON items (at, qty "
                    "NULLS FIRST)", [("items_at_idx", "refuse")],
                    "index is `btree (at, qty NULLS FIRST)`, the models say "
                    "`btree (at DESC, qty NULLS FIRST)`"),
    "index nulls": ("DROP INDEX items_at_idx; CREATE INDEX items_at_idx ON items (at DESC, qty)",
                    [("items_at_idx", "refuse")], "index is `btree (at DESC, qty)`"),
    "index nulls last": ("DROP INDEX items_label_idx; CREATE INDEX items_label_idx ON items "
                         "(label DESC)", [("items_label_idx", "refuse")],
                         "index is `btree (label DESC)`"),
    "index made unique": ("DROP INDEX items_label_idx; CREATE UNIQUE INDEX items_label_idx ON "
                          "items (label DESC NULLS LAST)", [("items_label_idx", "refuse")],
                          "index is `UNIQUE btree (label DESC NULLS LAST)`"),
    "index method": ("DROP INDEX items_label_idx; CREATE INDEX items_label_idx ON items USING "
                     "hash (label)", [("items_label_idx", "refuse")], "index is `hash (label)`"),
    "index predicate": ("DROP INDEX items_open_idx; CREATE INDEX items_open_idx ON items (qty) "
                        "WHERE done", [("items_open_idx", "refuse")],
                        "index is `btree (qty) WHERE (done)`"),
    "index without predicate": ("DROP INDEX items_open_idx; CREATE INDEX items_open_idx ON items "
                                "(qty)", [("items_open_idx", "refuse")],
                                "index is `btree (qty)`, the models say `btree (qty) WHERE "
                                "(NOT done)`"),
    "index include": ("DROP INDEX items_open_idx; CREATE INDEX items_open_idx ON items (qty) "
                      "INCLUDE (label) WHERE NOT done", [("items_open_idx", "refuse")],
                      "index is `btree (qty) INCLUDE (label) WHERE (NOT done)`"),
    "index expression": ("DROP INDEX items_label_idx; CREATE INDEX items_label_idx ON items "
                         "(lower(label) DESC NULLS LAST)", [("items_label_idx", "refuse")],
                         "index is `btree (lower(label) DESC NULLS LAST)`"),
    "index opclass and collation": (
        'DROP INDEX items_label_idx; CREATE INDEX items_label_idx ON items (label COLLATE '
        '"C" text_pattern_ops DESC NULLS LAST)', [("items_label_idx", "refuse")],
        'index is `btree (label COLLATE "C" text_pattern_ops DESC NULLS LAST)`'),
    "invalid index": ("UPDATE pg_index SET indisvalid = false WHERE indexrelid = "
                      "'items_at_idx'::regclass", [("items_at_idx", "rebuild")],
                      "index is INVALID (a failed concurrent build)"),
    "extra index": ("CREATE INDEX items_code_idx ON items (code)", [("items_code_idx", "warn")],
                    "extra index: left alone"),
    # tables
    "missing table": ("DROP TABLE notes", [("notes", "create")], "notes: table is missing"),
    "extra table": ("CREATE TABLE audit_log (id int)", [("audit_log", "warn")],
                    "extra table the models do not know"),
}


@pytest.mark.parametrize(("change", "found", "says"), DRIFTS.values(), ids=list(DRIFTS))
def test_drift_is_named_with_what_to_do(conn: Conn, change: str, found: list[tuple[str, str]],
                                        says: str) -> None:
    diffs = _diffs(conn, change)
    assert sorted((d.item or d.table, d.action) for d in diffs) == sorted(found)
    # what on-call reads: the problem, or the whole line with its table and item
    assert any(text.startswith(says) for d in diffs for text in (d.problem, str(d))), diffs


def test_our_own_tables_are_not_extra(conn: Conn) -> None:
    conn.execute("CREATE TABLE alembic_version (version_num varchar(32) PRIMARY KEY);"
                 "CREATE TABLE yomu_migrate_history (revision text PRIMARY KEY)")
    assert _diffs(conn) == []


def test_a_type_the_server_does_not_know_yet_is_drift(conn: Conn) -> None:
    """An enum a pending revision would create: the other columns still compare as usual."""
    meta = sa.MetaData()
    sa.Table("moods", meta, sa.Column("code", sa.String(20)),
             sa.Column("mood", sa.Enum("happy", "sad", name="mood")))
    conn.execute("CREATE TABLE moods (code varchar(20), mood text)")
    diffs = schema.compare(schema.snapshot(conn), schema.expected(conn, meta))  # type: ignore[arg-type]
    assert [(d.table, d.item, d.action) for d in diffs if d.table == "moods"] == [
        ("moods", "mood", "refuse")]
    assert "column mood is text, the models say mood" in str(diffs)


def _postgres_says(conn: Conn, kind: str, name: str) -> str:
    """PostgreSQL's own words for a constraint or an index, in our shape."""
    if kind == "constraint":
        row = conn.execute("SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = %s",
                           (name,)).fetchone()
        assert row is not None
        return str(row[0])
    row = conn.execute("SELECT pg_get_indexdef(%s::regclass)", (name,)).fetchone()
    assert row is not None
    text = re.sub(r"^CREATE (UNIQUE )?INDEX \S+ ON \S+ USING ", r"\1", str(row[0]))
    where = re.search(r" WHERE (.*)$", text)
    if where:  # the predicate: parenthesized once, as a CHECK is
        text = text[: where.start()] + f" WHERE ({schema.normalize_expr(where.group(1))})"
    return text


def test_what_we_read_is_what_postgres_says(conn: Conn) -> None:
    """Read from the catalog's arrays, never from the deparser (which waits behind a
    migration's locks), and still word for word what the deparser says."""
    conn.execute("""
        ALTER TABLE items ADD CONSTRAINT items_actor_fkey FOREIGN KEY (actor_id)
          REFERENCES audit.actors(id) MATCH FULL ON UPDATE SET NULL ON DELETE RESTRICT
          DEFERRABLE INITIALLY DEFERRED NOT VALID;
        CREATE UNIQUE INDEX items_many_idx ON items USING btree
          (code COLLATE "C" text_pattern_ops, qty DESC, at NULLS FIRST, lower(label) DESC
           NULLS LAST) INCLUDE (done, label) WHERE (qty > 0 AND NOT done);
        CREATE INDEX items_hash_idx ON items USING hash (label);
        CREATE INDEX items_lower_ops_idx ON items (lower(label) text_pattern_ops);
    """)
    live = schema.snapshot(conn)["items"]  # type: ignore[arg-type]
    checked = 0
    for name, text in live.constraints.items():
        if not text.startswith("CHECK"):
            assert text == _postgres_says(conn, "constraint", name), name
            checked += 1
    for name, index in live.indexes.items():
        assert index["def"] == _postgres_says(conn, "index", name), name
        checked += 1
    assert checked == 13


def test_plain_tables_are_read_without_waiting_behind_a_migration(
        conn: Conn, pg_server: LocalPostgres) -> None:
    """A migration holds ACCESS EXCLUSIVE on `notes` (plain columns and indexes only): the
    comparison reads the catalog, never the table, so it neither waits nor fails."""
    with psycopg.connect(superuser_dsn(pg_server, conn.info.dbname)) as migration:
        migration.execute("LOCK TABLE notes IN ACCESS EXCLUSIVE MODE")
        conn.execute("SET LOCAL lock_timeout = '100ms'")
        live = schema.snapshot(conn)  # type: ignore[arg-type]
        migration.rollback()
    assert live["notes"].indexes["notes_item_id_idx"]["def"] == "btree (item_id)"


def test_what_adoption_builds_for_a_missing_index_is_the_models_index(conn: Conn) -> None:
    """Adoption builds a missing index from the models' DDL: the index it gets must be the
    one the models describe, in every detail the comparison reads."""
    conn.execute("DROP INDEX items_at_idx, items_open_idx, items_defaults_idx, items_big_idx")
    want = schema.expected(conn, _models())  # type: ignore[arg-type]
    for name in ("items_at_idx", "items_open_idx", "items_defaults_idx", "items_big_idx"):
        conn.execute(want["items"].indexes[name]["ddl"])
    assert _diffs(conn) == []
