"""Where output goes: errors on stderr with the next step, a reader that stops early (`| head`)
is no error, a closed stdout does not stop a migration, and a crash's traceback carries no
secret."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from pgtest import REPO, TEST_PASSWORD, json_lines, run_migrator

from migrator.chain import load_chain
from migrator.config import default_migrations_dir

HEAD = load_chain(default_migrations_dir()).head


def _env(url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "MIGRAT"))}
    return {**env, "DATABASE_URL": url, **extra}


def _current(url: str) -> str | None:
    with psycopg.connect(url) as conn:
        if conn.execute("SELECT to_regclass('alembic_version')").fetchone() == (None,):
            return None
        row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
        return row[0] if row else None


def test_text_logs_put_errors_on_stderr_with_the_next_step(database_url: str) -> None:
    wrong = database_url.replace(TEST_PASSWORD, "Wr0ng-Pw-42")
    result = run_migrator("upgrade", env={"DATABASE_URL": wrong, "MIGRATOR_LOG_FORMAT": "text"})
    assert result.returncode == 5, result.stdout + result.stderr
    assert result.stdout.startswith("info    migrator ") and "error" not in result.stdout
    first, second = result.stderr.splitlines()[:2]
    assert first.startswith("error   cannot connect to 127.0.0.1:") and "authentication" in first
    assert second.startswith("        next: check the user, password and database name")


def test_json_logs_put_errors_on_stderr(database_url: str) -> None:
    result = run_migrator("upgrade", "9999", env={"DATABASE_URL": database_url})
    assert result.returncode == 11
    assert "run_failed" not in [line["event"] for line in json_lines(result.stdout)]
    (failed,) = json_lines(result.stderr)
    assert failed["event"] == "run_failed" and failed["next_step"]


@pytest.mark.parametrize("command", ["history", "history --log-format text",
                                     "status --log-format text"])
def test_a_reader_that_stops_early_is_no_error(database_url: str, command: str) -> None:
    assert run_migrator("upgrade", env={"DATABASE_URL": database_url}).returncode == 0
    shell = f"{sys.executable} -m migrator {command} | head -1; exit ${{PIPESTATUS[0]}}"
    result = subprocess.run(["bash", "-c", shell], env=_env(database_url), cwd=REPO,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # no BrokenPipeError, no traceback
    assert len(result.stdout.splitlines()) == 1


@pytest.mark.parametrize("verb", ["history", "status"])
def test_output_to_a_closed_pipe_is_dropped_quietly(database_url: str, verb: str) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "migrator", verb, "--log-format", "text"],
                            env=_env(database_url), cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    proc.stdout.close()  # the reader is gone before the first line
    _, errors = proc.communicate(timeout=60)
    assert proc.returncode == 0 and errors == "", errors


def test_an_upgrade_whose_stdout_is_closed_keeps_migrating(database_url: str) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "migrator", "upgrade"],
                            env=_env(database_url), cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    proc.stdout.close()
    _, errors = proc.communicate(timeout=120)
    assert proc.returncode == 0, errors
    assert "Traceback" not in errors and "Logging error" not in errors
    assert _current(database_url) == HEAD


def test_an_upgrade_started_without_stdout_logs_to_stderr(database_url: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "migrator", "upgrade"], env=_env(database_url), cwd=REPO,
        stderr=subprocess.PIPE, text=True, timeout=120,
        preexec_fn=lambda: os.close(1))  # the child starts without descriptor 1
    assert proc.returncode == 0, proc.stderr
    assert [line["event"] for line in json_lines(proc.stderr)][-1] == "run_finished"
    assert _current(database_url) == HEAD


@pytest.mark.parametrize("log_format", ["json", "text"])
def test_a_crash_traceback_carries_no_secret(database_url: str, tmp_path: Path,
                                             log_format: str) -> None:
    """A revision that puts the password into an exception at import, which the migrator
    meets while planning, outside any revision (a bug): exit 1, the traceback is logged, the
    password in it is not."""
    migrations = tmp_path / "migrations"
    shutil.copytree(default_migrations_dir(), migrations,
                    ignore=shutil.ignore_patterns("__pycache__"))
    (migrations / "versions" / "x999_leaky.py").write_text(
        '"""Puts the password in an exception."""\nimport os\n\n'
        f'revision = "x999"\ndown_revision = "{HEAD}"\n\n'
        'raise RuntimeError("cannot use " + os.environ["DATABASE_URL"].split(":")[2]'
        '.split("@")[0])\n')
    result = run_migrator("upgrade", env={"DATABASE_URL": database_url,
                                          "MIGRATOR_MIGRATIONS_DIR": str(migrations),
                                          "MIGRATOR_LOG_FORMAT": log_format})
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" in result.stderr and "RuntimeError: cannot use ***" in result.stderr
    assert TEST_PASSWORD not in result.stdout + result.stderr
    assert _current(database_url) is None  # it failed while planning: nothing was applied


def test_a_revision_that_prints_the_url_prints_no_password(database_url: str,
                                                          tmp_path: Path) -> None:
    """`print` bypasses logging: only the guard on stdout and stderr stands between a
    debugging line in a revision and the Job's log."""
    from pgtest import add_revision, copy_migrations

    migrations = copy_migrations(tmp_path)
    add_revision(migrations, "p01", [
        "py:import os, sys",
        "py:print('connecting to', os.environ['DATABASE_URL'])",
        "py:print('again', os.environ['DATABASE_URL'], file=sys.stderr)"])
    result = run_migrator("upgrade", env={"DATABASE_URL": database_url,
                                          "MIGRATOR_MIGRATIONS_DIR": str(migrations)})
    assert result.returncode == 0, result.stderr
    assert "connecting to postgresql://postgres:***@" in result.stdout
    assert "again postgresql://postgres:***@" in result.stderr
    assert TEST_PASSWORD not in result.stdout + result.stderr
