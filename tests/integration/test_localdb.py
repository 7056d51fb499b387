"""`python -m migrator.localdb` (what `make migrate` starts) as root: the server runs as its
own user, and no folder above the cluster gets its permissions changed for it."""

from __future__ import annotations

import os
import shutil
import socket
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


def test_make_migrate_from_a_fresh_clone_only_root_may_enter(private: Path) -> None:
    """The README's first command, as a newcomer runs it as root in /root or a `mktemp -d`:
    the wheel's binaries sit in .venv inside that folder, out of the server user's reach.
    (Slow: a fresh clone installs its own .venv, ~1.5 min from pip's cache.)"""
    clone = private / "repo"
    subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True, timeout=60)
    before = _modes([private, *private.parents])
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("DATABASE_URL", "MIGRAT", "VIRTUAL_ENV"))}
    env["LOG_FORMAT"] = "text"
    try:
        result = subprocess.run(["make", "migrate"], cwd=clone, env=env, capture_output=True,
                                text=True, timeout=600)
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
        assert "schema: matches the models" in result.stdout
        again = subprocess.run(["make", "migrate"], cwd=clone, env=env, capture_output=True,
                               text=True, timeout=120)
        assert again.returncode == 0 and "nothing to do" in again.stdout, again.stdout
        assert _modes([private, *private.parents]) == before
    finally:
        subprocess.run(["make", "local-db-stop"], cwd=clone, env=env, capture_output=True,
                       timeout=60, check=False)
        record = clone / ".local" / "pg" / "location"
        if record.exists():
            shutil.rmtree(record.read_text().strip(), ignore_errors=True)


def test_a_server_that_cannot_start_says_why(private: Path) -> None:
    """`make migrate` shows the server's own reason (here: its port is taken), never
    'DATABASE_URL is not set'."""
    venv = Path(sys.executable).parent.parent
    wanted = private / "pg"
    wanted.mkdir()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        (wanted / "port").write_text(str(taken.getsockname()[1]))
        try:
            result = subprocess.run(
                ["make", "--no-print-directory", "-o", f"{venv}/.installed", "migrate",
                 f"LOCAL_PG={wanted}", f"VENV={venv}"],
                cwd=REPO, capture_output=True, text=True, timeout=120,
                env={k: v for k, v in os.environ.items() if not k.startswith("DATABASE_URL")})
        finally:
            if (wanted / "location").exists():
                shutil.rmtree((wanted / "location").read_text().strip(), ignore_errors=True)
    assert result.returncode == 2, result.stdout + result.stderr  # make's: the recipe failed
    assert "could not start the local PostgreSQL: pg_ctl exited 1" in result.stderr
    assert "Address already in use" in result.stderr, result.stderr
    assert "DATABASE_URL is not set" not in result.stdout + result.stderr


DEVELOPER = "yomu_dev_user"  # an ordinary login user, made once (useradd), as a newcomer is


def test_make_migrate_from_a_fresh_clone_as_an_ordinary_user() -> None:
    """The same, as an ordinary user in a `mktemp -d` of their own (0700): the server runs
    as that user. (Slow: the user's .venv comes from PyPI, through a pip cache of theirs.)"""
    if subprocess.run(["id", DEVELOPER], capture_output=True).returncode != 0:
        subprocess.run(["useradd", "--create-home", "--shell", "/bin/bash", DEVELOPER],
                       check=True)
    shared = Path(tempfile.mkdtemp(prefix="yomu-bundle-"))  # a file any user may read
    shared.chmod(0o755)
    bundle = shared / "repo.bundle"
    subprocess.run(["git", "bundle", "create", "-q", str(bundle), "HEAD"], cwd=REPO,
                   check=True)
    bundle.chmod(0o644)
    script = (f"set -e; d=$(mktemp -d); test $(stat -c %a $d) = 700; "
              f"git clone -q {bundle} $d/repo; cd $d/repo; echo $d; "
              "make migrate LOG_FORMAT=text; make migrate LOG_FORMAT=text; "
              "make local-db-stop; cd /; rm -rf $d")
    env = {"HOME": f"/home/{DEVELOPER}", "PATH": "/usr/local/bin:/usr/bin:/bin",
           "PIP_CACHE_DIR": f"/home/{DEVELOPER}/.cache/pip", "LANG": "C.UTF-8"}
    for name in ("PIP_INDEX_URL", "PIP_CERT", "PIP_TRUSTED_HOST", "HTTPS_PROXY", "https_proxy"):
        if name in os.environ:
            env[name] = os.environ[name]
    try:
        result = subprocess.run(["bash", "-c", script], user=DEVELOPER, group=DEVELOPER,
                                env=env, cwd="/", capture_output=True, text=True, timeout=900)
    finally:
        shutil.rmtree(shared, ignore_errors=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "schema: matches the models" in result.stdout
    assert "nothing to do" in result.stdout
