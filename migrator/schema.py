"""Compare the live schema with the models, as PostgreSQL itself sees both.

The expected side is not guessed from SQLAlchemy types: the models' DDL is run into
temporary tables inside a transaction that is rolled back, and both sides are read from the
same catalog queries (`format_type`, `pg_get_expr`, `pg_get_constraintdef`,
`pg_get_indexdef`). So "varchar(255)" and "character varying(255)" can never disagree, and
the check only needs the TEMP privilege, which the app's own role has too.

Each difference says what the migrator may do about it:
- create: a missing table or index (adoption builds it);
- rebuild: an INVALID index left by a failed concurrent build;
- warn: something the models do not know, left alone (extra table, nullable column, index);
- refuse: anything that cannot be reconciled without risking data or the app.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import psycopg
from sqlalchemy import MetaData
from sqlalchemy.dialects import postgresql
from sqlalchemy.schema import CreateIndex, CreateTable

from migrator.history import OWN_TABLES

Action = Literal["create", "rebuild", "warn", "refuse"]
PUBLIC = "'public'::regnamespace"
TEMP = "pg_my_temp_schema()"


@dataclass
class TableShape:
    columns: dict[str, dict[str, Any]] = field(default_factory=dict)
    constraints: dict[str, str] = field(default_factory=dict)
    indexes: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class Difference:
    table: str
    item: str | None
    problem: str
    action: Action

    def __str__(self) -> str:
        where = f"{self.table}.{self.item}" if self.item else self.table
        return f"{where}: {self.problem}"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


_SCHEMA_PREFIX = re.compile(r"\b(?:public|pg_temp(?:_\d+)?)\.")


def _plain(text: str | None) -> str | None:
    return None if text is None else _SCHEMA_PREFIX.sub("", text)


def snapshot(conn: psycopg.Connection[Any], namespace: str = PUBLIC) -> dict[str, TableShape]:
    """Tables, columns, constraints and indexes of one schema, in PostgreSQL's own words."""
    tables: dict[str, TableShape] = {}
    for table, column, type_, notnull, default, identity, generated in conn.execute(
        "SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,"
        " pg_get_expr(d.adbin, d.adrelid), a.attidentity <> '', a.attgenerated <> ''"
        " FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid"
        "  AND a.attnum > 0 AND NOT a.attisdropped"
        " LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum"
        f" WHERE c.relnamespace = {namespace} AND c.relkind IN ('r', 'p')"
    ):
        tables.setdefault(table, TableShape()).columns[column] = {
            "type": type_, "not_null": notnull, "default": _plain(default),
            "generated": identity or generated,
        }
    for table, name, definition in conn.execute(
        "SELECT c.relname, k.conname, pg_get_constraintdef(k.oid)"
        " FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid"
        f" WHERE c.relnamespace = {namespace} AND k.contype IN ('p', 'u', 'f', 'c', 'x')"
    ):
        if table in tables:
            tables[table].constraints[name] = _plain(definition) or ""
    for table, name, definition, valid in conn.execute(
        "SELECT t.relname, i.relname, pg_get_indexdef(i.oid), x.indisvalid"
        " FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid"
        " JOIN pg_class t ON t.oid = x.indrelid"
        f" WHERE t.relnamespace = {namespace} AND NOT EXISTS (SELECT 1 FROM pg_constraint k"
        "  WHERE k.conindid = x.indexrelid AND k.conrelid = t.oid"
        "  AND k.contype IN ('p', 'u', 'x'))"
    ):
        if table in tables:
            tables[table].indexes[name] = {"def": _plain(definition), "valid": valid}
    return tables


def ddl(metadata: MetaData) -> list[str]:
    """The models' CREATE TABLE and CREATE INDEX statements, in dependency order."""
    dialect = postgresql.dialect()  # type: ignore[no-untyped-call]
    statements = [str(CreateTable(t).compile(dialect=dialect)) for t in metadata.sorted_tables]
    statements += [
        str(CreateIndex(index).compile(dialect=dialect))
        for table in metadata.sorted_tables
        for index in sorted(table.indexes, key=lambda i: i.name or "")
    ]
    return statements


