"""Compare the live schema with the models by reading the catalog only.

`check` and `status` run as the API's role, on hot standbys and read-only databases, while a
migration may hold ACCESS EXCLUSIVE on a table. So neither side may write (no temp tables)
or wait on a table lock. PostgreSQL's deparse functions (`pg_get_indexdef`,
`pg_get_constraintdef` of a CHECK, `pg_get_expr` with a relation) open the table and wait
behind such a lock; the plain catalog columns and `format_type` do not. Both sides are
therefore reduced to the same plain facts, formatted by the same functions here:

- types: the live `format_type`; the models' type names are parsed by the server itself
  (`SELECT NULL::varchar(255)`, read its type and modifier), which touches no table;
- defaults: `pg_get_expr(adbin, 0)` (no relation, so no lock), normalized on both sides;
- keys, unique and foreign keys, plain indexes: built from the catalog's arrays;
- CHECK constraints and expression or partial indexes: deparsed under the session's short
  lock_timeout, the only reads that can meet a lock (`DatabaseBusy` then, and retried).

Expressions (defaults, CHECKs, index expressions) compare as normalized text: the models
must spell them as PostgreSQL does. tests/integration/test_schema_oracle.py builds every
shipped model in a real PostgreSQL and demands no difference, so a model written otherwise
fails CI, not a deploy.

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
from sqlalchemy import (
    CheckConstraint,
    Column,
    ForeignKeyConstraint,
    Index,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    UniqueConstraint,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.schema import CreateIndex
from sqlalchemy.sql import operators
from sqlalchemy.sql.elements import ClauseElement, UnaryExpression

from migrator.history import OWN_TABLES

Action = Literal["create", "rebuild", "warn", "refuse"]
SCHEMA = "public"
_DIALECT = postgresql.dialect()  # type: ignore[no-untyped-call]
# pg_constraint's one-letter foreign key actions and match types.
_FK_ACTIONS = {"a": "NO ACTION", "r": "RESTRICT", "c": "CASCADE", "n": "SET NULL",
               "d": "SET DEFAULT"}
_FK_MATCH = {"s": "SIMPLE", "f": "FULL", "p": "PARTIAL"}


@dataclass
class TableShape:
    columns: dict[str, dict[str, Any]] = field(default_factory=dict)
    constraints: dict[str, str] = field(default_factory=dict)
    # name -> {"def": canonical text, "valid": bool, "ddl": CREATE INDEX (models only)}
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


# ---- formatting shared by both sides ---------------------------------------------------------

def _strip_parens(text: str) -> str:
    """`((x > 1))` -> `x > 1`: only parentheses that wrap the whole text."""
    while text.startswith("(") and text.endswith(")"):
        depth = 0
        for i, char in enumerate(text):
            depth += {"(": 1, ")": -1}.get(char, 0)
            if depth == 0 and i < len(text) - 1:
                return text
        text = text[1:-1].strip()
    return text


_QUALIFIER = re.compile(rf"\b(?:{SCHEMA}|pg_catalog)\.")


def normalize_expr(text: str | None, base_type: str | None = None) -> str | None:
    """One spelling of an expression: whitespace, outer parentheses, schema qualifiers and a
    cast to the column's own type (`'x'::character varying` on a varchar) do not count."""
    if text is None:
        return None
    out = _strip_parens(_QUALIFIER.sub("", " ".join(text.split())))
    if base_type and out.endswith(f"::{base_type}"):
        out = _strip_parens(out[: -len(base_type) - 2])
    literal = re.fullmatch(r"'(-?\d+(?:\.\d+)?|true|false)'", out)
    return literal.group(1) if literal else out


def _base(type_name: str) -> str:
    """`character varying(255)` -> `character varying`."""
    return re.sub(r"\(.*?\)", "", type_name).strip()


def _column_list(names: list[str]) -> str:
    return ", ".join(names)


def _table_name(schema: str, name: str) -> str:
    return name if schema == SCHEMA else f"{schema}.{name}"


