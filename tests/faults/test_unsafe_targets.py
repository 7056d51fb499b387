"""Targets the migrator must refuse before touching anything (exit 6): a read-only
database, a hot standby, and a transaction-pooling PgBouncer in front of the primary."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from faultkit import Migrator, current, migrator_env, sql, wait_until

from migrator.localdb import SERVER_USER, LocalPostgres, free_port

PGBOUNCER = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"


def _refused(runner: Migrator, why: str) -> None:
    assert runner.wait(30) == 6, runner.output
    failed = runner.event("run_failed")
    assert failed["outcome"] == "failure.unsafe_target"
    assert why in failed["message"], failed["message"]


def test_read_only_database_is_refused(database_url: str,
                                       spawn: Callable[..., Migrator]) -> None:
    name = database_url.rsplit("/", 1)[1]
    sql(database_url, f'ALTER DATABASE "{name}" SET default_transaction_read_only = on')
    _refused(spawn("upgrade", env=migrator_env(database_url)), "read-only")
    assert current_or_none(database_url) is None


def current_or_none(url: str) -> str | None:
    if not sql(url, "SELECT to_regclass('alembic_version')")[0][0]:
        return None
    return current(url)


def test_hot_standby_is_refused(standby: LocalPostgres,
                                spawn: Callable[..., Migrator]) -> None:
    with psycopg.connect(standby.dsn()) as conn:
        assert conn.execute("SELECT pg_is_in_recovery()").fetchone() == (True,)
    _refused(spawn("upgrade", env=migrator_env(standby.dsn())), "standby")


class PgBouncer:
    """A real PgBouncer between the migrator and `server`, in `pool_mode`."""

    def __init__(self, server: LocalPostgres, pool_mode: str, workdir: Path,
                 pool_size: int = 5) -> None:
        self.port = free_port()
        workdir.mkdir(parents=True)
        for folder in (workdir.parent, workdir):
            folder.chmod(0o755)
        (workdir / "userlist.txt").write_text('"postgres" ""\n')
        config = workdir / "pgbouncer.ini"
        config.write_text(
            f"[databases]\n* = host=127.0.0.1 port={server.port}\n\n[pgbouncer]\n"
            f"listen_addr = 127.0.0.1\nlisten_port = {self.port}\nunix_socket_dir =\n"
            f"auth_type = trust\nauth_file = {workdir}/userlist.txt\n"
            f"pool_mode = {pool_mode}\ndefault_pool_size = {pool_size}\n")
        for path in workdir.iterdir():
            path.chmod(0o644)
        user = ["-u", SERVER_USER] if os.geteuid() == 0 else []  # it will not run as root
        self.log = (workdir / "pgbouncer.log").open("w")  # its stderr: it logs there
        self.proc = subprocess.Popen([PGBOUNCER, *user, str(config)], stdout=self.log,
                                     stderr=subprocess.STDOUT)
        wait_until(self._ready, 10, "pgbouncer accepts connections")

    def _ready(self) -> bool:
        assert self.proc.poll() is None, (self.log.name, "pgbouncer exited")
        try:
            with psycopg.connect(self.dsn(), connect_timeout=2) as conn:
                conn.execute("SELECT 1")
            return True
        except psycopg.OperationalError:
            return False

    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        self.log.close()


@pytest.fixture
def pgbouncer(own_server: LocalPostgres) -> Iterator[Callable[[str], PgBouncer]]:
    assert Path(PGBOUNCER).exists(), "pgbouncer is not installed: run `make tools`"
    started: list[PgBouncer] = []
    # Not under pytest's tmp_path: pgbouncer runs as the server's user, who cannot enter it.
    workdir = Path(tempfile.mkdtemp(prefix="yomu-pgbouncer-"))

    def start(pool_mode: str, pool_size: int = 5) -> PgBouncer:
        started.append(PgBouncer(own_server, pool_mode, workdir / pool_mode, pool_size))
        return started[-1]

    yield start
    for bouncer in started:
        bouncer.stop()
    shutil.rmtree(workdir, ignore_errors=True)


def test_transaction_pooling_pgbouncer_is_refused(
        own_server: LocalPostgres, pgbouncer: Callable[[str], PgBouncer],
        spawn: Callable[..., Migrator]) -> None:
    bouncer = pgbouncer("transaction")
    _refused(spawn("upgrade", env=migrator_env(bouncer.dsn())), "PgBouncer")
    assert current_or_none(own_server.dsn()) is None


def test_session_pooling_pgbouncer_is_accepted(
        own_server: LocalPostgres, pgbouncer: Callable[[str], PgBouncer],
        spawn: Callable[..., Migrator]) -> None:
    """The control: the same path in session mode works, so the refusal is about the mode."""
    bouncer = pgbouncer("session")
    runner = spawn("upgrade", env=migrator_env(bouncer.dsn()))
    assert runner.wait(60) == 0, runner.output
    assert current_or_none(own_server.dsn()) is not None

