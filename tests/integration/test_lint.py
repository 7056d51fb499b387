"""`migrator lint` on revisions that would hurt the app, and on the safe patterns.

Each case writes revisions into a copy of the migrations folder and runs the real CLI, with
the real squawk and the checked-in .squawk.toml; no database is needed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pgtest import run_migrator

from bench.chain import copy_migrations, fresh_id, write_revision

LINT_EXIT = 16

UNSAFE = {
    "index-without-concurrently": (
        'op.create_index("users_display_name_idx", "users", ["display_name"])',
        "require-concurrent-index-creation"),
    "foreign-key-without-not-valid": (
        'op.create_foreign_key("sessions_user_fk2", "sessions", "users", ["user_id"], ["id"])',
        "adding-foreign-key-constraint"),
    "check-without-not-valid": (
        'op.create_check_constraint("bookmarks_url_len", "bookmarks", "length(url) < 8192")',
        "constraint-missing-not-valid"),
    "validate-in-the-same-transaction": (
        'op.execute("ALTER TABLE bookmarks ADD CONSTRAINT bookmarks_url_len '
        'CHECK (length(url) < 8192) NOT VALID")\n'
        'op.execute("ALTER TABLE bookmarks VALIDATE CONSTRAINT bookmarks_url_len")',
        "constraint-missing-not-valid"),
    "column-type-in-place": (
        'op.alter_column("bookmarks", "title", type_=sa.Text())',
        "changing-column-type"),
    "set-not-null-without-check": (
        'op.alter_column("users", "display_name", nullable=False)',
        "set-not-null-without-check"),
    "volatile-default": (
        'op.add_column("users", sa.Column("ref", sa.Uuid(), '
        'server_default=sa.text("gen_random_uuid()")))',
        "adding-field-with-default"),
    "backfill-under-lock": (
        'op.add_column("users", sa.Column("nickname", sa.Text()))\n'
        'op.execute("UPDATE users SET nickname = display_name")',
        "backfill-under-lock"),
}


def _lint(migrations: Path, *args: str) -> tuple[int, dict[str, Any]]:
    result = run_migrator("lint", "--json", *args,
                          env={"MIGRATOR_MIGRATIONS_DIR": str(migrations)})
    return result.returncode, json.loads(result.stdout)


def _rules(findings: list[dict[str, Any]]) -> set[str]:
    return {f["rule"] for f in findings}


@pytest.fixture
def migrations(tmp_path: Path) -> Path:
    return copy_migrations(tmp_path)


def test_the_real_chain_is_clean() -> None:
    result = run_migrator("lint", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    doc = json.loads(result.stdout)
    assert doc["outcome"] == "success"
    assert doc["revisions"] >= 2 and doc["failures"] == []
    # 0001 creates its tables and their indexes in one transaction: squawk knows the plain
    # CREATE INDEX cannot block anyone there, so it needs no opt-out.
    assert doc["allowed"] == []


@pytest.mark.parametrize("case", UNSAFE, ids=list(UNSAFE))
def test_unsafe_revision_fails(case: str, migrations: Path) -> None:
    body, rule = UNSAFE[case]
    rev = fresh_id(migrations)
    path = write_revision(migrations, rev, body)
    code, doc = _lint(migrations)
    assert code == LINT_EXIT, doc
    assert doc["error"] == "lint" and doc["exit_code"] == LINT_EXIT
    assert rule in _rules(doc["failures"])
    hit = next(f for f in doc["failures"] if f["rule"] == rule)
    assert hit["revision"] == rev and hit["file"].endswith(path.name)
    assert hit["line"] is not None
    assert path.read_text().splitlines()[hit["line"] - 1].startswith("    op.")
    assert all(f["revision"] == rev for f in doc["failures"])


def test_not_null_through_a_check_validated_in_an_earlier_revision_passes(
        migrations: Path) -> None:
    write_revision(migrations, fresh_id(migrations), """
op.execute("ALTER TABLE users ADD CONSTRAINT users_display_name_nn "
           "CHECK (display_name IS NOT NULL) NOT VALID")