def _foreign_key(columns: list[str], target: str, target_columns: list[str], on_update: str,
                 on_delete: str, match: str, deferrable: bool, deferred: bool) -> str:
    text = (f"FOREIGN KEY ({_column_list(columns)}) REFERENCES "
            f"{target}({_column_list(target_columns)})")
    text += f" MATCH {match}" if match != "SIMPLE" else ""
    text += f" ON UPDATE {on_update}" if on_update != "NO ACTION" else ""
    text += f" ON DELETE {on_delete}" if on_delete != "NO ACTION" else ""
    text += " DEFERRABLE" if deferrable else ""
    return text + (" INITIALLY DEFERRED" if deferred else "")


def _index_column(what: str, opclass: str | None, collation: str | None, desc: bool,
                  nulls_first: bool) -> str:
    # PostgreSQL's order (and syntax): column COLLATE "x" opclass
    text = what + (f' COLLATE "{collation}"' if collation else "") + (f" {opclass}"
                                                                     if opclass else "")
    text += " DESC" if desc else ""
    if nulls_first != desc:  # PostgreSQL's default: NULLS LAST ascending, FIRST descending
        text += " NULLS FIRST" if nulls_first else " NULLS LAST"
    return text


def _index(unique: bool, method: str, columns: list[str], include: list[str],
           where: str | None) -> str:
    text = f"{'UNIQUE ' if unique else ''}{method} ({_column_list(columns)})"
    text += f" INCLUDE ({_column_list(include)})" if include else ""
    return text + (f" WHERE ({where})" if where else "")


# ---- the live side ---------------------------------------------------------------------------

_COLUMNS_SQL = """
SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
       CASE WHEN a.attgenerated = '' THEN pg_get_expr(d.adbin, 0) END,
       a.attidentity <> '' OR a.attgenerated <> '',
       CASE WHEN a.attcollation <> t.typcollation THEN co.collname END
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
JOIN pg_type t ON t.oid = a.atttypid
LEFT JOIN pg_collation co ON co.oid = a.attcollation
LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum
WHERE n.nspname = %(schema)s AND c.relkind IN ('r', 'p')
ORDER BY c.relname, a.attnum
"""

# Names of a constraint's columns, in key order.
_KEY_NAMES = """ARRAY(SELECT a.attname FROM unnest({keys}) WITH ORDINALITY u(num, i)
  JOIN pg_attribute a ON a.attrelid = {rel} AND a.attnum = u.num ORDER BY u.i)"""

_CONSTRAINTS_SQL = f"""
SELECT c.relname, k.conname, k.contype,
       {_KEY_NAMES.format(keys="k.conkey", rel="k.conrelid")},
       fn.nspname, f.relname, {_KEY_NAMES.format(keys="k.confkey", rel="k.confrelid")},
       k.confupdtype, k.confdeltype, k.confmatchtype, k.condeferrable, k.condeferred,
       k.convalidated
FROM pg_constraint k
JOIN pg_class c ON c.oid = k.conrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_class f ON f.oid = k.confrelid
LEFT JOIN pg_namespace fn ON fn.oid = f.relnamespace
WHERE n.nspname = %(schema)s AND k.contype IN ('p', 'u', 'f', 'c', 'x')
ORDER BY c.relname, k.conname
"""

# One row per index column. Indexes behind a PRIMARY KEY, UNIQUE or EXCLUDE constraint are
# the constraint's business. Expressions and predicates are only flagged here.
_INDEXES_SQL = """
SELECT t.relname, i.relname, x.indexrelid, x.indisunique, x.indisvalid, am.amname,
       u.i, u.i <= x.indnkeyatts, a.attname,
       CASE WHEN opc.opcdefault THEN NULL ELSE opc.opcname END,
       CASE WHEN u.num <> 0 AND (x.indcollation::oid[])[u.i - 1] <> a.attcollation
            THEN co.collname END,
       ((x.indoption::int2[])[u.i - 1] & 1) = 1, ((x.indoption::int2[])[u.i - 1] & 2) = 2,
       x.indpred IS NOT NULL
FROM pg_index x
JOIN pg_class i ON i.oid = x.indexrelid
JOIN pg_class t ON t.oid = x.indrelid
JOIN pg_namespace n ON n.oid = t.relnamespace
JOIN pg_am am ON am.oid = i.relam
CROSS JOIN LATERAL unnest(x.indkey::int2[]) WITH ORDINALITY u(num, i)
LEFT JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = u.num AND u.num <> 0
LEFT JOIN pg_opclass opc ON opc.oid = (x.indclass::oid[])[u.i - 1]
LEFT JOIN pg_collation co ON co.oid = (x.indcollation::oid[])[u.i - 1]
WHERE n.nspname = %(schema)s AND NOT EXISTS (
  SELECT 1 FROM pg_constraint k WHERE k.conindid = x.indexrelid AND k.conrelid = t.oid
  AND k.contype IN ('p', 'u', 'x'))
ORDER BY t.relname, i.relname, u.i
"""


