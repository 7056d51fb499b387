"""The revision chain read from files, and where a database stands against it (no database)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic.config import Config
from alembic.script import ScriptDirectory

from migrator.chain import Chain, load_chain
from migrator.config import default_migrations_dir
from migrator.errors import ConfigError, UnknownRevision
from migrator.history import Applied, DbState
from migrator.status import assess


def _write(folder: Path, rev: str, down: str | None, body: str = "") -> None:
    versions = folder / "versions"
    versions.mkdir(parents=True, exist_ok=True)
    (versions / f"{rev}_x.py").write_text(
        f'revision: str = "{rev}"\ndown_revision: str | None = '
        f'{down!r}\n{body}\ndef upgrade() -> None:\n    pass\n'
    )


def test_chain_agrees_with_alembic() -> None:
    chain = load_chain(default_migrations_dir())
    config = Config()
    config.set_main_option("script_location", str(default_migrations_dir()))
    script = ScriptDirectory.from_config(config)
    walked = [r.revision for r in script.walk_revisions()]
    assert chain.ids() == list(reversed(walked))
    assert chain.head == script.get_current_head()


def test_chain_orders_by_links_not_file_names(tmp_path: Path) -> None:
    _write(tmp_path, "b", "c")
    _write(tmp_path, "c", None)
    _write(tmp_path, "a", "b")
    assert load_chain(tmp_path).ids() == ["c", "b", "a"]


def test_branches_are_refused(tmp_path: Path) -> None:
    _write(tmp_path, "0001", None)
    _write(tmp_path, "0002", "0001")
    _write(tmp_path, "0003", "0001")
    with pytest.raises(ConfigError, match="branches: 0002, 0003 all follow 0001"):
        load_chain(tmp_path)


def test_orphans_are_refused(tmp_path: Path) -> None:
    _write(tmp_path, "0001", None)
    _write(tmp_path, "0005", "0004")
    with pytest.raises(ConfigError, match="not reachable from base: 0005"):
        load_chain(tmp_path)


def test_a_revision_that_revises_itself_is_refused_naming_the_file(tmp_path: Path) -> None:
    # What `alembic revision --rev-id 0002` writes when 0002 is the head already.
    _write(tmp_path, "0001", None)
    _write(tmp_path, "0002", "0001")
    (tmp_path / "versions" / "0002_again.py").write_text(
        'revision: str = "0002"\ndown_revision: str | None = "0002"\n')
    with pytest.raises(ConfigError, match=r"0002_again.py revises itself") as refused:
        load_chain(tmp_path)
    assert "--rev-id 0003" in refused.value.next_step


def test_one_id_in_two_files_is_refused_naming_both(tmp_path: Path) -> None:
    _write(tmp_path, "0001", None)
    _write(tmp_path, "0002", "0001")
    (tmp_path / "versions" / "0002_y.py").write_text(
        'revision = "0002"\ndown_revision = "0001"\n')
    with pytest.raises(ConfigError, match=r"'0002' is used by 2 files: 0002_x.py, 0002_y.py"):
        load_chain(tmp_path)


def test_a_loop_away_from_base_is_refused_naming_it(tmp_path: Path) -> None:
    _write(tmp_path, "0001", None)
    _write(tmp_path, "a", "b")
    _write(tmp_path, "b", "a")
    with pytest.raises(ConfigError, match=r"has a loop: a -> b -> a \(a_x.py, b_x.py\)"):
        load_chain(tmp_path)


def test_checksum_ignores_line_endings_only(tmp_path: Path) -> None:
    _write(tmp_path, "0001", None)
    path = tmp_path / "versions" / "0001_x.py"
    before = load_chain(tmp_path).revisions[0].checksum
    path.write_bytes(path.read_bytes().replace(b"\n", b"\r\n"))
    assert load_chain(tmp_path).revisions[0].checksum == before
    path.write_text(path.read_text() + "# edited\n")
    assert load_chain(tmp_path).revisions[0].checksum != before


def _chain(tmp_path: Path, *ids: str) -> Chain:
    down = None
    for rev in ids:
        _write(tmp_path, rev, down)
        down = rev
    return load_chain(tmp_path)


def _applied(chain: Chain, *extra: tuple[str, str]) -> dict[str, Applied]:
    now = datetime.now(UTC)
    rows = {r.id: Applied(r.id, r.down, r.checksum, now, 1, "t") for r in chain.revisions}
    for rev, down in extra:
        rows[rev] = Applied(rev, down, "x", now, 1, "newer")
    return rows


def test_behind_at_head(tmp_path: Path) -> None:
    chain = _chain(tmp_path, "0001", "0002", "0003")
    status = assess(chain, DbState("0001", _applied(chain), True))
    assert status.pending == ["0002", "0003"] and status.schema_version == 1
    assert assess(chain, DbState(None, {}, False)).pending == ["0001", "0002", "0003"]
    at_head = assess(chain, DbState("0003", _applied(chain), True))
    assert at_head.at_head and at_head.schema_version == 3 and not at_head.ahead


def test_database_ahead_is_proven_by_the_history(tmp_path: Path) -> None:
    chain = _chain(tmp_path, "0001", "0002")
    state = DbState("0004", _applied(chain, ("0003", "0002"), ("0004", "0003")), True)
    status = assess(chain, state)
    assert status.ahead == ["0003", "0004"] and status.pending == []
    assert status.schema_version == 4


def test_unknown_revision_not_provably_ahead(tmp_path: Path) -> None:
    chain = _chain(tmp_path, "0001", "0002")
    with pytest.raises(UnknownRevision):  # no record of it at all
        assess(chain, DbState("0009", _applied(chain), True))
    with pytest.raises(UnknownRevision):  # built on 0001, not on our head: a diverged line
        assess(chain, DbState("0009", _applied(chain, ("0009", "0001")), True))


def test_changed_and_unrecorded_revisions(tmp_path: Path) -> None:
    chain = _chain(tmp_path, "0001", "0002")
    rows = _applied(chain)
    rows["0001"] = Applied("0001", None, "old", rows["0001"].applied_at, 1, "t")
    del rows["0002"]
    status = assess(chain, DbState("0002", rows, True))
    assert list(status.changed) == ["0001"]
    assert status.changed["0001"][0] == "old"
    assert status.unrecorded == ["0002"]
