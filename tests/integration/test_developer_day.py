"""docs/writing-migrations.md followed to the letter, in a copy of the repository.

A developer's own next revisions (0003, 0004) must not break the suite or lint, and the
easiest slip of all, `--rev-id` with an id that is taken, must fail at once with the file's
name instead of hanging every verb.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

from pgtest import REPO, REPO_HEAD, run_migrator

from migrator.chain import load_chain

VENV_BIN = Path(sys.executable).parent


def _copy_repo(tmp_path: Path) -> Path:
    """The tracked files, as a fresh clone has them."""
    files = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, check=True,
                           capture_output=True, text=True).stdout.split("\0")
    copy = tmp_path / "repo"
    for name in filter(None, files):
        if (REPO / name).is_file():
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, copy / name)
    return copy


def _alembic(copy: Path, *args: str, env: dict[str, str] | None = None,
            code: int = 0) -> str:
    result = subprocess.run([str(VENV_BIN / "alembic"), *args], cwd=copy, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == code, result.stdout + result.stderr
    return result.stdout + result.stderr


def test_a_taken_rev_id_fails_every_verb_at_once_naming_the_file(tmp_path: Path) -> None:
    copy = _copy_repo(tmp_path)
    assert REPO_HEAD is not None
    # the slip: Alembic complains, and leaves the file behind
    said = _alembic(copy, "revision", "--rev-id", REPO_HEAD, "-m", "again", code=255)
    assert "Self-loop is detected" in said
    written = next((copy / "migrations" / "versions").glob(f"{REPO_HEAD}_again.py"))
    env = {"MIGRATOR_MIGRATIONS_DIR": str(copy / "migrations"),
           "DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none"}
    for verb in (["status"], ["upgrade"], ["check"], ["history"], ["plan", "--offline"],
                 ["lint"], ["upgrade", "--sql", "--offline"], ["downgrade", "base"]):
        started = time.monotonic()
        result = run_migrator(*verb, "--log-format", "json", env=env, timeout=20)
        took = time.monotonic() - started
        assert result.returncode == 3, (verb, result.stderr)
        failed = next(json.loads(line) for line in result.stderr.splitlines()
                      if '"run_failed"' in line)
        assert f"{written.name} revises itself" in failed["message"], verb
        assert f"delete {written.name}" in failed["next_step"], verb
        assert failed["duration_ms"] < 1000 and took < 10, (verb, took)


def test_two_revisions_added_as_the_docs_say_lint_and_migrate(
        tmp_path: Path, database_url: str) -> None:
    copy = _copy_repo(tmp_path)
    env = {"DATABASE_URL": database_url, "PATH": f"{VENV_BIN}:/usr/bin:/bin"}
    migrate = [sys.executable, "-m", "migrator"]
    assert subprocess.run([*migrate, "upgrade"], cwd=copy, env=env,
                          capture_output=True).returncode == 0
    first, second = (f"{int(str(REPO_HEAD)) + n:04d}" for n in (1, 2))
    # 1. the models, 2. autogenerate a draft
    models = copy / "migrator" / "models.py"
    models.write_text(models.read_text().replace(
        "    title: Mapped[str | None] = mapped_column(String(500))\n",
        "    title: Mapped[str | None] = mapped_column(String(500))\n"
        "    note: Mapped[str | None] = mapped_column(Text)\n", 1).replace(
        'Index("bookmarks_user_id_created_at_idx"',
        'Index("bookmarks_note_idx", Bookmark.note)\nIndex("bookmarks_user_id_created_at_idx"'))
    _alembic(copy, "revision", "--autogenerate", "--rev-id", first, "-m", "bookmarks note",
             env=env)
    auto = copy / "migrations" / "versions" / f"{first}_bookmarks_note.py"
    # autogenerate drafts the index as a plain CREATE INDEX: the docs say rewrite it online,
    # in a revision of its own
    auto.write_text("\n".join(line for line in auto.read_text().splitlines()
                              if "bookmarks_note_idx" not in line) + "\n")
    _alembic(copy, "revision", "--rev-id", second, "-m", "bookmarks note idx", env=env)
    by_hand = copy / "migrations" / "versions" / f"{second}_bookmarks_note_idx.py"
    by_hand.write_text(by_hand.read_text().replace(
        "from __future__ import annotations\n",
        "from __future__ import annotations\n\n"
        "from migrator.online import create_index, drop_index\n").replace(
        "def upgrade() -> None:\n    pass",
        'def upgrade() -> None:\n    create_index("bookmarks_note_idx", "bookmarks", ["note"])'
    ).replace("def downgrade() -> None:\n    pass",
              'def downgrade() -> None:\n    drop_index("bookmarks_note_idx")'))
    assert load_chain(copy / "migrations").ids()[-2:] == [first, second]
    # `make test` starts with ruff: the drafts as the template writes them must pass it
    ruff = subprocess.run([str(VENV_BIN / "ruff"), "check", "migrations"], cwd=copy,
                          capture_output=True, text=True)
    assert ruff.returncode == 0, ruff.stdout
    for verb in ("lint", "upgrade", "check"):
        done = subprocess.run([*migrate, verb], cwd=copy, env=env, capture_output=True,
                              text=True)
        assert done.returncode == 0, (verb, done.stdout, done.stderr)
