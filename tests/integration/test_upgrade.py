"""Empty database to head, no-op reruns, downgrade and back, offline SQL, bad input."""

from __future__ import annotations

import json
import subprocess

import psycopg
import pytest
from pgtest import (
    TEST_PASSWORD,
    events,
    json_lines,
    run_migrator,
    schema_dump,
)

from migrator import schema
from migrator.chain import load_chain
from migrator.config import default_migrations_dir
from migrator.localdb import bin_dir
from migrator.models import metadata

CHAIN = load_chain(default_migrations_dir())


def _env(url: str) -> dict[str, str]:
    return {"DATABASE_URL": url}


def _current(url: str) -> str | None:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
        return row[0] if row else None


def test_empty_database_reaches_head_and_matches_the_models(database_url: str) -> None:
    result = run_migrator("upgrade", env=_env(database_url))
    assert result.returncode == 0, result.stdout + result.stderr
    assert _current(database_url) == CHAIN.head
    lines = json_lines(result.stdout)
    applied = [line["revision"] for line in lines if line["event"] == "revision_applied"]
    assert applied == CHAIN.ids()
    # The plan of every pending revision is logged before the first one runs.
    order = [(line["event"], line["revision"]) for line in lines
             if line["event"] in ("revision_plan", "revision_started")]
    assert order[: len(CHAIN.ids())] == [("revision_plan", r) for r in CHAIN.ids()]
    assert all(line["revision"] is None for line in lines if line["event"] == "run_finished")
    with psycopg.connect(database_url, autocommit=True) as conn:
        # Not just table names: every column type, default, constraint and index.
        assert schema.compare(schema.snapshot(conn), schema.expected(conn, metadata)) == []
        rows = conn.execute("SELECT revision, checksum, duration_ms >= 0, migrator_version"
                            " FROM yomu_migrate_history ORDER BY revision").fetchall()
    assert [(r[0], r[1]) for r in rows] == [(r.id, r.checksum) for r in CHAIN.revisions]
    assert all(r[2] and r[3] for r in rows)


def test_second_run_is_a_noop_that_says_so(database_url: str) -> None:
    assert run_migrator("upgrade", env=_env(database_url)).returncode == 0
    before = schema_dump(database_url)
    again = run_migrator("upgrade", env=_env(database_url))
    assert again.returncode == 0
    finished = [line for line in json_lines(again.stdout) if line["event"] == "run_finished"]
    assert finished and finished[0]["outcome"] == "noop"
    assert "nothing to do" in str(finished[0]["message"])
    assert "revision_applied" not in events(again)
    assert schema_dump(database_url) == before


def test_check_and_status_follow_the_database(database_url: str) -> None:
    pending = run_migrator("check", "--json", env=_env(database_url))
    assert pending.returncode == 13
    assert json.loads(pending.stdout)["error"] == "not_at_head"
    assert run_migrator("upgrade", env=_env(database_url)).returncode == 0
    status = run_migrator("status", "--json", env=_env(database_url))
    assert status.returncode == 0
    data = json.loads(status.stdout)
    assert data["current"] == CHAIN.head and data["pending"] == []
    assert data["schema_matches"] is True and data["ahead"] == []
    assert data["schema_version"] == len(CHAIN.revisions)
    assert run_migrator("check", env=_env(database_url)).returncode == 0


def test_check_reports_drift_with_its_own_code(database_url: str) -> None:
    assert run_migrator("upgrade", env=_env(database_url)).returncode == 0
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("ALTER TABLE users ALTER COLUMN display_name SET DEFAULT 'anonymous'")
    result = run_migrator("check", "--json", env=_env(database_url))
    assert result.returncode == 9
    assert "display_name" in json.loads(result.stdout)["message"]


def test_status_names_each_difference_in_text_and_json(database_url: str) -> None:
    assert run_migrator("upgrade", env=_env(database_url)).returncode == 0
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("ALTER TABLE users ALTER COLUMN display_name SET DEFAULT 'anonymous'")
    text = run_migrator("status", env={**_env(database_url), "MIGRATOR_LOG_FORMAT": "text"})
    assert text.returncode == 0
    assert "schema: 1 difference(s) from the models: users.display_name: " in text.stdout
    assert "anonymous" in text.stdout
    data = json.loads(run_migrator("status", "--json", env=_env(database_url)).stdout)
    assert data["message"].count("users.display_name: ") == 1 and "anonymous" in data["message"]
    assert [(d["table"], d["item"]) for d in data["differences"]] == [("users", "display_name")]


