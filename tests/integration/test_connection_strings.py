"""The connection strings users really have, end to end against real servers: libpq's Unix
socket forms (local sockets, the Cloud SQL proxy), key=value, several hosts, the driver's
URL spelling, and a percent-encoded password full of URL syntax."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from urllib.parse import quote

import psycopg
import pytest
from pgtest import TEST_PASSWORD, records, run_migrator, superuser_dsn

from migrator.chain import load_chain
from migrator.config import default_migrations_dir
from migrator.localdb import LocalPostgres, free_port, temporary_server

HEAD = load_chain(default_migrations_dir()).head


@pytest.fixture(scope="module")
def socket_server() -> Iterator[LocalPostgres]:
    """A server on a Unix socket only, in a folder of its own, on libpq's default port
    (no TCP, so 5432 is free whatever else runs here)."""
    with temporary_server(socket=True, tcp=False, port=5432) as server:
        yield server


def _new_database(server: LocalPostgres) -> str:
    name = "s_" + uuid.uuid4().hex[:10]
    with psycopg.connect(host=str(server.socket_dir), port=server.port, user="postgres",
                         dbname="postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return name


def _at_head(**params: object) -> bool:
    with psycopg.connect(**params) as conn:
        row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    return row == (HEAD,)


@pytest.mark.parametrize(
    ("form", "env"),
    [
        ("postgresql://postgres@/{db}?host={dir}", {}),
        ("postgresql:///{db}?host={dir}", {"PGUSER": "postgres"}),  # the user from libpq's env
        ("postgresql+psycopg://postgres@/{db}?host={dir}", {}),
        ("host={dir} dbname={db} user=postgres", {}),
        ("postgresql://postgres@ignored.invalid:1/{db}?host={dir}&port=5432", {}),
    ],
)
def test_unix_socket_forms_migrate(socket_server: LocalPostgres, form: str,
                                   env: dict[str, str]) -> None:
    db = _new_database(socket_server)
    url = form.format(db=db, dir=socket_server.socket_dir)
    result = run_migrator("upgrade", env={"DATABASE_URL": url, **env})
    assert result.returncode == 0, result.stdout + result.stderr
    assert _at_head(host=str(socket_server.socket_dir), port=5432, user="postgres", dbname=db)
    status = run_migrator("status", env={"DATABASE_URL": url, **env})
    assert status.returncode == 0, status.stdout + status.stderr


def test_a_missing_socket_is_named_in_the_error(socket_server: LocalPostgres) -> None:
    url = f"postgresql://postgres@/yomu?host={socket_server.socket_dir}&port=5499"
    result = run_migrator("upgrade", "--connect-timeout", "1", env={"DATABASE_URL": url})
    assert result.returncode == 4
    failed = next(r for r in records(result) if r["event"] == "run_failed")
    assert f"socket {socket_server.socket_dir}/.s.PGSQL.5499, database yomu" in str(
        failed["message"])


def test_the_second_host_is_used_when_the_first_is_down(database_url: str,
                                                        pg_server: LocalPostgres) -> None:
    db = database_url.rsplit("/", 1)[1]
    closed = free_port()
    url = (f"postgresql://postgres:{TEST_PASSWORD}@127.0.0.1:{closed},127.0.0.1:"
           f"{pg_server.port}/{db}")
    result = run_migrator("upgrade", env={"DATABASE_URL": url})
    assert result.returncode == 0, result.stdout + result.stderr
    started = next(r for r in records(result) if r["event"] == "run_started")
    assert f"127.0.0.1:{closed},127.0.0.1:{pg_server.port}/{db}" in str(started["message"])


def test_a_percent_encoded_password_full_of_url_syntax_works(pg_server: LocalPostgres) -> None:
    password = "p@ss/w%rd:?#&= ' \\é"
    role = "r_" + uuid.uuid4().hex[:10]
    with psycopg.connect(superuser_dsn(pg_server), autocommit=True) as conn:
        verifier = conn.pgconn.encrypt_password(password.encode(), role.encode(),
                                                b"scram-sha-256").decode()
        conn.execute(f'CREATE ROLE "{role}" LOGIN PASSWORD \'{verifier}\'')
        conn.execute(f'CREATE DATABASE "{role}" OWNER "{role}"')
    try:
        for url in (f"postgresql://{role}:{quote(password, safe='')}@127.0.0.1:"
                    f"{pg_server.port}/{role}",
                    f"host=127.0.0.1 port={pg_server.port} dbname={role} user={role} "
                    "password='" + password.replace("\\", "\\\\").replace("'", "\\'") + "'"):
            result = run_migrator("upgrade", env={"DATABASE_URL": url})
            assert result.returncode == 0, result.stdout + result.stderr
            assert "w%rd" not in result.stdout + result.stderr
    finally:
        with psycopg.connect(superuser_dsn(pg_server), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{role}" WITH (FORCE)')
            conn.execute(f'DROP ROLE IF EXISTS "{role}"')
