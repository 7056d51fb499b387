"""The API's database role gets exactly what the API needs, on every run.

Production keeps the owner role that runs DDL apart from the role the API connects as. The
tables belong to the owner, so without grants the API (and its init container's `migrator
check`) gets "permission denied". Every `upgrade` therefore makes sure each role named in
MIGRATOR_APP_ROLE has:
- USAGE on the schema;
- SELECT, INSERT, UPDATE, DELETE on the tables the models define, USAGE on their sequences;
- SELECT, and nothing more, on the migrator's own tables (the app may read where the schema
  stands, never rewrite it);
- nothing on any other table: no ALTER DEFAULT PRIVILEGES, which would give the app every
  table a revision creates later, including one meant to be kept from it (an audit log, a
  table of secrets). A table of the models is granted by name on the run that creates it;
  default privileges an earlier version of the migrator set are revoked.

The catalog is asked first (no lock), and only what is missing is granted: a run with
everything in place changes nothing. GRANT locks its table like DDL does, so the
statements run with lock_timeout retries (migrator/retry.py), all in one transaction.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql

from migrator.config import Settings
from migrator.db import SCHEMA
from migrator.errors import ConfigError, PermissionDenied
from migrator.history import OWN_TABLES
from migrator.logs import event
from migrator.retry import with_lock_retries

# The models' tables (migrator/models.py), named here so that a no-op run need not import
# SQLAlchemy; tests/integration/test_least_privilege.py keeps the two equal.
APP_TABLES = ("users", "sessions", "bookmarks")
TABLE_PRIVILEGES = ("SELECT", "INSERT", "UPDATE", "DELETE")
OWN_TABLE_WRITES = ("INSERT", "UPDATE", "DELETE", "TRUNCATE")

# (role, table, privileges it lacks) for each table of %(tables)s; a table that does not exist
# yet lacks everything (an offline plan, or a revision still to come creates it).
_MISSING_TABLE_PRIVILEGES = """
SELECT r, t, array_agg(p ORDER BY array_position(%(privileges)s::text[], p)),
       to_regclass(format('%%I.%%I', %(schema)s::text, t)) IS NOT NULL
FROM unnest(%(roles)s::text[]) r, unnest(%(tables)s::text[]) t, unnest(%(privileges)s::text[]) p
WHERE to_regclass(format('%%I.%%I', %(schema)s::text, t)) IS NULL
   OR NOT has_table_privilege(r, format('%%I.%%I', %(schema)s::text, t), p)
GROUP BY r, t ORDER BY r, array_position(%(tables)s::text[], t)
"""

_OWN_TABLE_WRITES = """
SELECT r.rolname, c.relname, array_agg(DISTINCT x.privilege_type ORDER BY x.privilege_type)
FROM pg_class c CROSS JOIN LATERAL aclexplode(c.relacl) x
JOIN pg_roles r ON r.oid = x.grantee
WHERE c.relnamespace = %(schema)s::regnamespace AND c.relname = ANY(%(own)s)
  AND r.rolname = ANY(%(roles)s) AND x.privilege_type = ANY(%(writes)s)
  AND r.oid <> c.relowner  -- the owner's own rights are the migrator's
GROUP BY r.rolname, c.relname ORDER BY 1, 2
"""

_MISSING_SEQUENCE_USAGE = """
SELECT r, s.relname FROM unnest(%(roles)s::text[]) r, pg_class s
JOIN pg_depend d ON d.objid = s.oid AND d.classid = 'pg_class'::regclass
  AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')
JOIN pg_class t ON t.oid = d.refobjid
WHERE s.relkind = 'S' AND t.relnamespace = %(schema)s::regnamespace
  AND t.relname = ANY(%(tables)s) AND NOT has_sequence_privilege(r, s.oid, 'USAGE')
ORDER BY 1, 2
"""

_MISSING_SCHEMA_USAGE = """
SELECT r FROM unnest(%(roles)s::text[]) r
WHERE to_regnamespace(%(schema)s) IS NULL OR NOT has_schema_privilege(r, %(schema)s, 'USAGE')
"""

# Default privileges the owner (current_user) gives each role on what it creates later.
_DEFAULTS = """
SELECT r, o, coalesce((
  SELECT array_agg(x.privilege_type) FROM pg_default_acl a CROSS JOIN LATERAL
  aclexplode(a.defaclacl) x JOIN pg_roles g ON g.oid = x.grantee
  WHERE a.defaclrole = current_user::regrole AND a.defaclobjtype = o
    AND a.defaclnamespace = to_regnamespace(%(schema)s) AND g.rolname = r), '{}')
