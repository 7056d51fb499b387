"""Adopting databases that the legacy init.sql built: keep every row, refuse what is unsafe."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from pgtest import LEGACY_INIT_SQL, json_lines, run_migrator, schema_dump, superuser_dsn

from migrator import schema
from migrator.chain import load_chain
from migrator.config import default_migrations_dir
from migrator.localdb import LocalPostgres

CHAIN = load_chain(default_migrations_dir())
TABLES = ("users", "sessions", "bookmarks")

SEED_ROWS = """
INSERT INTO users (id, google_id, email, display_name)
SELECT ('00000000-0000-0000-0000-' || lpad(i::text, 12, '0'))::uuid, 'g' || i,
       'user' || i || '@example.com', CASE WHEN i % 2 = 0 THEN 'User ' || i END
FROM generate_series(1, 50) i;
INSERT INTO sessions (user_id, token, expires_at, user_agent)
SELECT id, 'token-' || google_id, now() + interval '1 day', 'test' FROM users;
INSERT INTO bookmarks (user_id, url, title)
SELECT u.id, 'https://example.com/' || u.google_id || '/' || n, 'n' || n
FROM users u, generate_series(1, 3) n;
"""


def _rows(url: str) -> dict[str, list[tuple[object, ...]]]:
    with psycopg.connect(url) as conn:
        return {t: conn.execute(f"SELECT * FROM {t} ORDER BY id").fetchall() for t in TABLES}


def _counts(url: str) -> dict[str, int]:
    with psycopg.connect(url) as conn:
        return {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]  # type: ignore[index]
                for t in TABLES}


def _sql(url: str, statements: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(statements)  # type: ignore[arg-type]


@pytest.fixture
def seeded_legacy(legacy_database_url: str) -> str:
    _sql(legacy_database_url, SEED_ROWS)
    return legacy_database_url


@pytest.fixture
def fresh_head(pg_server: LocalPostgres) -> Iterator[str]:
    """Another database, built from empty by the migrations: what adoption must equal."""
    admin, name = superuser_dsn(pg_server), f"fresh_head_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    url = superuser_dsn(pg_server, name)
    assert run_migrator("upgrade", env={"DATABASE_URL": url}).returncode == 0
    yield url
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE {name} WITH (FORCE)")


def test_legacy_database_is_adopted_with_every_row(seeded_legacy: str, fresh_head: str) -> None:
    before = _rows(seeded_legacy)
    assert all(before.values())
    result = run_migrator("upgrade", env={"DATABASE_URL": seeded_legacy})
    assert result.returncode == 0, result.stdout
    assert "adopting" in [line["event"] for line in json_lines(result.stdout)]
    assert _rows(seeded_legacy) == before
    # The adopted schema is the very one an empty database gets.
    assert schema_dump(seeded_legacy) == schema_dump(fresh_head)
    assert run_migrator("check", env={"DATABASE_URL": seeded_legacy}).returncode == 0


def test_first_revision_builds_what_init_sql_built(database_url: str,
                                                   legacy_database_url: str) -> None:
    """init.sql is deprecated, and the first revision replaces it exactly."""
    result = run_migrator("upgrade", "0001", env={"DATABASE_URL": database_url})
    assert result.returncode == 0, result.stdout
    with psycopg.connect(database_url, autocommit=True) as ours, \
            psycopg.connect(legacy_database_url, autocommit=True) as legacy:
        mine, theirs = schema.snapshot(ours), schema.snapshot(legacy)
    assert schema.compare(mine, theirs) == []
    assert "DEPRECATED" in LEGACY_INIT_SQL.read_text().splitlines()[0]


def test_missing_indexes_are_built_and_rows_kept(seeded_legacy: str) -> None:
    _sql(seeded_legacy, "DROP INDEX users_email_idx; DROP INDEX bookmarks_user_id_created_at_idx;"
                        "DROP INDEX sessions_expires_at_idx")
    before = _rows(seeded_legacy)
    result = run_migrator("upgrade", env={"DATABASE_URL": seeded_legacy})
    assert result.returncode == 0, result.stdout
    built = " ".join(str(line["message"]) for line in json_lines(result.stdout)
                     if line["event"] == "index_built" and line["revision"] == "0001")
    for name in ("users_email_idx", "bookmarks_user_id_created_at_idx", "sessions_expires_at_idx"):
        assert f"index {name} built concurrently" in built
    with psycopg.connect(seeded_legacy) as conn:
        valid = dict(conn.execute(
            "SELECT c.relname, x.indisvalid FROM pg_index x JOIN pg_class c"
            " ON c.oid = x.indexrelid WHERE c.relname = ANY(%s)",
            (["users_email_idx", "bookmarks_user_id_created_at_idx",
              "sessions_expires_at_idx"],)).fetchall())
    assert valid == dict.fromkeys(valid, True) and len(valid) == 3
    assert _rows(seeded_legacy) == before


def test_missing_table_is_created_beside_existing_ones(legacy_database_url: str) -> None:
    _sql(legacy_database_url, "DROP TABLE bookmarks")
    result = run_migrator("upgrade", env={"DATABASE_URL": legacy_database_url})
    assert result.returncode == 0, result.stdout
    assert run_migrator("check", env={"DATABASE_URL": legacy_database_url}).returncode == 0


def test_extras_are_reported_and_left_alone(seeded_legacy: str) -> None:
    _sql(seeded_legacy, "CREATE TABLE audit_notes (id int); ALTER TABLE users ADD COLUMN "
                        "nickname text; CREATE INDEX users_created_at_idx ON users (created_at)")
    result = run_migrator("upgrade", env={"DATABASE_URL": seeded_legacy})
    assert result.returncode == 0, result.stdout
    warnings = [str(line["message"]) for line in json_lines(result.stdout)
                if line["event"] == "schema_extra"]
    assert any("audit_notes" in w for w in warnings)
    assert any("nickname" in w for w in warnings)
    assert any("users_created_at_idx" in w for w in warnings)
    with psycopg.connect(seeded_legacy) as conn:
        assert conn.execute("SELECT to_regclass('audit_notes')").fetchone() != (None,)
        assert conn.execute("SELECT count(nickname) FROM users").fetchone() == (0,)
    status = json.loads(run_migrator("status", "--json",
                                     env={"DATABASE_URL": seeded_legacy}).stdout)
    assert status["schema_matches"] is True  # extras are not drift


DRIFTS = {
    "email as text": ("ALTER TABLE users ALTER COLUMN email TYPE text", ["users.email"]),
    "nullable expires_at": ("ALTER TABLE sessions ALTER COLUMN expires_at DROP NOT NULL",
                            ["sessions.expires_at"]),
    "lost default": ("ALTER TABLE users ALTER COLUMN created_at DROP DEFAULT",
                     ["users.created_at"]),
    "extra NOT NULL column": ("ALTER TABLE bookmarks ADD COLUMN folder text NOT NULL "
                              "DEFAULT 'x'; ALTER TABLE bookmarks ALTER COLUMN folder "
                              "DROP DEFAULT", ["bookmarks.folder"]),
    "missing unique key": ("ALTER TABLE bookmarks DROP CONSTRAINT unique_user_url",
                           ["bookmarks.unique_user_url"]),
    "foreign key without cascade": (
        "ALTER TABLE sessions DROP CONSTRAINT sessions_user_id_fkey; ALTER TABLE sessions ADD "
        "CONSTRAINT sessions_user_id_fkey FOREIGN KEY (user_id) REFERENCES users(id)",
        ["sessions.sessions_user_id_fkey"]),
    "several at once": ("ALTER TABLE users ALTER COLUMN email TYPE text; ALTER TABLE sessions "
                        "ALTER COLUMN expires_at DROP NOT NULL",
                        ["users.email", "sessions.expires_at"]),
}


@pytest.mark.parametrize("drift", DRIFTS.values(), ids=list(DRIFTS))
def test_drifted_legacy_database_is_refused_untouched(
    seeded_legacy: str, drift: tuple[str, list[str]]
) -> None:
    statements, named = drift
    _sql(seeded_legacy, statements)
    dump, counts = schema_dump(seeded_legacy), _counts(seeded_legacy)
    result = run_migrator("upgrade", "--json", env={"DATABASE_URL": seeded_legacy})
    assert result.returncode == 9, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["error"] == "drift" and report["next_step"]
    for item in named:  # every difference is listed
        assert item in report["message"]
    refused = [d for d in report["differences"] if d["action"] == "refuse"]
    assert len(refused) == len(named)
    assert schema_dump(seeded_legacy) == dump
    assert _counts(seeded_legacy) == counts
