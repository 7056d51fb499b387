"""The statement classifier and the offline plan, without a database."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from bench.chain import copy_migrations, fresh_id, write_revision
from migrator import plan
from migrator.chain import load_chain
from migrator.config import default_migrations_dir, load_settings
from migrator.plan import Context, classify, normalize, split_statements

# sql, kind, lock on the table, rewrite, scan, risk
CASES = [
    ("CREATE TABLE notes (id bigint PRIMARY KEY, body text)",
     "CREATE TABLE", None, False, False, "none"),
    ("CREATE TABLE notes (id bigint, user_id uuid REFERENCES users (id))",
     "CREATE TABLE", "SHARE ROW EXCLUSIVE", False, False, "low"),
    ("CREATE INDEX users_name_idx ON users (display_name)",
     "CREATE INDEX", "SHARE", False, True, "high"),
    ("CREATE UNIQUE INDEX users_email_key ON public.users (email)",
     "CREATE UNIQUE INDEX", "SHARE", False, True, "high"),
    ('CREATE INDEX CONCURRENTLY IF NOT EXISTS "users_name_idx" ON "users" (display_name)',
     "CREATE INDEX CONCURRENTLY", "SHARE UPDATE EXCLUSIVE", False, True, "low"),
    ("CREATE UNIQUE INDEX CONCURRENTLY users_email_key ON users (email)",
     "CREATE UNIQUE INDEX CONCURRENTLY", "SHARE UPDATE EXCLUSIVE", False, True, "low"),
    ("DROP INDEX users_name_idx", "DROP INDEX", "ACCESS EXCLUSIVE", False, False, "medium"),
    ('DROP INDEX CONCURRENTLY IF EXISTS "users_name_idx"',
     "DROP INDEX CONCURRENTLY", "SHARE UPDATE EXCLUSIVE", False, False, "low"),
    ("ALTER TABLE users ADD COLUMN nickname text",
     "ADD COLUMN", "ACCESS EXCLUSIVE", False, False, "low"),
    ("ALTER TABLE users ADD COLUMN score integer DEFAULT 0 NOT NULL",
     "ADD COLUMN", "ACCESS EXCLUSIVE", False, False, "low"),
    ("ALTER TABLE users ADD COLUMN token uuid DEFAULT gen_random_uuid()",
     "ADD COLUMN", "ACCESS EXCLUSIVE", True, False, "high"),
    ("ALTER TABLE users ADD COLUMN seq bigserial",
     "ADD COLUMN", "ACCESS EXCLUSIVE", True, False, "high"),
    ("ALTER TABLE users ADD COLUMN age integer NOT NULL",
     "ADD COLUMN", "ACCESS EXCLUSIVE", False, False, "high"),
    ("ALTER TABLE users ALTER COLUMN email TYPE text",
     "ALTER COLUMN TYPE", "ACCESS EXCLUSIVE", True, False, "high"),
    ("ALTER TABLE users ALTER COLUMN display_name SET NOT NULL",
     "SET NOT NULL", "ACCESS EXCLUSIVE", False, True, "high"),
    ("ALTER TABLE users ALTER COLUMN display_name DROP NOT NULL",
     "DROP NOT NULL", "ACCESS EXCLUSIVE", False, False, "low"),
    ("ALTER TABLE users ADD CONSTRAINT users_email_len CHECK (length(email) < 300)",
     "ADD CHECK", "ACCESS EXCLUSIVE", False, True, "high"),
    ("ALTER TABLE users ADD CONSTRAINT users_email_len CHECK (length(email) < 300) NOT VALID",
     "ADD CHECK NOT VALID", "ACCESS EXCLUSIVE", False, False, "low"),
    ("ALTER TABLE bookmarks ADD CONSTRAINT b_fk FOREIGN KEY (user_id) REFERENCES users (id)",
     "ADD FOREIGN KEY", "SHARE ROW EXCLUSIVE", False, True, "high"),
    ("ALTER TABLE bookmarks ADD CONSTRAINT b_fk FOREIGN KEY (user_id) REFERENCES users (id) "
     "NOT VALID", "ADD FOREIGN KEY NOT VALID", "SHARE ROW EXCLUSIVE", False, False, "low"),
    ("ALTER TABLE bookmarks VALIDATE CONSTRAINT b_fk",
     "VALIDATE CONSTRAINT", "SHARE UPDATE EXCLUSIVE", False, True, "low"),
    ("ALTER TABLE users ADD CONSTRAINT users_email_key UNIQUE (email)",
     "ADD UNIQUE", "ACCESS EXCLUSIVE", False, True, "high"),
    ("ALTER TABLE users ADD CONSTRAINT users_email_key UNIQUE USING INDEX users_email_idx2",
     "ADD UNIQUE USING INDEX", "ACCESS EXCLUSIVE", False, False, "low"),
    ("ALTER TABLE users DROP COLUMN profile_picture",
     "DROP COLUMN", "ACCESS EXCLUSIVE", False, False, "high"),
    ("ALTER TABLE users RENAME COLUMN email TO mail", "RENAME", "ACCESS EXCLUSIVE", False,
     False, "high"),
    ("DROP TABLE IF EXISTS bookmarks", "DROP TABLE", "ACCESS EXCLUSIVE", False, False, "high"),
    ("UPDATE users SET display_name = email", "UPDATE", "ROW EXCLUSIVE", False, True, "medium"),
    ("UPDATE users SET display_name = email WHERE display_name IS NULL",
     "UPDATE", "ROW EXCLUSIVE", False, False, "medium"),
    ("DELETE FROM sessions WHERE expires_at < now()",
     "DELETE", "ROW EXCLUSIVE", False, False, "medium"),
    ("INSERT INTO users (google_id, email) VALUES ('g', 'e')",
     "INSERT", "ROW EXCLUSIVE", False, False, "low"),
    ("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)",
     "ALEMBIC VERSION TABLE", None, False, False, "none"),
    ("UPDATE alembic_version SET version_num='0002' WHERE alembic_version.version_num = '0001'",
     "ALEMBIC VERSION STAMP", "ROW EXCLUSIVE", False, False, "none"),
    ("INSERT INTO alembic_version (version_num) VALUES ('0001')",
     "ALEMBIC VERSION STAMP", "ROW EXCLUSIVE", False, False, "none"),
    ("CREATE EXTENSION pg_trgm", "CREATE", None, False, False, "unknown"),
]


@pytest.mark.parametrize(("sql", "kind", "lock", "rewrite", "scan", "risk"), CASES,
                         ids=[c[0][:60] for c in CASES])
def test_each_statement_kind(sql: str, kind: str, lock: str | None, rewrite: bool,
                             scan: bool, risk: str) -> None:
    effect = classify(sql + ";", Context())
    modes = list(effect.locks.values())
    strongest = max(modes, key=plan.LOCKS.index) if modes else None
    assert (effect.kind, strongest, effect.rewrite, effect.scan, effect.risk) == (
        kind, lock, rewrite, scan, risk)


def test_foreign_key_locks_both_tables() -> None:
    effect = classify("ALTER TABLE bookmarks ADD FOREIGN KEY (user_id) REFERENCES users (id)",
                      Context())
    assert effect.locks == {"bookmarks": "SHARE ROW EXCLUSIVE", "users": "SHARE ROW EXCLUSIVE"}


def test_alter_table_with_several_actions_takes_the_strongest() -> None:
    effect = classify("ALTER TABLE users ADD COLUMN a text, ALTER COLUMN email TYPE text, "
                      "ADD COLUMN b numeric(10, 2)", Context())
    assert effect.kind == "ADD COLUMN, ALTER COLUMN TYPE"
    assert (effect.rewrite, effect.risk) == (True, "high")
    assert effect.locks == {"users": "ACCESS EXCLUSIVE"}


def test_set_not_null_after_a_validated_check_does_not_scan() -> None:
    ctx = Context()
    classify("ALTER TABLE users ADD CONSTRAINT users_name_nn CHECK (display_name IS NOT NULL) "
             "NOT VALID", ctx)
    before = classify("ALTER TABLE users ALTER COLUMN display_name SET NOT NULL", ctx)
    assert before.scan and "unproven_not_null" in before.flags
    classify("ALTER TABLE users VALIDATE CONSTRAINT users_name_nn", ctx)
    after = classify('ALTER TABLE "users" ALTER COLUMN "display_name" SET NOT NULL', ctx)
    assert (after.scan, after.risk, after.flags) == (False, "low", set())
    # another column is not proven by it
    other = classify("ALTER TABLE users ALTER COLUMN profile_picture SET NOT NULL", ctx)
    assert other.scan


def test_splitting_respects_quotes_comments_and_dollar_quotes() -> None:
    sql = ("-- a comment; not a statement\nSELECT 'a;b';\n"
           "/* x; y */ CREATE FUNCTION f() RETURNS int AS $body$ SELECT 1; $body$ LANGUAGE sql;"
           "\nSELECT \"odd;name\" FROM t")
    parts = [text for _, text in split_statements(sql)]
    assert [normalize(p) for p in parts] == [
        "SELECT 'a;b'",
        "CREATE FUNCTION f() RETURNS int AS $body$ SELECT 1; $body$ LANGUAGE sql",
        'SELECT "odd;name" FROM t',
    ]


def _offline(migrations: Path | None = None) -> tuple[list[plan.RenderedRevision], Any]:
    env = {"MIGRATOR_MIGRATIONS_DIR": str(migrations)} if migrations else {}
    settings = load_settings(env=env, need_database=False)
    chain = load_chain(settings.migrations_dir)
    rendered = plan.render(settings, list(chain.revisions))
    return rendered, plan.plan_data(rendered)


def test_plan_of_the_real_chain() -> None:
    _, data = _offline()
    # The chain as it is (a developer's own next revisions included); 0001 and 0002 open it.
    assert [r["revision"] for r in data["revisions"]] == load_chain(default_migrations_dir()).ids()
    first, second = data["revisions"][:2]
    assert (first["revision"], second["revision"]) == ("0001", "0002")
    # 0001 only touches tables it creates: nothing the app could be waiting on
    assert first["risk"] == "none"
    assert {s["kind"] for s in first["statements"]} >= {
        "ALEMBIC VERSION TABLE", "CREATE TABLE", "CREATE INDEX", "CREATE UNIQUE INDEX",
        "ALEMBIC VERSION STAMP"}
    assert not any(s["outside_transaction"] for s in first["statements"])
    build = next(s for s in second["statements"] if s["kind"] == "CREATE INDEX CONCURRENTLY")
    assert build["table"] == "sessions"
    assert build["lock"] == "SHARE UPDATE EXCLUSIVE"
    assert build["outside_transaction"] and not build["rewrite"]
    assert build["source_line"] is not None
    stamp = second["statements"][-1]
    assert stamp["kind"] == "ALEMBIC VERSION STAMP" and not stamp["outside_transaction"]
    assert not [s for r in (first, second) for s in r["statements"] if s["risk"] == "high"]


def test_statements_point_at_the_line_that_emitted_them(tmp_path: Path) -> None:
    migrations = copy_migrations(tmp_path)
    path = write_revision(migrations, fresh_id(migrations), """