def snapshot(conn: psycopg.Connection[Any], schema: str = SCHEMA) -> dict[str, TableShape]:
    """Tables, columns, constraints and indexes of one schema, from the catalog."""
    tables: dict[str, TableShape] = {}
    params = {"schema": schema}
    for table, column, type_, notnull, default, generated, collation in conn.execute(
            _COLUMNS_SQL, params):
        tables.setdefault(table, TableShape()).columns[column] = {
            "type": type_, "not_null": notnull, "default": normalize_expr(default, _base(type_)),
            "collation": collation, "generated": generated,
        }
    deparse: list[tuple[str, str, str]] = []  # (table, constraint, kind) read under a lock_timeout
    for (table, name, kind, columns, ref_schema, ref_table, ref_columns, on_update, on_delete,
         match, deferrable, deferred, validated) in conn.execute(_CONSTRAINTS_SQL, params):
        if table not in tables:
            continue
        if kind == "p":
            tables[table].constraints[name] = f"PRIMARY KEY ({_column_list(columns)})"
        elif kind == "u":
            tables[table].constraints[name] = f"UNIQUE ({_column_list(columns)})"
        elif kind == "f":
            tables[table].constraints[name] = _foreign_key(
                columns, _table_name(ref_schema, ref_table), ref_columns,
                _FK_ACTIONS[on_update], _FK_ACTIONS[on_delete], _FK_MATCH[match], deferrable,
                deferred) + ("" if validated else " NOT VALID")
        else:
            deparse.append((table, name, kind))
    if deparse:
        _read_deparsed_constraints(conn, schema, tables, deparse)
    _read_indexes(conn, schema, tables)
    return tables


def _read_deparsed_constraints(conn: psycopg.Connection[Any], schema: str,
                               tables: dict[str, TableShape],
                               wanted: list[tuple[str, str, str]]) -> None:
    """CHECK and EXCLUDE definitions: deparsing opens the table (the session's lock_timeout)."""
    for table, name, definition in conn.execute(
            "SELECT c.relname, k.conname, pg_get_constraintdef(k.oid) FROM pg_constraint k"
            " JOIN pg_class c ON c.oid = k.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = %s AND c.relname = ANY(%s) AND k.conname = ANY(%s)"
            " AND k.contype IN ('c', 'x')",
            (schema, [w[0] for w in wanted], [w[1] for w in wanted])):
        tables[table].constraints[name] = _constraint_text(definition)


def _constraint_text(definition: str) -> str:
    check = re.fullmatch(r"CHECK \((.*)\)( NOT VALID)?", definition, re.S)
    if check:
        return f"CHECK ({normalize_expr(check.group(1))})" + (check.group(2) or "")
    return " ".join(_QUALIFIER.sub("", definition).split())


def _read_indexes(conn: psycopg.Connection[Any], schema: str,
                  tables: dict[str, TableShape]) -> None:
    rows: dict[tuple[str, str], list[tuple[Any, ...]]] = {}
    for row in conn.execute(_INDEXES_SQL, {"schema": schema}):
        rows.setdefault((row[0], row[1]), []).append(row)
    expressions = {row[2] for group in rows.values() for row in group
                   if row[8] is None or row[13]}
    deparsed = _deparse_indexes(conn, expressions) if expressions else {}
    for (table, name), group in rows.items():
        if table not in tables:
            continue
        oid, unique, valid, method, has_predicate = (group[0][2], group[0][3], group[0][4],
                                                     group[0][5], group[0][13])
        columns, include = [], []
        for (*_, position, is_key, column, opclass, collation, desc, nulls_first, _p) in group:
            what = column or normalize_expr(deparsed[oid]["columns"][position]) or "?"
            if is_key:
                columns.append(_index_column(what, opclass, collation, desc, nulls_first))
            else:
                include.append(what)
        where = deparsed[oid]["where"] if has_predicate else None
        tables[table].indexes[name] = {"def": _index(unique, method, columns, include, where),
                                       "valid": valid}


