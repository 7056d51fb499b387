"""A failed CREATE INDEX CONCURRENTLY leaves an INVALID index behind, which
`CREATE INDEX ... IF NOT EXISTS` would take for done. The next run must rebuild it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from faultkit import Migrator, add_revision, current, migrator_env, sql

INDEX = "users_fault_email_uq"


def _valid(url: str) -> list[bool]:
    return [r[0] for r in sql(url, "SELECT indisvalid FROM pg_index WHERE indexrelid ="
                                   " to_regclass(%s)", (INDEX,))]


def test_invalid_index_from_a_failed_build_is_rebuilt(
        at_head: str, migrations: Path, spawn: Callable[..., Migrator]) -> None:
    add_revision(migrations, "i01", [
        "py:from migrator.online import create_index",
        f"py:create_index({INDEX!r}, 'users', ['email'], unique=True)",
    ])
    before = current(at_head)
    sql(at_head, "INSERT INTO users (google_id, email) VALUES ('g1', 'same@x.test'),"
                 " ('g2', 'same@x.test')")
    env = migrator_env(at_head, migrations)
    failed = spawn("upgrade", env=env)
    assert failed.wait() == 12, failed.output
    assert "could not create unique index" in failed.event("run_failed")["message"]
    assert _valid(at_head) == [False], "the failed build should leave an INVALID index"
    assert current(at_head) == before

    sql(at_head, "DELETE FROM users WHERE google_id = 'g2'")
    rerun = spawn("upgrade", env=env)
    assert rerun.wait() == 0, rerun.output
    assert "index_rebuild" in rerun.events()
    assert _valid(at_head) == [True]
    assert current(at_head) == "i01"
