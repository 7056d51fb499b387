"""Shared fixtures: real PostgreSQL servers started by the tests themselves."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from migrator.localdb import LocalPostgres, free_port

REPO = Path(__file__).resolve().parent.parent
LEGACY_INIT_SQL = REPO / "docker" / "postgres" / "init.sql"
TEST_PASSWORD = "s3cr3t-Pa55word"


def _new_server(auth: str = "trust") -> LocalPostgres:
    base = Path(tempfile.mkdtemp(prefix="yomu-pg-"))
    base.chmod(0o755)
    server = LocalPostgres(base / "data", free_port())
    server.init(auth=auth)
    server.start()
    return server


def _remove(server: LocalPostgres) -> None:
    server.stop(mode="immediate")
    shutil.rmtree(server.datadir.parent, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[LocalPostgres]:
    """One server for the session; each test gets its own database on it."""
    server = _new_server(auth="scram-sha-256")
    with psycopg.connect(server.dsn(), autocommit=True, host="127.0.0.1") as conn:
        conn.execute(f"ALTER ROLE postgres PASSWORD '{TEST_PASSWORD}'")
    yield server
    _remove(server)


@pytest.fixture
def own_server() -> Iterator[LocalPostgres]:
    """A server of the test's own, to stop, restart or kill."""
    server = _new_server()
    yield server
    _remove(server)


def superuser_dsn(server: LocalPostgres, database: str = "postgres") -> str:
    return server.dsn(database, password=TEST_PASSWORD)


@pytest.fixture
def database_url(pg_server: LocalPostgres) -> Iterator[str]:
    """A fresh, empty database; its URL carries the test password."""
    name = "t_" + uuid.uuid4().hex[:12]
    admin = superuser_dsn(pg_server)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield superuser_dsn(pg_server, name)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def legacy_database_url(database_url: str) -> str:
    """A database built by the legacy init.sql, as production's was."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(LEGACY_INIT_SQL.read_text())  # type: ignore[arg-type]
    return database_url


def run_migrator(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run the real CLI in a child process, as the hook Job does."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "MIGRAT"))}
    full_env.update(env or {})
    full_env.setdefault("MIGRATOR_LOG_FORMAT", "json")
    return subprocess.run(
        [sys.executable, "-m", "migrator", *args],
        env=full_env, capture_output=True, text=True, timeout=timeout, cwd=REPO,
    )
