"""migrator.online as revision authors use it, and the SQL it shows for review.

`create_index` takes SQL columns, `unique` and `where`; `drop_index` is the contract step;
neither may leave the revision's session with the build's long lock_timeout. `upgrade
--sql` against a live database shows what will run there: nothing for an index that is
already built and valid.
"""

from __future__ import annotations

from pathlib import Path

import psycopg
from pgtest import json_lines, run_migrator

from bench.chain import copy_migrations, fresh_id, write_revision

NAME = 'sessions "live" idx'  # a name that needs quoting, quotes included


def _indexes(url: str) -> dict[str, tuple[bool, str]]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT c.relname, x.indisvalid, pg_get_indexdef(x.indexrelid) FROM pg_index x "
            "JOIN pg_class c ON c.oid = x.indexrelid WHERE c.relname LIKE 'sessions%'").fetchall()
    return {name: (valid, definition) for name, valid, definition in rows}


def test_create_index_with_unique_and_where_then_drop_index(database_url: str,
                                                            tmp_path: Path) -> None:
    migrations = copy_migrations(tmp_path)
    build = fresh_id(migrations)
    write_revision(migrations, build, f"""
online.create_index({NAME!r}, "sessions", ["user_id", "expires_at DESC"], unique=True,
                    where="user_agent IS NOT NULL")
op.execute("CREATE TABLE after_build AS SELECT current_setting('lock_timeout') AS lt")
""")
    write_revision(migrations, fresh_id(migrations), f"""
online.drop_index({NAME!r})
online.drop_index("sessions_no_such_idx")
""")
    env = {"DATABASE_URL": database_url, "MIGRATOR_MIGRATIONS_DIR": str(migrations)}
    built = run_migrator("upgrade", build, env=env)
    assert built.returncode == 0, built.stdout + built.stderr
    assert [line["message"] for line in json_lines(built.stdout) if line["event"] ==
            "index_built" and line["revision"] == build] == [f"index {NAME} built concurrently"]
    valid, definition = _indexes(database_url)[NAME]
    assert valid
    assert definition.startswith(f'CREATE UNIQUE INDEX "{NAME.replace(chr(34), chr(34) * 2)}" '
                                 "ON public.sessions USING btree (user_id, expires_at DESC) "
                                 "WHERE (user_agent IS NOT NULL)"), definition
    with psycopg.connect(database_url) as conn:  # the revision's session got its own back
        assert conn.execute("SELECT lt FROM after_build").fetchone() == ("100ms",)

    dropped = run_migrator("upgrade", env=env)
    assert dropped.returncode == 0, dropped.stdout + dropped.stderr
    assert NAME not in _indexes(database_url)


def test_sql_for_an_index_already_built_builds_nothing(database_url: str) -> None:
    env = {"DATABASE_URL": database_url}
    assert run_migrator("upgrade", "0001", env=env).returncode == 0
    with psycopg.connect(database_url, autocommit=True) as conn:  # built by hand, valid
        conn.execute("CREATE INDEX sessions_user_id_expires_at_idx ON sessions (user_id, "
                     "expires_at)")
    result = run_migrator("upgrade", "--sql", env=env)
    assert result.returncode == 0, result.stderr
    assert "/* index sessions_user_id_expires_at_idx exists and is valid: nothing to build */;" \
        in result.stdout.splitlines()
    # Nothing else about it (later revisions of the chain may build indexes of their own).
    assert [line for line in result.stdout.splitlines()
            if "sessions_user_id_expires_at_idx" in line] == [
        "/* index sessions_user_id_expires_at_idx exists and is valid: nothing to build */;"]
