"""What adoption says while it works, and the SQL it shows for a legacy database.

On-call reads these lines: the tables it adopts, each extra it leaves alone (logged by the
first revision itself), each index it builds, and, when it refuses, how many differences
there are and every one of them, in one line.
"""

from __future__ import annotations

import json
import subprocess

import psycopg
from pgtest import json_lines, run_migrator

from migrator.localdb import bin_dir


def _sql(url: str, statements: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(statements)  # type: ignore[arg-type]


def test_adoption_names_what_it_keeps_builds_and_leaves_alone(legacy_database_url: str) -> None:
    _sql(legacy_database_url, "DROP INDEX users_email_idx; ALTER TABLE users ADD COLUMN "
                              "nickname text; CREATE TABLE audit_notes (id int)")
    result = run_migrator("upgrade", env={"DATABASE_URL": legacy_database_url})
    assert result.returncode == 0, result.stdout + result.stderr
    first = [line for line in json_lines(result.stdout) if line["revision"] == "0001"]
    assert sorted(str(line["message"]) for line in first if line["event"] == "schema_extra") \
        == ["audit_notes: extra table the models do not know: left alone",
            "users.nickname: extra column the models do not know: left alone"]
    adopting = next(line for line in first if line["event"] == "adopting")
    assert adopting["message"] == "adopting existing tables: users, bookmarks, sessions"
    assert adopting["tables"] == ["users", "bookmarks", "sessions"]
    assert [line["message"] for line in first if line["event"] == "index_built"] == [
        "index users_email_idx built concurrently"]
    assert "table_created" not in [line["event"] for line in first]


def test_a_missing_table_is_created_and_said_so(legacy_database_url: str) -> None:
    _sql(legacy_database_url, "DROP TABLE bookmarks")
    result = run_migrator("upgrade", env={"DATABASE_URL": legacy_database_url})
    assert result.returncode == 0, result.stdout + result.stderr
    created = [line for line in json_lines(result.stdout) if line["event"] == "table_created"]
    assert [(line["message"], line["table"]) for line in created] == [
        ("created table bookmarks", "bookmarks")]


def test_refusal_counts_and_lists_every_difference(legacy_database_url: str) -> None:
    _sql(legacy_database_url, "ALTER TABLE users ALTER COLUMN email TYPE text; ALTER TABLE "
                              "sessions ALTER COLUMN expires_at DROP NOT NULL")
    result = run_migrator("upgrade", "--json", env={"DATABASE_URL": legacy_database_url})
    assert result.returncode == 9, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["message"] == (
        "the existing schema cannot be adopted safely (2 difference(s)): users.email: column "
        "email is text, the models say character varying(255); sessions.expires_at: column "
        "expires_at is nullable, the models say NOT NULL")


def test_sql_for_a_legacy_database_without_a_table_creates_only_that(
        legacy_database_url: str) -> None:
    _sql(legacy_database_url, "DROP TABLE bookmarks; ALTER TABLE users ADD COLUMN nickname text")
    result = run_migrator("upgrade", "--sql", env={"DATABASE_URL": legacy_database_url})
    assert result.returncode == 0, result.stderr
    sql = result.stdout
    assert "CREATE TABLE bookmarks" in sql and "CREATE INDEX bookmarks_user_id_created_at_idx" \
        in sql
    assert "CREATE TABLE users" not in sql and "CREATE TABLE sessions" not in sql
    assert "nickname" not in sql  # an extra is left alone, and not even mentioned in the SQL
    assert "/* adopting the existing tables users, sessions: kept as they are" in sql
    psql = subprocess.run(
        [str(bin_dir() / "psql"), "-v", "ON_ERROR_STOP=1", "-q", legacy_database_url],
        input=sql, capture_output=True, text=True, check=False)
    assert psql.returncode == 0, psql.stderr
    check = run_migrator("check", env={"DATABASE_URL": legacy_database_url})
    assert check.returncode == 0, check.stdout


def test_an_invalid_index_left_on_a_legacy_database_is_rebuilt(legacy_database_url: str) -> None:
    """A concurrent build that failed before the migrator existed left users_email_idx
    INVALID: adoption drops and rebuilds it, instead of taking it for done."""
    _sql(legacy_database_url, "UPDATE pg_index SET indisvalid = false WHERE indexrelid = "
                              "'users_email_idx'::regclass")
    result = run_migrator("upgrade", env={"DATABASE_URL": legacy_database_url})
    assert result.returncode == 0, result.stdout + result.stderr
    first = [line for line in json_lines(result.stdout) if line["revision"] == "0001"]
    assert [line["event"] for line in first if str(line["event"]).startswith("index_")] == [
        "index_rebuild", "index_built"]
    with psycopg.connect(legacy_database_url) as conn:
        assert conn.execute("SELECT indisvalid FROM pg_index WHERE indexrelid = "
                            "'users_email_idx'::regclass").fetchone() == (True,)
