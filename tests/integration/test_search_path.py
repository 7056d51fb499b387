"""search_path cannot move the migrator's tables, nor answer its reads with another schema's.

PostgreSQL's default search_path is `"$user", public`: once a schema named after a role
exists, that role's unqualified CREATE TABLE lands there, and its unqualified reads find
that schema's tables first. Every migrator session pins search_path to public, and our own
reads name public, so neither the owner's nor the app role's schema changes anything."""

from __future__ import annotations

import psycopg
from pgtest import REPO_HEAD, Roles, records, run_migrator


def _admin(roles: Roles, *statements: str) -> None:
    with psycopg.connect(roles.admin_url, autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement)


def _tables_in(roles: Roles, schema: str) -> list[str]:
    with psycopg.connect(roles.admin_url) as conn:
        return [r[0] for r in conn.execute(
            "SELECT relname FROM pg_class WHERE relnamespace = to_regnamespace(%s)"
            " AND relkind = 'r' ORDER BY 1", (schema,))]


def test_a_schema_named_after_the_owner_does_not_take_the_tables(roles: Roles) -> None:
    _admin(roles, f'CREATE SCHEMA "{roles.owner}" AUTHORIZATION "{roles.owner}"')
    result = run_migrator("upgrade", env=roles.env())
    assert result.returncode == 0, result.stdout + result.stderr
    finished = [r for r in records(result) if r["event"] == "run_finished"][-1]
    assert finished["message"].startswith(f"upgraded to {REPO_HEAD}: "), finished
    assert _tables_in(roles, roles.owner) == []
    assert {"users", "sessions", "bookmarks", "alembic_version"} <= set(
        _tables_in(roles, "public"))
    # Verification ran against what was built (no exit 17, nothing skipped), and the app's
    # check agrees.
    assert run_migrator("check", env=roles.app_env()).returncode == 0
    rerun = run_migrator("upgrade", env=roles.env())
    assert rerun.returncode == 0 and "nothing to do" in rerun.stdout, rerun.stdout


def test_a_decoy_empty_table_in_the_owners_schema_does_not_pass_the_row_guard(
        roles: Roles) -> None:
    assert run_migrator("upgrade", env=roles.env()).returncode == 0
    _admin(roles, "INSERT INTO public.users (google_id, email) VALUES "
                  "('g-kept', 'kept@example.test')",
           f'CREATE SCHEMA "{roles.owner}" AUTHORIZATION "{roles.owner}"',
           f'CREATE TABLE "{roles.owner}".users (id int)',
           f'ALTER TABLE "{roles.owner}".users OWNER TO "{roles.owner}"')
    result = run_migrator("downgrade", "base", env=roles.env())
    assert result.returncode == 15, result.stdout + result.stderr
    with psycopg.connect(roles.admin_url) as conn:
        assert conn.execute("SELECT version_num FROM public.alembic_version").fetchone() == (
            REPO_HEAD,)
        assert conn.execute("SELECT count(*) FROM public.users").fetchone() == (1,)


def test_an_alembic_version_in_the_app_roles_schema_is_not_read(roles: Roles) -> None:
    assert run_migrator("upgrade", env=roles.env()).returncode == 0
    _admin(roles, f'CREATE SCHEMA "{roles.app}" AUTHORIZATION "{roles.app}"',
           f'CREATE TABLE "{roles.app}".alembic_version (version_num varchar(32))',
           f"INSERT INTO \"{roles.app}\".alembic_version VALUES ('ffffdecoy')",
           f'ALTER TABLE "{roles.app}".alembic_version OWNER TO "{roles.app}"')
    for verb in ("check", "status"):
        result = run_migrator(verb, env=roles.app_env())
        assert result.returncode == 0, (verb, result.stdout + result.stderr)
        assert "ffffdecoy" not in result.stdout + result.stderr
