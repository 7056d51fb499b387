"""Shared fixtures: real PostgreSQL servers started by the tests themselves.

Helpers live in tests/pgtest.py (`from pgtest import run_migrator, ...`); the names are
re-exported here for tests that import them from conftest.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest
from pgtest import (  # noqa: F401 - re-exported
    LEGACY_INIT_SQL,
    REPO,
    TEST_PASSWORD,
    events,
    json_lines,
    run_migrator,
    schema_dump,
    superuser_dsn,
)

from migrator.localdb import LocalPostgres, temporary_server


@pytest.fixture(scope="session")
def pg_server() -> Iterator[LocalPostgres]:
    """One server for the session; each test gets its own database on it."""
    with temporary_server(auth="scram-sha-256", password=TEST_PASSWORD) as server:
        yield server


@pytest.fixture
def own_server() -> Iterator[LocalPostgres]:
    """A server of the test's own, to stop, restart or kill."""
    with temporary_server() as server:
        yield server


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