def _deparse_indexes(conn: psycopg.Connection[Any], oids: set[int]) -> dict[int, Any]:
    """Expression columns and predicates of some indexes (these reads open the table)."""
    out: dict[int, Any] = {}
    for oid, position, column, predicate in conn.execute(
            "SELECT x.indexrelid, u.i, CASE WHEN u.num = 0 THEN"
            " pg_get_indexdef(x.indexrelid, u.i::int, false) END,"
            " pg_get_expr(x.indpred, x.indrelid)"
            " FROM pg_index x CROSS JOIN LATERAL unnest(x.indkey::int2[]) WITH ORDINALITY"
            " u(num, i) WHERE x.indexrelid = ANY(%s)", (list(oids),)):
        entry = out.setdefault(oid, {"columns": {}, "where": normalize_expr(predicate)})
        entry["columns"][position] = column
    return out


# ---- the models' side ------------------------------------------------------------------------

def _compile(element: ClauseElement) -> str:
    return str(element.compile(dialect=_DIALECT,
                               compile_kwargs={"literal_binds": True, "include_table": False}))


def _type_name(column: Column[Any]) -> str:
    """The column's type as SQL, without a collation (compared on its own)."""
    type_ = column.type
    if getattr(type_, "collation", None):
        type_ = type_.copy()
        type_.collation = None  # type: ignore[attr-defined]
    return str(type_.compile(dialect=_DIALECT))


def canonical_types(conn: psycopg.Connection[Any], names: list[str]) -> dict[str, str]:
    """`format_type` of each SQL type name, as the server parses it: no table is touched.

    A name the server does not know (an enum a missing revision would create) stays as
    written, and so shows up as a difference.
    """
    unique = sorted(set(names))
    if not unique:
        return {}
    out = dict(zip(unique, unique, strict=True))
    try:
        with conn.transaction():  # a savepoint when a revision's transaction is open
            cursor = conn.execute("SELECT " + ", ".join(f"NULL::{n}" for n in unique))
            result = cursor.pgresult
            assert result is not None
            pairs = [(result.ftype(i), result.fmod(i)) for i in range(len(unique))]
            rows = conn.execute(
                "SELECT format_type(o, NULLIF(m, -1)) FROM unnest(%s::oid[], %s::int[])"
                " WITH ORDINALITY u(o, m, i) ORDER BY i",
                ([p[0] for p in pairs], [p[1] for p in pairs])).fetchall()
        out.update({name: row[0] for name, row in zip(unique, rows, strict=True)})
    except psycopg.errors.UndefinedObject:
        if len(unique) > 1:  # find the unknown one(s); the rest are still parsed
            for name in unique:
                out.update(canonical_types(conn, [name]))
    return out


def _default_text(column: Column[Any]) -> str | None:
    """The server default as SQL; identity and generated columns have none, a SERIAL the
    sequence PostgreSQL makes for it."""
    table = column.table
    if (column is table.autoincrement_column and column.identity is None
            and column.server_default is None and column.default is None):
        return f"nextval('{table.name}_{column.name}_seq'::regclass)"
    arg = getattr(column.server_default, "arg", None)
    if isinstance(arg, str):
        return "'" + arg.replace("'", "''") + "'"
    return _compile(arg) if isinstance(arg, ClauseElement) else None


def _constraint_name(constraint: Any, table: Table, suffix: str) -> str:
    """PostgreSQL's own default name where the model gives none (`users_pkey`, ...)."""
    if constraint.name:
        return str(constraint.name)
    columns = "_".join(c.name for c in constraint.columns)
    return f"{table.name}_pkey" if suffix == "pkey" else f"{table.name}_{columns}_{suffix}"


