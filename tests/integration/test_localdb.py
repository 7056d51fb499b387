"""`python -m migrator.localdb` (what `make migrate` starts) as root: the server runs as its
own user, and no folder above the cluster gets its permissions changed for it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from pgtest import REPO

pytestmark = pytest.mark.skipif(os.geteuid() != 0,
                                reason="only root runs the server as another user")


def _localdb(action: str, folder: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "migrator.localdb", action, str(folder)],
                          cwd=REPO, capture_output=True, text=True, timeout=120)


@pytest.fixture
def private() -> Iterator[Path]:
    """A folder only root may enter, like a checkout under /root."""
    folder = Path(tempfile.mkdtemp(prefix="yomu-private-"))
    assert folder.stat().st_mode & 0o777 == 0o700
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def _modes(paths: list[Path]) -> dict[Path, int]:
    return {path: path.stat().st_mode for path in paths}


def test_a_cluster_the_server_user_cannot_reach_lives_elsewhere(private: Path) -> None:
    wanted = private / "repo" / ".local" / "pg"
    ancestors = [private, *private.parents]
    before = _modes(ancestors)
    home: Path | None = None
    try:
        started = _localdb("start", wanted)
        assert started.returncode == 0, started.stderr
        home = Path((wanted / "location").read_text().strip())
        assert home.parent == Path("/var/tmp") and (home / "data" / "PG_VERSION").exists()
        assert _modes(ancestors) == before
        with psycopg.connect(started.stdout.strip()) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
        assert _localdb("dsn", wanted).stdout == started.stdout
        assert _localdb("start", wanted).stdout == started.stdout  # again: the same cluster
    finally:
        assert _localdb("stop", wanted).returncode == 0
        if home is not None:
            shutil.rmtree(home, ignore_errors=True)
    assert _modes(ancestors) == before


def test_a_reachable_folder_holds_the_cluster_itself(private: Path) -> None:
    shared = private / "shared"
    shared.mkdir(mode=0o755)
    private.chmod(0o711)  # the test's own folder: traversable, as a normal checkout is
    wanted = shared / "pg"
    before = _modes([shared, private, *private.parents])
    try:
        started = _localdb("start", wanted)
        assert started.returncode == 0, started.stderr
        assert (wanted / "data" / "PG_VERSION").exists() and not (wanted / "location").exists()
        assert _modes([shared, private, *private.parents]) == before
    finally:
        _localdb("stop", wanted)