op.add_column("users", sa.Column("nickname", sa.Text()))
online.create_index("users_nickname_idx", "users", ["nickname"])
op.execute(
    "UPDATE users SET nickname = display_name"
)
""")
    rendered, _ = _offline(migrations)
    lines = path.read_text().splitlines()
    statements = rendered[-1].statements
    by_kind = {s.effect.kind: s for s in statements}
    assert "op.add_column" in lines[by_kind["ADD COLUMN"].source_lines[0] - 1]
    assert "create_index" in lines[by_kind["CREATE INDEX CONCURRENTLY"].source_lines[0] - 1]
    assert "op.execute(" in lines[by_kind["UPDATE"].source_lines[0] - 1]
    # The drop of an INVALID leftover is conditional: offline it is a note, never a statement.
    assert [s.outside_transaction for s in statements] == [False, True, False, False]
    assert any("DROP INDEX CONCURRENTLY" in note and "only if" in note
               for note in rendered[-1].notes)
    assert by_kind["ADD COLUMN"].transaction != by_kind["UPDATE"].transaction


def test_text_table_lists_every_statement() -> None:
    _, data = _offline()
    data.update(source="offline", current=None, head=load_chain(default_migrations_dir()).head)
    text = plan.format_text(data)
    assert "CREATE INDEX CONCURRENTLY" in text and "SHARE UPDATE EXCLUSIVE" in text
    rows = [line for line in text.splitlines() if re.match(r"^\s+\d+\s+(in|out)\s", line)]
    assert len(rows) == data["summary"]["statements"]


def test_a_revision_that_cannot_render_is_reported_not_raised(tmp_path: Path) -> None:
    migrations = copy_migrations(tmp_path)
    write_revision(migrations, fresh_id(migrations),
                   'op.get_bind().execute(sa.text("SELECT 1")).scalar()')
    last = fresh_id(migrations, "u")
    write_revision(migrations, last, 'op.add_column("users", sa.Column("n", sa.Text()))')
    _, data = _offline(migrations)
    broken, after = data["revisions"][-2:]
    assert broken["error"] and broken["risk"] == "unknown" and broken["statements"] == []
    assert after["error"] is None and after["statements"][0]["kind"] == "ADD COLUMN"
    data.update(source="offline", current=None, head=last)
    assert "!! cannot render: " in plan.format_text(data)


def test_set_and_drop_default_are_catalog_only() -> None:
    for sql, kind in (("ALTER TABLE users ALTER COLUMN email SET DEFAULT 'x'", "SET DEFAULT"),
                      ("ALTER TABLE users ALTER email DROP DEFAULT", "DROP DEFAULT")):
        effect = classify(sql, Context())
        assert (effect.kind, effect.risk, effect.rewrite) == (kind, "low", False)
