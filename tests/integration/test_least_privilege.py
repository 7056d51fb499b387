"""Production's roles: the owner migrates, the API's role gets exactly what the API needs.

The app role of the `roles` fixture can create nothing (no CREATE on the schema, no TEMP),
as a least-privilege role in production; every verb is run as each role, as the hook Job
and the API's init container run them.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import psycopg
import pytest
from pgtest import Roles, add_revision, copy_migrations, events, json_lines, run_migrator

from migrator.grants import APP_TABLES, OWN_TABLE_WRITES, TABLE_PRIVILEGES
from migrator.history import OWN_TABLES
from migrator.models import metadata

EVERY_PRIVILEGE = ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER")


def _privileges(url: str, role: str, table: str) -> set[str]:
    with psycopg.connect(url) as conn:
        return {p for p in EVERY_PRIVILEGE if conn.execute(
            "SELECT has_table_privilege(%s, %s, %s)", (role, f"public.{table}", p)).fetchone()
            == (True,)}


def _as_json(result: object) -> dict[str, object]:
    stdout = result.stdout  # type: ignore[attr-defined]
    return json.loads(stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


@pytest.fixture
def migrated(roles: Roles) -> Roles:
    result = run_migrator("upgrade", env=roles.env())
    assert result.returncode == 0, result.stdout + result.stderr
    assert "grants_applied" in events(result)
    return roles


def test_app_tables_are_the_models_tables() -> None:
    assert set(APP_TABLES) == {table.name for table in metadata.sorted_tables}


def test_the_app_role_gets_exactly_what_the_api_needs(migrated: Roles) -> None:
    for table in APP_TABLES:
        assert _privileges(migrated.admin_url, migrated.app, table) == set(TABLE_PRIVILEGES)
    for table in OWN_TABLES:
        assert _privileges(migrated.admin_url, migrated.app, table) == {"SELECT"}
    with psycopg.connect(migrated.app_url) as conn:  # as the API uses it
        conn.execute("INSERT INTO users (google_id, email) VALUES ('g1', 'a@example.com')")
        conn.execute("UPDATE users SET display_name = 'A' WHERE google_id = 'g1'")
        assert conn.execute("SELECT count(*) FROM users").fetchone() == (1,)
        conn.execute("DELETE FROM users")
        conn.commit()
        for statement in ("INSERT INTO alembic_version VALUES ('x')",
                          "DELETE FROM yomu_migrate_history", "CREATE TABLE t (id int)",
                          "CREATE TEMP TABLE t (id int)"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)
            conn.rollback()


def test_every_reading_verb_works_as_the_app_role(migrated: Roles) -> None:
    for verb in (["check"], ["status", "--json"], ["history"], ["plan", "--json"],
                 ["upgrade", "--sql"]):
        result = run_migrator(*verb, env=migrated.app_env())
        assert result.returncode == 0, (verb, result.stdout + result.stderr)
    status = _as_json(run_migrator("status", "--json", env=migrated.app_env()))
    assert status["schema_matches"] is True and status["pending"] == []


def test_a_second_run_grants_nothing_and_is_a_noop(migrated: Roles) -> None:
    again = run_migrator("upgrade", "--json", env=migrated.env())
    assert again.returncode == 0
    assert _as_json(again)["outcome"] == "noop"
    assert "grants_applied" not in [line["event"] for line in json_lines(again.stderr)]
    assert "lock_acquired" not in [line["event"] for line in json_lines(again.stderr)]


def test_a_revoked_grant_returns_and_writes_on_our_tables_go(migrated: Roles) -> None:
    with psycopg.connect(migrated.admin_url, autocommit=True) as conn:
        conn.execute(f'REVOKE DELETE ON bookmarks FROM "{migrated.app}"')
        conn.execute(f'GRANT INSERT, TRUNCATE ON alembic_version TO "{migrated.app}"')
    result = run_migrator("upgrade", "--json", env=migrated.env())
    assert result.returncode == 0, result.stdout + result.stderr
    report = _as_json(result)
    assert report["outcome"] == "success" and report["applied_now"] == []
    assert any("DELETE" in g and "bookmarks" in g for g in report["granted"])  # type: ignore[attr-defined]
    assert any(g.startswith("REVOKE INSERT, TRUNCATE") for g in report["granted"])  # type: ignore[attr-defined]
    assert _privileges(migrated.admin_url, migrated.app, "bookmarks") == set(TABLE_PRIVILEGES)
    assert not _privileges(migrated.admin_url, migrated.app, "alembic_version") & set(
        OWN_TABLE_WRITES)


def test_a_table_a_revision_keeps_from_the_app_gets_no_privileges(
        migrated: Roles, tmp_path: Path) -> None:
    """No ALTER DEFAULT PRIVILEGES: only the models' tables are granted, each by name."""
    migrations = copy_migrations(tmp_path)
    rev = f"t{uuid.uuid4().hex[:10]}"
    add_revision(migrations, rev, ["CREATE TABLE audit_secrets (id int)"],
                 ["DROP TABLE audit_secrets"])
    result = run_migrator("upgrade", env=migrated.env(MIGRATOR_MIGRATIONS_DIR=str(migrations)))
    assert result.returncode == 0, result.stdout + result.stderr
    assert _privileges(migrated.admin_url, migrated.app, "audit_secrets") == set()
    with psycopg.connect(migrated.admin_url) as conn:
        assert conn.execute("SELECT count(*) FROM pg_default_acl").fetchone() == (0,)


