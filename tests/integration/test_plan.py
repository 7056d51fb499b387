"""`migrator plan` against real databases: pending relative to the database, else from base."""

from __future__ import annotations

import json
import time
from typing import Any

import psycopg
from pgtest import TEST_PASSWORD, run_migrator

from migrator.chain import load_chain
from migrator.config import default_migrations_dir
from migrator.localdb import free_port

CHAIN = load_chain(default_migrations_dir())


def _plan(*args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    result = run_migrator("plan", "--json", *args, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert TEST_PASSWORD not in result.stdout + result.stderr
    doc: dict[str, Any] = json.loads(result.stdout)
    return doc


def test_plan_lists_only_what_the_database_lacks(database_url: str) -> None:
    assert run_migrator("upgrade", "0001", env={"DATABASE_URL": database_url}).returncode == 0
    doc = _plan(env={"DATABASE_URL": database_url})
    assert doc["source"].startswith("database postgresql://postgres:***@")
    assert (doc["current"], doc["head"], doc["pending"]) == ("0001", CHAIN.head, CHAIN.ids()[1:])
    second = doc["revisions"][0]
    assert second["revision"] == "0002" and second["risk"] == "low"
    kinds = [(s["kind"], s["lock"], s["outside_transaction"]) for s in second["statements"]]
    assert ("CREATE INDEX CONCURRENTLY", "SHARE UPDATE EXCLUSIVE", True) in kinds
    assert kinds[-1] == ("ALEMBIC VERSION STAMP", "ROW EXCLUSIVE", False)


def test_plan_at_head_is_empty(database_url: str) -> None:
    assert run_migrator("upgrade", env={"DATABASE_URL": database_url}).returncode == 0
    doc = _plan(env={"DATABASE_URL": database_url})
    assert doc["pending"] == [] and doc["revisions"] == []
    assert doc["summary"]["statements"] == 0


def test_plan_of_an_empty_database_is_the_whole_chain(database_url: str) -> None:
    doc = _plan(env={"DATABASE_URL": database_url})
    assert doc["current"] is None
    assert [r["revision"] for r in doc["revisions"]] == CHAIN.ids()


def test_unreachable_database_falls_back_to_the_offline_plan() -> None:
    url = f"postgresql://app:{TEST_PASSWORD}@127.0.0.1:{free_port()}/yomu"
    doc = _plan("--connect-timeout", "1", env={"DATABASE_URL": url})
    assert doc["source"].startswith("offline") and "unreachable" in doc["source"]
    assert doc["pending"] == CHAIN.ids()


def test_offline_flag_does_not_touch_the_database() -> None:
    url = f"postgresql://app:{TEST_PASSWORD}@127.0.0.1:{free_port()}/yomu"
    started = time.monotonic()
    doc = _plan("--offline", env={"DATABASE_URL": url})
    assert time.monotonic() - started < 10  # no connection retries
    assert doc["source"] == "offline: every revision from base"
    assert [r["revision"] for r in doc["revisions"]] == CHAIN.ids()


def test_text_plan_is_the_only_thing_on_stdout(database_url: str) -> None:
    result = run_migrator("plan", env={"DATABASE_URL": database_url})
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"plan: {len(CHAIN.ids())} revision(s) to apply")
    assert not any(line.startswith("{") for line in lines)  # the JSON logs went to stderr
    assert any("CREATE INDEX CONCURRENTLY" in line for line in lines)
    assert '"event": "run_finished"' in result.stderr


def test_plan_of_a_legacy_database_shows_adoption_not_the_empty_database_ddl(
        legacy_database_url: str) -> None:
    with psycopg.connect(legacy_database_url, autocommit=True) as conn:
        conn.execute("DROP INDEX users_email_idx")
    doc = _plan(env={"DATABASE_URL": legacy_database_url})
    first = doc["revisions"][0]
    kinds = [s["kind"] for s in first["statements"]]
    assert "CREATE TABLE" not in kinds  # the tables exist: nothing would create them
    assert kinds.count("CREATE INDEX CONCURRENTLY") == 1  # only the missing index
    assert any("adopting the existing tables users, bookmarks, sessions" in n
               for n in first["notes"])
    text = run_migrator("plan", env={"DATABASE_URL": legacy_database_url}).stdout
    assert "note: adopting the existing tables" in text


def test_plan_of_a_drifted_legacy_database_says_the_revision_will_be_refused(
        legacy_database_url: str) -> None:
    with psycopg.connect(legacy_database_url, autocommit=True) as conn:
        conn.execute("ALTER TABLE users ALTER COLUMN email TYPE text")
    doc = _plan(env={"DATABASE_URL": legacy_database_url})
    error = doc["revisions"][0]["error"]
    assert error.startswith("will fail with exit 9 (drift)") and "users.email" in error


def test_offline_plan_keeps_the_conditional_drop_a_note() -> None:
    doc = _plan("--offline")
    second = doc["revisions"][1]
    assert second["statements"][0]["kind"] == "CREATE INDEX CONCURRENTLY"
    assert not any(s["kind"].startswith("DROP INDEX") for s in second["statements"])
    assert any("only if an earlier failed build left" in n for n in second["notes"])