def expected(conn: psycopg.Connection[Any], metadata: MetaData) -> dict[str, TableShape]:
    """What the models look like once PostgreSQL has built them (then thrown away)."""
    with conn.transaction(force_rollback=True):
        conn.execute("SET LOCAL search_path = pg_temp")
        for statement in ddl(metadata):
            conn.execute(statement)
        return snapshot(conn, TEMP)


def _column_problems(name: str, live: dict[str, Any], want: dict[str, Any]) -> list[str]:
    problems = []
    if live["type"] != want["type"]:
        problems.append(f"column {name} is {live['type']}, the models say {want['type']}")
    if live["not_null"] != want["not_null"]:
        problems.append(
            f"column {name} is {'NOT NULL' if live['not_null'] else 'nullable'}, the models say "
            f"{'NOT NULL' if want['not_null'] else 'nullable'}"
        )
    if live["default"] != want["default"]:
        problems.append(
            f"column {name} defaults to {live['default'] or 'nothing'}, the models say "
            f"{want['default'] or 'no default'}"
        )
    return problems


def _compare_table(table: str, live: TableShape, want: TableShape) -> list[Difference]:
    diffs: list[Difference] = []
    for name, spec in want.columns.items():
        if name not in live.columns:
            diffs.append(Difference(table, name, "column is missing", "refuse"))
        else:
            diffs += [Difference(table, name, p, "refuse")
                      for p in _column_problems(name, live.columns[name], spec)]
    for name, spec in live.columns.items():
        if name in want.columns:
            continue
        if spec["not_null"] and spec["default"] is None and not spec["generated"]:
            diffs.append(Difference(
                table, name, "extra NOT NULL column without a default: the app's inserts would "
                "fail", "refuse"))
        else:
            diffs.append(Difference(table, name, "extra column the models do not know: left "
                                    "alone", "warn"))
    for name, definition in want.constraints.items():
        if name not in live.constraints:
            diffs.append(Difference(table, name, f"constraint is missing ({definition})",
                                    "refuse"))
        elif live.constraints[name] != definition:
            diffs.append(Difference(table, name, f"constraint is {live.constraints[name]}, the "
                                    f"models say {definition}", "refuse"))
    for name in live.constraints.keys() - want.constraints.keys():
        diffs.append(Difference(table, name, f"extra constraint ({live.constraints[name]}): "
                                "left alone", "warn"))
    for name, index in want.indexes.items():
        have = live.indexes.get(name)
        if have is None:
            diffs.append(Difference(table, name, "index is missing", "create"))
        elif have["def"] != index["def"]:
            diffs.append(Difference(table, name, f"index is `{have['def']}`, the models say "
                                    f"`{index['def']}`", "refuse"))
        elif not have["valid"]:
            diffs.append(Difference(table, name, "index is INVALID (a failed concurrent build)",
                                    "rebuild"))
    for name in live.indexes.keys() - want.indexes.keys():
        diffs.append(Difference(table, name, "extra index: left alone", "warn"))
    return diffs


def compare(live: dict[str, TableShape], want: dict[str, TableShape]) -> list[Difference]:
    """Every difference between the live schema and the models, with what to do about it."""
    diffs: list[Difference] = []
    for table, shape in want.items():
        if table not in live:
            diffs.append(Difference(table, None, "table is missing", "create"))
        else:
            diffs += _compare_table(table, live[table], shape)
    for table in sorted(live.keys() - want.keys() - set(OWN_TABLES)):
        diffs.append(Difference(table, None, "extra table the models do not know: left alone",
                                "warn"))
    return diffs


def verify(conn: psycopg.Connection[Any], metadata: MetaData) -> list[Difference]:
    return compare(snapshot(conn), expected(conn, metadata))


def matches(diffs: list[Difference]) -> bool:
    """True when only harmless extras remain."""
    return all(d.action == "warn" for d in diffs)