def test_revisions_that_commit_before_a_grant_fails_are_named_in_the_exit_18(
        migrated: Roles, tmp_path: Path) -> None:
    """The revision commits, then a grant cannot be made: exit 18 says what committed."""
    with psycopg.connect(migrated.admin_url, autocommit=True) as conn:
        conn.execute(f'REVOKE DELETE ON bookmarks FROM "{migrated.app}"')
        conn.execute("ALTER TABLE bookmarks OWNER TO postgres")  # by hand, by a DBA
    migrations = copy_migrations(tmp_path)
    rev = f"t{uuid.uuid4().hex[:10]}"
    add_revision(migrations, rev, ["CREATE TABLE kept_notes (id int)"])
    result = run_migrator("upgrade", "--json",
                          env=migrated.env(MIGRATOR_MIGRATIONS_DIR=str(migrations)))
    assert result.returncode == 18, result.stdout + result.stderr
    report = _as_json(result)
    assert f"applied {rev} and committed (the database is at {rev}); then " in \
        report["message"], report
    assert "the revisions stay applied" in str(report["next_step"]), report
    assert report["applied_now"] == [rev]


def test_an_app_role_that_does_not_exist_is_refused_before_anything_changes(
        roles: Roles) -> None:
    result = run_migrator("upgrade", "--json", env=roles.env(MIGRATOR_APP_ROLE="no_such_role"))
    assert result.returncode == 3, result.stdout + result.stderr
    report = _as_json(result)
    assert "no_such_role" in report["message"] and "CREATE ROLE" in report["next_step"]
    with psycopg.connect(roles.admin_url) as conn:
        assert conn.execute("SELECT to_regclass('alembic_version')").fetchone() == (None,)


def test_without_grants_the_app_role_is_told_which_grant_is_missing(roles: Roles) -> None:
    env = roles.env()
    del env["MIGRATOR_APP_ROLE"]
    assert run_migrator("upgrade", env=env).returncode == 0
    result = run_migrator("check", "--json", "--wait", "3", env=roles.app_env())
    assert result.returncode == 18, result.stdout + result.stderr  # not retried: no wait
    report = _as_json(result)
    assert report["error"] == "permission"
    assert "GRANT SELECT ON TABLE" in report["next_step"] and roles.app in report["next_step"]
    assert "MIGRATOR_APP_ROLE" in report["next_step"]


def test_the_app_role_cannot_migrate_and_is_told_why(roles: Roles) -> None:
    result = run_migrator("upgrade", "--json", env=roles.app_env())
    assert result.returncode == 18, result.stdout + result.stderr
    report = _as_json(result)
    assert "GRANT CREATE ON SCHEMA public" in report["next_step"]
    with psycopg.connect(roles.admin_url) as conn:
        assert conn.execute("SELECT to_regclass('users')").fetchone() == (None,)


