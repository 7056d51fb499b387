"""Fixtures of the fault tests: migrator processes that never outlive their test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from faultkit import REPO_HEAD, Migrator, copy_migrations, current, migrator_env


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