def _expected_constraints(table: Table) -> dict[str, str]:
    out: dict[str, str] = {}
    for constraint in table.constraints:
        if isinstance(constraint, PrimaryKeyConstraint) and constraint.columns:
            out[_constraint_name(constraint, table, "pkey")] = (
                f"PRIMARY KEY ({_column_list([c.name for c in constraint.columns])})")
        elif isinstance(constraint, UniqueConstraint):
            out[_constraint_name(constraint, table, "key")] = (
                f"UNIQUE ({_column_list([c.name for c in constraint.columns])})")
        elif isinstance(constraint, ForeignKeyConstraint):
            target = constraint.elements[0].column.table
            out[_constraint_name(constraint, table, "fkey")] = _foreign_key(
                [c.name for c in constraint.columns],
                _table_name(target.schema or SCHEMA, target.name),
                [e.column.name for e in constraint.elements],
                (constraint.onupdate or "NO ACTION").upper(),
                (constraint.ondelete or "NO ACTION").upper(),
                (constraint.match or "SIMPLE").upper(), bool(constraint.deferrable),
                (constraint.initially or "").upper() == "DEFERRED")
        elif isinstance(constraint, CheckConstraint):
            name = constraint.name or f"{table.name}_check"
            out[str(name)] = f"CHECK ({normalize_expr(_compile(constraint.sqltext))})"
    return out


def _expected_index(index: Index) -> dict[str, Any]:
    options = index.dialect_options["postgresql"]
    ops: dict[str, str] = options.get("ops") or {}
    columns = []
    for expression in index.expressions:
        desc, nulls_first = False, None
        element: Any = expression
        while isinstance(element, UnaryExpression) and element.modifier is not None:
            if element.modifier is operators.desc_op:
                desc = True
            elif element.modifier is operators.nulls_first_op:
                nulls_first = True
            elif element.modifier is operators.nulls_last_op:
                nulls_first = False
            element = element.element
        # A column's index takes the column's collation, which the catalog then does not
        # repeat: only an expression can carry one of its own (inside its text).
        what = element.name if isinstance(element, Column) else normalize_expr(
            _compile(element)) or ""
        columns.append(_index_column(what, ops.get(what), None, desc,
                                     desc if nulls_first is None else nulls_first))
    where = options.get("where")
    include = [c if isinstance(c, str) else c.name for c in options.get("include") or []]
    return {
        "def": _index(bool(index.unique), options.get("using") or "btree", columns, include,
                      normalize_expr(_compile(where)) if where is not None else None),
        "valid": True,
        "ddl": str(CreateIndex(index).compile(dialect=_DIALECT)),
    }


def expected(conn: psycopg.Connection[Any], metadata: MetaData) -> dict[str, TableShape]:
    """What the models look like in the catalog's terms (types parsed by `conn`'s server)."""
    columns = [c for t in metadata.sorted_tables for c in t.columns]
    types = canonical_types(conn, [_type_name(c) for c in columns])
    shapes: dict[str, TableShape] = {}
    for table in metadata.sorted_tables:
        shape = shapes[table.name] = TableShape()
        for column in table.columns:
            type_ = types[_type_name(column)]
            shape.columns[column.name] = {
                "type": type_, "not_null": not column.nullable,
                "default": normalize_expr(_default_text(column), _base(type_)),
                "collation": getattr(column.type, "collation", None),
                "generated": column.identity is not None or column.computed is not None,
            }
        shape.constraints = _expected_constraints(table)
        for index in sorted(table.indexes, key=lambda i: i.name or ""):
            shape.indexes[str(index.name)] = _expected_index(index)
    return shapes


def ddl(metadata: MetaData) -> list[str]:
    """The models' CREATE TABLE and CREATE INDEX statements, in dependency order."""
    from sqlalchemy.schema import CreateTable

    statements = [str(CreateTable(t).compile(dialect=_DIALECT)) for t in metadata.sorted_tables]
    statements += [str(CreateIndex(index).compile(dialect=_DIALECT))
                   for table in metadata.sorted_tables
                   for index in sorted(table.indexes, key=lambda i: i.name or "")]
    return statements


# ---- comparing -------------------------------------------------------------------------------

def _column_problems(name: str, live: dict[str, Any], want: dict[str, Any]) -> list[str]:
    problems = []
    if live["type"] != want["type"]:
        problems.append(f"column {name} is {live['type']}, the models say {want['type']}")
    if live["collation"] != want["collation"]:
        problems.append(
            f"column {name} has collation {live['collation'] or 'the default'}, the models say "
            f"{want['collation'] or 'the default'}")
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