""")
    write_revision(migrations, fresh_id(migrations), """
op.execute("ALTER TABLE users VALIDATE CONSTRAINT users_display_name_nn")
op.alter_column("users", "display_name", nullable=False)
# lint: allow ban-drop-constraint -- redundant once the column is NOT NULL
op.drop_constraint("users_display_name_nn", "users")
""")
    code, doc = _lint(migrations)
    assert code == 0, doc["failures"]
    assert [(f["rule"], f["allowed"]) for f in doc["allowed"]] == [
        ("ban-drop-constraint", "redundant once the column is NOT NULL")]


def test_foreign_key_not_valid_then_validated_later_passes(migrations: Path) -> None:
    write_revision(migrations, fresh_id(migrations), """
op.execute("ALTER TABLE sessions ADD CONSTRAINT sessions_user_fk2 "
           "FOREIGN KEY (user_id) REFERENCES users (id) NOT VALID")
""")
    write_revision(migrations, fresh_id(migrations), """
op.execute("ALTER TABLE sessions VALIDATE CONSTRAINT sessions_user_fk2")
""")
    code, doc = _lint(migrations)
    assert code == 0, doc["failures"]


def test_reviewed_opt_out_is_honoured(migrations: Path) -> None:
    write_revision(migrations, fresh_id(migrations), """
# lint: allow require-concurrent-index-creation -- users has 40 rows in every environment
op.create_index("users_display_name_idx", "users", ["display_name"])
""")
    code, doc = _lint(migrations)
    assert code == 0, doc["failures"]
    assert _rules(doc["allowed"]) == {"require-concurrent-index-creation"}
    assert doc["allowed"][0]["allowed"] == "users has 40 rows in every environment"


def test_opt_out_covers_only_its_own_call(migrations: Path) -> None:
    write_revision(migrations, fresh_id(migrations), """
# lint: allow require-concurrent-index-creation -- users is small
op.create_index("users_display_name_idx", "users", ["display_name"])
op.create_index("bookmarks_title_idx", "bookmarks", ["title"])
""")
    code, doc = _lint(migrations)
    assert code == LINT_EXIT
    assert [f["sql"] for f in doc["failures"]] == [
        "CREATE INDEX bookmarks_title_idx ON bookmarks (title);"]


def test_opt_out_without_a_reason_is_refused(migrations: Path) -> None:
    write_revision(migrations, fresh_id(migrations), """
# lint: allow require-concurrent-index-creation
op.create_index("users_display_name_idx", "users", ["display_name"])
""")
    code, doc = _lint(migrations)
    assert code == LINT_EXIT
    assert _rules(doc["failures"]) == {"allow-without-reason",
                                       "require-concurrent-index-creation"}


def test_stale_opt_out_is_an_error(migrations: Path) -> None:
    write_revision(migrations, fresh_id(migrations), """
# lint: allow require-concurrent-index-creation -- it was a plain index once
online.create_index("users_display_name_idx", "users", ["display_name"])
""")
    code, doc = _lint(migrations)
    assert code == LINT_EXIT
    assert _rules(doc["failures"]) == {"unused-allow"}


def test_text_output_points_at_the_revision_line(migrations: Path) -> None:
    path = write_revision(migrations, fresh_id(migrations), """
op.alter_column("bookmarks", "title", type_=sa.Text())
""")
    result = run_migrator("lint", "--log-format", "text",
                          env={"MIGRATOR_MIGRATIONS_DIR": str(migrations)})
    assert result.returncode == LINT_EXIT
    assert f"migrations/versions/{path.name}:" in result.stderr  # the failure, on stderr
    assert "changing-column-type" in result.stderr
    assert "ALTER TABLE bookmarks ALTER COLUMN title TYPE TEXT" in result.stderr


def test_a_revision_that_cannot_render_offline_fails(migrations: Path) -> None:
    write_revision(migrations, fresh_id(migrations), """
count = op.get_bind().execute(sa.text("SELECT count(*) FROM users")).scalar()
""")
    code, doc = _lint(migrations)
    assert code == LINT_EXIT
    assert _rules(doc["failures"]) == {"render-failed"}