def test_downgrade_to_base_and_back_up_on_an_empty_database(database_url: str) -> None:
    assert run_migrator("upgrade", env=_env(database_url)).returncode == 0
    down = run_migrator("downgrade", "base", env=_env(database_url))
    assert down.returncode == 0, down.stdout
    with psycopg.connect(database_url) as conn:
        tables = {r[0] for r in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
        recorded = conn.execute("SELECT count(*) FROM yomu_migrate_history").fetchone()
    assert tables.isdisjoint({"users", "sessions", "bookmarks"})
    assert recorded == (0,)
    assert _current(database_url) is None
    up = run_migrator("upgrade", env=_env(database_url))
    assert up.returncode == 0 and _current(database_url) == CHAIN.head


def test_downgrade_to_base_refuses_rows_unless_forced(database_url: str) -> None:
    assert run_migrator("upgrade", env=_env(database_url)).returncode == 0
    with psycopg.connect(database_url) as conn:
        conn.execute("INSERT INTO users (google_id, email) VALUES ('g1', 'a@example.com')")
    refused = run_migrator("downgrade", "base", env=_env(database_url))
    assert refused.returncode == 15
    assert _current(database_url) == CHAIN.head
    forced = run_migrator("downgrade", "base", "--force", env=_env(database_url))
    assert forced.returncode == 0
    assert _current(database_url) is None


def test_downgrade_needs_an_explicit_target(database_url: str) -> None:
    result = run_migrator("downgrade", env=_env(database_url))
    assert result.returncode == 2
    assert "revision" in result.stderr


def test_offline_sql_runs_on_an_empty_database(database_url: str) -> None:
    result = run_migrator("upgrade", "--sql")  # no DATABASE_URL needed
    assert result.returncode == 0, result.stderr
    assert "CREATE TABLE users" in result.stdout
    psql = subprocess.run(
        [str(bin_dir() / "psql"), "-v", "ON_ERROR_STOP=1", "-q", database_url],
        input=result.stdout, capture_output=True, text=True, check=False,
    )
    assert psql.returncode == 0, psql.stderr
    with psycopg.connect(database_url, autocommit=True) as conn:
        assert schema.compare(schema.snapshot(conn), schema.expected(conn, metadata)) == []
    assert _current(database_url) == CHAIN.head


def test_sql_for_a_legacy_database_is_what_adoption_will_run(legacy_database_url: str) -> None:
    """Run by hand with psql, it adopts the legacy tables instead of failing on them."""
    with psycopg.connect(legacy_database_url, autocommit=True) as conn:
        conn.execute("DROP INDEX sessions_expires_at_idx")
    result = run_migrator("upgrade", "--sql", env=_env(legacy_database_url))
    assert result.returncode == 0, result.stderr
    assert "CREATE TABLE users" not in result.stdout and "(at base)" in result.stdout
    assert "adopting the existing tables" in result.stdout
    psql = subprocess.run(
        [str(bin_dir() / "psql"), "-v", "ON_ERROR_STOP=1", "-q", legacy_database_url],
        input=result.stdout, capture_output=True, text=True, check=False,
    )
    assert psql.returncode == 0, psql.stderr
    assert _current(legacy_database_url) == CHAIN.head
    with psycopg.connect(legacy_database_url, autocommit=True) as conn:
        assert schema.matches(schema.verify(conn, metadata))


def test_sql_from_where_the_database_stands_and_nothing_at_head(database_url: str) -> None:
    assert run_migrator("upgrade", "0001", env=_env(database_url)).returncode == 0
    result = run_migrator("upgrade", "--sql", env=_env(database_url))
    assert result.returncode == 0, result.stderr
    assert "0001 -> 0002" in result.stdout and "CREATE TABLE" not in result.stdout
    assert "INVALID" not in result.stdout  # it asked the database: no leftover to drop
    assert run_migrator("upgrade", env=_env(database_url)).returncode == 0
    again = run_migrator("upgrade", "--sql", env=_env(database_url))
    assert again.returncode == 0 and "nothing to run" in again.stdout


def test_sql_renders_the_guarded_drop_only_for_an_invalid_leftover(database_url: str) -> None:
    assert run_migrator("upgrade", "0001", env=_env(database_url)).returncode == 0
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("CREATE INDEX sessions_user_id_expires_at_idx ON sessions (user_id, "
                     "expires_at)")
        conn.execute("UPDATE pg_index SET indisvalid = false WHERE indexrelid = "
                     "'sessions_user_id_expires_at_idx'::regclass")
    result = run_migrator("upgrade", "--sql", env=_env(database_url))
    assert 'DROP INDEX CONCURRENTLY IF EXISTS "sessions_user_id_expires_at_idx";' in result.stdout
    offline = run_migrator("upgrade", "--sql", "--offline", env=_env(database_url)).stdout
    drops = [line for line in offline.splitlines() if "DROP INDEX" in line]
    assert drops and all(line.startswith("/*") for line in drops)  # a note, never a statement


@pytest.mark.parametrize("written", ["0002:0001", "0001:0001", ":0002", "0001:nope"])
def test_bad_sql_ranges_are_errors(written: str) -> None:
    result = run_migrator("upgrade", "--sql", written, "--json")
    assert result.returncode in (2, 11), result.stdout + result.stderr
    assert result.stdout.strip() and json.loads(result.stdout)["outcome"] == "failure"


def test_status_of_a_legacy_database_says_it_is_not_adopted_yet(legacy_database_url: str) -> None:
    result = run_migrator("status", "--json", env=_env(legacy_database_url))
    report = json.loads(result.stdout)
    assert report["legacy_tables"] == ["users", "sessions", "bookmarks"]
    assert "base (empty)" not in report["message"] and "adopts it" in report["message"]


@pytest.mark.parametrize(
    ("env", "code", "says"),
    [
        ({}, 3, "DATABASE_URL is not set"),
        ({"DATABASE_URL": "mysql://u:p@h/db"}, 3, "must start with postgresql://"),
        ({"DATABASE_URL": f"postgresql://u:{TEST_PASSWORD}@h:99999/db"}, 3, "invalid port"),
        ({"DATABASE_URL": "postgresql://u@h/db", "MIGRATOR_LOCK_WAIT": "soon"}, 3,
         "MIGRATOR_LOCK_WAIT"),
    ],
)
def test_bad_configuration_is_one_clear_line(env: dict[str, str], code: int, says: str) -> None:
    result = run_migrator("upgrade", env=env)
    assert result.returncode == code
    assert result.stdout == ""  # errors go to stderr
    lines = json_lines(result.stderr)
    assert [line["event"] for line in lines] == ["run_failed"]
    assert says in str(lines[0]["message"]) and lines[0]["next_step"]
    assert "Traceback" not in result.stdout + result.stderr
    assert TEST_PASSWORD not in result.stdout + result.stderr


def test_unknown_target_revision(database_url: str) -> None:
    result = run_migrator("upgrade", "9999", env=_env(database_url))
    assert result.returncode == 11
    assert "unknown revision '9999'" in result.stderr


def test_migration_database_url_wins(database_url: str) -> None:
    result = run_migrator("upgrade", env={
        "DATABASE_URL": "postgresql://app:wrong@127.0.0.1:1/none",
        "MIGRATION_DATABASE_URL": database_url,
    })
    assert result.returncode == 0, result.stdout
    assert _current(database_url) == CHAIN.head


def test_connections_name_the_migrator(database_url: str) -> None:
    """application_name shows up in pg_stat_activity for whoever looks during a run."""
    from migrator.db import APPLICATION_NAME

    assert APPLICATION_NAME.startswith("yomu-migrate/")
    result = run_migrator("upgrade", env=_env(database_url))
    started = next(line for line in json_lines(result.stdout) if line["event"] == "run_started")
    assert started["version"] and started["settings"]
    assert TEST_PASSWORD not in result.stdout
