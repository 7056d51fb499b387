"""Shared fixtures: real PostgreSQL servers started by the tests themselves.

Helpers live in tests/pgtest.py (`from pgtest import run_migrator, ...`); the names are
re-exported here for tests that import them from conftest.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from pgtest import (  # noqa: F401 - re-exported
    LEGACY_INIT_SQL,
    REPO,
    TEST_PASSWORD,
    Roles,
    events,
    json_lines,
    role_url,
    run_migrator,
    schema_dump,
    superuser_dsn,
)
from psycopg import sql

from migrator.localdb import LocalPostgres, temporary_server

# Tests that assert how long something takes: `make test` runs them after the rest, alone
# on the machine, so another test's load cannot stretch their timings.
SERIAL = ("tests/faults/", "tests/integration/test_migration_lock.py",
          "tests/integration/test_lock_retries.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        path = Path(item.path).relative_to(REPO).as_posix()
        if path.startswith(SERIAL):
            item.add_marker(pytest.mark.serial)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[LocalPostgres]:
    """One server for the session; each test gets its own database on it.

    tests/mutation/mutate.py runs pytest once per mutant and hands every run the same server
    (YOMU_TEST_PG_PORT, YOMU_TEST_PG_DATADIR), started with the same password.
    """
    if os.environ.get("YOMU_TEST_PG_PORT"):
        yield LocalPostgres(Path(os.environ["YOMU_TEST_PG_DATADIR"]),
                            int(os.environ["YOMU_TEST_PG_PORT"]))
        return
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


@pytest.fixture
def make_roles(pg_server: LocalPostgres) -> Iterator[Callable[..., Roles]]:
    """Databases as production has them: each owned by its own owner role, with an app role
    of least privilege (no CREATE on the schema, no TEMP). `app` names the app role (the
    values files say `yomu_app`); by default every name is the test's own, since roles are
    cluster-wide. Passwords need URL encoding."""
    made: list[Roles] = []
    admin = superuser_dsn(pg_server)

    def make(app: str | None = None) -> Roles:
        tag = uuid.uuid4().hex[:8]
        name, owner, app_role = f"lp_{tag}", f"owner_{tag}", app or f"app_{tag}"
        passwords = {owner: f"Own:er@{tag}/%x", app_role: f"App p@ss#{tag}?&"}
        with psycopg.connect(admin, autocommit=True) as conn:
            for role, password in passwords.items():
                conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                    sql.Identifier(role), sql.Literal(password)))
            conn.execute(f'CREATE DATABASE "{name}" OWNER "{owner}"')
            # As a careful DBA sets it up: only the owner creates anything, not even TEMP.
            conn.execute(f'REVOKE TEMP ON DATABASE "{name}" FROM PUBLIC')
        made.append(Roles(name, owner, app_role,
                          role_url(pg_server, owner, passwords[owner], name),
                          role_url(pg_server, app_role, passwords[app_role], name),
                          superuser_dsn(pg_server, name)))
        return made[-1]

    yield make
    with psycopg.connect(admin, autocommit=True) as conn:
        for roles in made:
            conn.execute(f'DROP DATABASE IF EXISTS "{roles.database}" WITH (FORCE)')
            for role in (roles.owner, roles.app):
                conn.execute(f'DROP ROLE IF EXISTS "{role}"')


@pytest.fixture
def roles(make_roles: Callable[..., Roles]) -> Roles:
    """A fresh database with an owner role and an app role of least privilege."""
    return make_roles()
