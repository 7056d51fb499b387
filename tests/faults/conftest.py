"""Fixtures of the fault tests: migrator processes that never outlive their test."""

from __future__ import annotations

import os
import pwd
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from faultkit import REPO_HEAD, Migrator, copy_migrations, current, migrator_env

from migrator.localdb import SERVER_USER, LocalPostgres, free_port


@pytest.fixture
def spawn() -> Iterator[Callable[..., Migrator]]:
    """Start `migrator ARGS` child processes; any still running at the end is killed."""
    started: list[Migrator] = []

    def start(*args: str, env: dict[str, str]) -> Migrator:
        process = Migrator(*args, env=env)
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()


@pytest.fixture
def migrations(tmp_path: Path) -> Path:
    """A copy of the repo's migrations/ to add test revisions to."""
    return copy_migrations(tmp_path)


@pytest.fixture
def at_head(database_url: str, spawn: Callable[..., Migrator]) -> str:
    """A database the real migrator brought to the repo's head."""
    run = spawn("upgrade", env=migrator_env(database_url))
    assert run.wait() == 0, run.output
    assert current(database_url) == REPO_HEAD
    return database_url


@pytest.fixture
def standby(own_server: LocalPostgres) -> Iterator[LocalPostgres]:
    """A hot standby of `own_server`, cloned with pg_basebackup -R (streaming replication)."""
    base = Path(tempfile.mkdtemp(prefix="yomu-standby-"))
    base.chmod(0o755)
    replica = LocalPostgres(base / "data", free_port())
    if os.geteuid() == 0:
        entry = pwd.getpwnam(SERVER_USER)
        os.chown(base, entry.pw_uid, entry.pw_gid)
    replica._pg("pg_basebackup", "-h", "127.0.0.1", "-p", str(own_server.port), "-U",
                "postgres", "-D", str(replica.datadir), "-R", "-X", "stream", "-c", "fast")
    replica.start()
    try:
        yield replica
    finally:
        replica.stop(mode="immediate")
        shutil.rmtree(base, ignore_errors=True)
