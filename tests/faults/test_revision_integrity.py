"""What the database says against what the files say: edited revisions, a database ahead
of this image (a rollback after a deploy), and revisions nobody can vouch for."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from faultkit import REPO_HEAD, Migrator, add_revision, current, migrator_env, sql


def test_edited_applied_revision_is_refused_until_repaired(
        at_head: str, migrations: Path, spawn: Callable[..., Migrator]) -> None:
    path = add_revision(migrations, "c01", ["ALTER TABLE users ADD COLUMN checked text"])
    env = migrator_env(at_head, migrations)
    assert spawn("upgrade", env=env).wait() == 0
    recorded = sql(at_head, "SELECT checksum FROM yomu_migrate_history WHERE revision = 'c01'")
    path.write_text(path.read_text() + "\n# edited after it ran\n")

    for verb in ("upgrade", "check"):
        refused = spawn(verb, env=env)
        assert refused.wait() == 10, refused.output
        failed = refused.event("run_failed")
        assert failed["outcome"] == "failure.checksum" and "c01" in failed["message"]
    assert sql(at_head, "SELECT checksum FROM yomu_migrate_history WHERE revision = 'c01'") \
        == recorded

    repaired = spawn("upgrade", "--repair", env=env)
    assert repaired.wait() == 0, repaired.output
    assert "checksum_recorded" in repaired.events()
    assert sql(at_head, "SELECT checksum FROM yomu_migrate_history WHERE revision = 'c01'") \
        != recorded
    again = spawn("upgrade", env=env)
    assert again.wait() == 0 and again.event("run_finished")["outcome"] == "noop"


@pytest.fixture
def ahead(at_head: str, migrations: Path, spawn: Callable[..., Migrator]) -> str:
    """A newer image (the repo's migrations plus n099) has migrated the database."""
    add_revision(migrations, "n099", ["ALTER TABLE users ADD COLUMN newer_image text"])
    newer = spawn("upgrade", env=migrator_env(at_head, migrations))
    assert newer.wait() == 0, newer.output
    assert current(at_head) == "n099"
    return at_head


def test_old_image_accepts_a_database_ahead_of_it(
        ahead: str, spawn: Callable[..., Migrator]) -> None:
    old = spawn("upgrade", env=migrator_env(ahead))
    assert old.wait() == 0, old.output
    finished = old.event("run_finished")
    assert finished["outcome"] == "noop"
    assert "ahead" in finished["message"] and "n099" in finished["message"]
    assert finished["result"]["ahead"] == ["n099"]
    check = spawn("check", env=migrator_env(ahead))
    assert check.wait() == 0, check.output
    assert check.event("run_finished")["result"]["ahead"] == ["n099"]
    assert current(ahead) == "n099"  # nothing was reverted


@pytest.mark.parametrize("how", ["history-row-missing", "foreign-revision"])
def test_unknown_revision_not_provably_ahead_is_refused(
        how: str, ahead: str, spawn: Callable[..., Migrator]) -> None:
    if how == "history-row-missing":  # e.g. stamped by hand, or by plain Alembic
        sql(ahead, "DELETE FROM yomu_migrate_history WHERE revision = 'n099'")
    else:  # a revision from another project's chain
        sql(ahead, "UPDATE alembic_version SET version_num = 'f00dcafe'")
    for verb in ("upgrade", "check"):
        refused = spawn(verb, env=migrator_env(ahead))
        assert refused.wait() == 11, refused.output
        failed = refused.event("run_failed")
        assert failed["outcome"] == "failure.unknown_revision"
        assert REPO_HEAD in failed["message"]
