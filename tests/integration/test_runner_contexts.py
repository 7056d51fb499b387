"""The pending revisions run in one Alembic migration context (migrator/runner.py), yet each
keeps its own transaction, session values, lock_timeout retries and history row: a revision
that must wait for a lock in the middle of a chain is retried alone, the ones before it stay
committed, and the ones after it follow in a new context."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import psycopg

from bench.chain import copy_migrations, write_revision
from tests.pgtest import run_migrator

BLOCKED = 'op.execute("ALTER TABLE sessions ADD COLUMN ctx_note text")'


def _chain(tmp_path: Path) -> Path:
    migrations = copy_migrations(tmp_path)
    write_revision(migrations, "c001", 'op.execute("COMMENT ON TABLE users IS \'c1\'")',
                   doc="First.")
    write_revision(migrations, "c002", BLOCKED, doc="Second, blocked.")
    write_revision(migrations, "c003",
                   'op.execute("SELECT set_config(\'statement_timeout\', \'7777ms\', false)")\n'
                   'op.execute("COMMENT ON TABLE users IS \'c3\'")', doc="Third.")
    write_revision(migrations, "c004", 'op.execute("COMMENT ON TABLE users IS \'c4\'")',
                   doc="Fourth.")
    return migrations


def _events(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


def test_a_blocked_revision_mid_chain_is_retried_alone(tmp_path: Path, database_url: str) -> None:
    migrations = _chain(tmp_path)
    env = {"DATABASE_URL": database_url, "MIGRATOR_MIGRATIONS_DIR": str(migrations)}
    first = run_migrator("upgrade", "0002", env=env)  # the real schema, so `sessions` exists
    assert first.returncode == 0, first.stdout + first.stderr

    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        """A report holding `sessions` until the migrator has retried c002 twice."""
        with psycopg.connect(database_url, application_name="report") as conn:
            conn.execute("SELECT count(*) FROM sessions")
            holding.set()
            release.wait(60)

    holder = threading.Thread(target=hold, daemon=True)
    holder.start()
    assert holding.wait(10)
    watcher = threading.Thread(target=_release_after_retries,
                               args=(database_url, release), daemon=True)
    watcher.start()
    proc = run_migrator("upgrade", env={**env, "MIGRATOR_LOCK_TIMEOUT_MS": "50"})
    release.set()
    holder.join(10)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    events = _events(proc.stdout)
    names = [(e["event"], e.get("revision")) for e in events]

    retries = [e for e in events if e["event"] == "lock_retry"]
    assert retries and {e["revision"] for e in retries} == {"c002"}, names
    # c001 committed before c002 first waited; c003 and c004 only after c002 landed.
    order = [n for n in names if n[0] in ("revision_applied", "lock_retry")]
    assert order[0] == ("revision_applied", "c001"), order
    assert order[-3:] == [("revision_applied", "c002"), ("revision_applied", "c003"),
                          ("revision_applied", "c004")], order
    # Announced once, however many attempts it took.
    assert names.count(("revision_started", "c002")) == 1
    # Every revision one plan line, before the first is applied.
    plans = [i for i, n in enumerate(names) if n[0] == "revision_plan"]
    assert len(plans) == 4 and max(plans) < names.index(("revision_started", "c001"))

    with psycopg.connect(database_url) as conn:
        rows = dict(conn.execute(
            "SELECT revision, applied_at FROM yomu_migrate_history").fetchall())
        version = conn.execute("SELECT version_num FROM alembic_version").fetchall()
        column = conn.execute("SELECT count(*) FROM information_schema.columns WHERE "
                              "table_name = 'sessions' AND column_name = 'ctx_note'").fetchone()
    assert version == [("c004",)] and column == (1,)
    # now() is the start of a transaction: four distinct values, four transactions.
    stamps = [rows[r] for r in ("c001", "c002", "c003", "c004")]
    assert stamps == sorted(stamps) and len(set(stamps)) == 4, stamps


def test_a_revisions_session_values_do_not_linger(tmp_path: Path, database_url: str) -> None:
    """c003 sets statement_timeout for the session; c004, in the same context, gets the
    configured value back before it starts."""
    migrations = _chain(tmp_path)
    write_revision(migrations, "c005",
                   "value = op.get_bind().exec_driver_sql('SHOW statement_timeout').scalar()\n"
                   "op.execute(f\"COMMENT ON TABLE users IS 'timeout {value}'\")",
                   doc="Fifth.")
    env = {"DATABASE_URL": database_url, "MIGRATOR_MIGRATIONS_DIR": str(migrations),
           "MIGRATOR_STATEMENT_TIMEOUT_MS": "123000"}
    proc = run_migrator("upgrade", env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    with psycopg.connect(database_url) as conn:
        comment = conn.execute("SELECT obj_description('users'::regclass)").fetchone()
    assert comment == ("timeout 123s",), comment


def _release_after_retries(url: str, release: threading.Event) -> None:
    """Let the report go once the migrator's migrate session has waited twice for a lock."""
    import time

    seen = 0
    with psycopg.connect(url, autocommit=True) as conn:
        while not release.is_set() and seen < 2:
            waiting = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                " AND application_name LIKE 'yomu-migrate/% migrate'").fetchone()
            if waiting and waiting[0]:
                seen += 1
                while not release.is_set():  # this wait ends with its lock_timeout
                    row = conn.execute(
                        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                        " AND application_name LIKE 'yomu-migrate/% migrate'").fetchone()
                    if not row or not row[0]:
                        break
                    time.sleep(0.005)
            time.sleep(0.005)
    release.set()