def test_downgrade_as_the_app_role_names_the_owner(migrated: Roles) -> None:
    result = run_migrator("downgrade", "0001", "--json", env=migrated.app_env())
    assert result.returncode == 18, result.stdout + result.stderr
    assert "owner" in _as_json(result)["next_step"]


def test_a_revision_refused_a_privilege_exits_18_and_changes_nothing(
        migrated: Roles, tmp_path: Path) -> None:
    with psycopg.connect(migrated.admin_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE dba_owned (id int)")  # by a superuser, by hand
    migrations = copy_migrations(tmp_path)
    add_revision(migrations, "x9001", ["ALTER TABLE users ADD COLUMN nickname text",
                                      "ALTER TABLE dba_owned ADD COLUMN note text"])
    result = run_migrator("upgrade", "--json",
                          env=migrated.env(MIGRATOR_MIGRATIONS_DIR=str(migrations)))
    assert result.returncode == 18, result.stdout + result.stderr
    report = _as_json(result)
    assert report["revision"] == "x9001"
    assert f"ALTER TABLE dba_owned OWNER TO {migrated.owner}" in report["next_step"]
    with psycopg.connect(migrated.admin_url) as conn:  # rolled back as a whole
        assert conn.execute("SELECT count(*) FROM information_schema.columns WHERE "
                            "table_name = 'users' AND column_name = 'nickname'").fetchone() == (0,)


def test_plan_shows_the_grants_a_run_will_make(roles: Roles) -> None:
    before = _as_json(run_migrator("plan", "--json", env=roles.env()))
    assert f'GRANT SELECT, INSERT, UPDATE, DELETE ON "public"."users" TO "{roles.app}"' in \
        before["grants"]  # type: ignore[operator]
    text = run_migrator("plan", env=roles.env(MIGRATOR_LOG_FORMAT="text")).stdout
    assert "grants for the API's role(s)" in text and "ALTER DEFAULT PRIVILEGES" not in text
    assert run_migrator("upgrade", env=roles.env()).returncode == 0
    assert _as_json(run_migrator("plan", "--json", env=roles.env()))["grants"] == []


def test_naming_the_owner_as_the_app_role_never_takes_its_own_rights(roles: Roles) -> None:
    """A single-role setup (dev) may name the owner: nothing is granted or revoked."""
    env = roles.env(MIGRATOR_APP_ROLE=roles.owner)
    assert run_migrator("upgrade", env=env).returncode == 0
    with psycopg.connect(roles.admin_url, autocommit=True) as conn:  # relacl non-empty now
        conn.execute(f'GRANT SELECT ON alembic_version TO "{roles.app}"')
    again = run_migrator("upgrade", "--json", env=env)
    assert again.returncode == 0, again.stdout + again.stderr
    assert _as_json(again)["outcome"] == "noop"
    for table in OWN_TABLES:
        assert set(OWN_TABLE_WRITES) <= _privileges(roles.admin_url, roles.owner, table)


@pytest.mark.parametrize("owner_may", ["nothing", "SELECT"])
def test_a_grant_that_does_not_take_is_exit_18_not_a_silent_success(
        migrated: Roles, owner_may: str) -> None:
    """A non-owner's GRANT fails (no privilege) or only warns (no grant option): either
    way the run checks that its grants took."""
    with psycopg.connect(migrated.admin_url, autocommit=True) as conn:
        conn.execute(f'REVOKE DELETE ON bookmarks FROM "{migrated.app}"')
        conn.execute("ALTER TABLE bookmarks OWNER TO postgres")  # by hand, by a DBA
        if owner_may != "nothing":
            conn.execute(f'GRANT {owner_may} ON bookmarks TO "{migrated.owner}"')
    result = run_migrator("upgrade", "--json", env=migrated.env())
    assert result.returncode == 18, result.stdout + result.stderr
    report = _as_json(result)
    assert "bookmarks" in report["message"]
    assert f'ALTER TABLE <table> OWNER TO "{migrated.owner}"' in report["next_step"]