FROM unnest(%(roles)s::text[]) r, unnest(ARRAY['r', 'S']) o ORDER BY 1, 2
"""


def check_roles(conn: psycopg.Connection[Any], roles: tuple[str, ...]) -> None:
    """Refuse, before anything changes, a MIGRATOR_APP_ROLE naming no role."""
    known = {row[0] for row in conn.execute(
        "SELECT rolname FROM pg_roles WHERE rolname = ANY(%s)", (list(roles),))}
    unknown = [role for role in roles if role not in known]
    if unknown:
        names = ", ".join(unknown)
        raise ConfigError(
            f"MIGRATOR_APP_ROLE names role(s) that do not exist in this cluster: {names}",
            f"create the API's role first (`CREATE ROLE {unknown[0]} LOGIN PASSWORD '...'`), "
            "or set MIGRATOR_APP_ROLE (chart value migrations.appRoles) to the user of the "
            "API's DATABASE_URL",
        )


def _name(name: str) -> str:
    return sql.Identifier(name).as_string()


def pending(conn: psycopg.Connection[Any] | None, roles: tuple[str, ...],
            future_tables: bool = False) -> list[str]:
    """The GRANT and REVOKE statements still needed (and the ALTER DEFAULT PRIVILEGES ...
    REVOKE that takes back what an earlier version gave every future table).

    Without a connection (an offline plan), every statement an empty database needs. With
    `future_tables` (a plan before pending revisions), tables that do not exist yet count
    as lacking everything; otherwise they are left to the revision that creates them.
    """
    if not roles:
        return []
    if conn is None:
        return _statements(
            {r: {t: list(TABLE_PRIVILEGES) for t in APP_TABLES} for r in roles},
            {r: list(OWN_TABLES) for r in roles}, {}, {}, list(roles),
            {(r, kind): [] for r in roles for kind in ("r", "S")}, "CURRENT_USER")
    params = {"roles": list(roles), "tables": list(APP_TABLES), "schema": SCHEMA,
              "privileges": list(TABLE_PRIVILEGES), "own": list(OWN_TABLES),
              "writes": list(OWN_TABLE_WRITES)}
    tables: dict[str, dict[str, list[str]]] = {}
    for role, table, privileges, exists in conn.execute(_MISSING_TABLE_PRIVILEGES, params):
        if exists or future_tables:
            tables.setdefault(role, {})[table] = privileges
    own_select: dict[str, list[str]] = {}
    for role, table, _, exists in conn.execute(_MISSING_TABLE_PRIVILEGES, {
            **params, "tables": list(OWN_TABLES), "privileges": ["SELECT"]}):
        if exists or future_tables:
            own_select.setdefault(role, []).append(table)
    revoke: dict[str, dict[str, list[str]]] = {}
    for role, table, privileges in conn.execute(_OWN_TABLE_WRITES, params):
        revoke.setdefault(role, {})[table] = privileges
    sequences: dict[str, list[str]] = {}
    for role, sequence in conn.execute(_MISSING_SEQUENCE_USAGE, params):
        sequences.setdefault(role, []).append(sequence)
    schema_usage = [row[0] for row in conn.execute(_MISSING_SCHEMA_USAGE, params)]
    defaults = {(role, kind): list(have) for role, kind, have in conn.execute(_DEFAULTS, params)}
    return _statements(tables, own_select, revoke, sequences, schema_usage, defaults,
                       _name(_current_user(conn)))


def _current_user(conn: psycopg.Connection[Any]) -> str:
    row = conn.execute("SELECT current_user").fetchone()
    assert row is not None
    return str(row[0])


def _statements(tables: dict[str, dict[str, list[str]]], own_select: dict[str, list[str]],
                revoke: dict[str, dict[str, list[str]]], sequences: dict[str, list[str]],
                schema_usage: list[str], defaults: dict[tuple[str, str], list[str]],
                owner: str) -> list[str]:
    out = [f"GRANT USAGE ON SCHEMA {_name(SCHEMA)} TO {_name(r)}" for r in schema_usage]
    for role, missing in tables.items():
        out += [f"GRANT {', '.join(p)} ON {_name(SCHEMA)}.{_name(t)} TO {_name(role)}"
                for t, p in missing.items()]
    for role, names in sequences.items():
        out += [f"GRANT USAGE ON SEQUENCE {_name(SCHEMA)}.{_name(s)} TO {_name(role)}"
                for s in names]
    for role, names in own_select.items():
        out += [f"GRANT SELECT ON {_name(SCHEMA)}.{_name(t)} TO {_name(role)}" for t in names]
    for role, found in revoke.items():
        out += [f"REVOKE {', '.join(p)} ON {_name(SCHEMA)}.{_name(t)} FROM {_name(role)}"
                for t, p in found.items()]
    # What earlier versions gave by default is taken back: explicit grants only.
    given = {"r": (TABLE_PRIVILEGES, "TABLES"), "S": (("USAGE",), "SEQUENCES")}
    for (role, kind), have in sorted(defaults.items()):
        if _name(role) == owner:  # the owner's own rights on what it creates stay
            continue
        privileges, objects = given[kind]
        given_now = [p for p in privileges if p in have]
        if given_now:
            out.append(f"ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA {_name(SCHEMA)} "
                       f"REVOKE {', '.join(given_now)} ON {objects} FROM {_name(role)}")
    return out


def apply(conn: psycopg.Connection[Any], settings: Settings, statements: list[str]) -> None:
    """Run `statements` in one transaction, retried while a table is busy."""

    def attempt(lock_timeout_ms: int) -> None:
        with conn.transaction():
            conn.execute("SELECT set_config('lock_timeout', %s, true)", (f"{lock_timeout_ms}ms",))
            for statement in statements:
                conn.execute(statement)

    try:
        with_lock_retries(settings, "granting the API's role(s)", attempt, conn)
        # GRANT without the grant option is only a WARNING ("no privileges were granted"):
        # ask the catalog whether it took.
        left = pending(conn, settings.app_roles)
    except psycopg.errors.InsufficientPrivilege:
        left = statements
    if left:
        raise PermissionDenied(
            f"the migration role could not grant the API's role(s) what they need: "
            f"{'; '.join(left)} (only a table's owner can grant on it)",
            "make the migration role own the tables (`ALTER TABLE <table> OWNER TO "
            f"{_name(_current_user(conn))}`), or grant these by hand as their owner "
            "(docs/troubleshooting.md#18)", statements=left)
    event("grants_applied", f"granted {', '.join(settings.app_roles)} what the API needs "
          f"({len(statements)} statement(s))", roles=list(settings.app_roles),
          statements=statements)
