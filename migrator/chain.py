"""The revision chain read straight from the files, without importing Alembic.

A no-op run at head must be fast (importing Alembic and SQLAlchemy alone costs ~0.4 s), so
the chain, its head and each file's checksum come from reading the revision files as text.
We deploy one linear chain: a branch would make "the" head and the schema version ambiguous,
so it is refused here, before any database is touched.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from migrator.errors import ConfigError

_REVISION = re.compile(r"^revision\s*(?::[^=]*)?=\s*['\"]([^'\"]+)['\"]", re.MULTILINE)
_DOWN = re.compile(
    r"^down_revision\s*(?::[^=]*)?=\s*(?:None|['\"]([^'\"]+)['\"])", re.MULTILINE
)


@dataclass(frozen=True)
class Revision:
    id: str
    down: str | None
    path: Path
    checksum: str


@dataclass(frozen=True)
class Chain:
    """Revisions from base to head."""

    revisions: tuple[Revision, ...]

    @property
    def head(self) -> str | None:
        return self.revisions[-1].id if self.revisions else None

    def ids(self) -> list[str]:
        return [r.id for r in self.revisions]

    def get(self, rev_id: str) -> Revision | None:
        return next((r for r in self.revisions if r.id == rev_id), None)

    def position(self, rev_id: str | None) -> int:
        """1-based place in the chain (0 = nothing applied): the schema version number."""
        return 0 if rev_id is None else self.ids().index(rev_id) + 1

    def after(self, rev_id: str | None, until: str | None = None) -> list[Revision]:
        """The revisions after `rev_id` up to and including `until` (default head)."""
        start = self.position(rev_id)
        end = len(self.revisions) if until is None else self.position(until)
        return list(self.revisions[start:end])


def checksum(path: Path) -> str:
    """sha256 of the file with line endings normalised, so a checkout on Windows agrees."""
    return hashlib.sha256(path.read_bytes().replace(b"\r\n", b"\n")).hexdigest()


def read_revision(path: Path) -> Revision:
    source = path.read_text(encoding="utf-8")
    rev, down = _REVISION.search(source), _DOWN.search(source)
    if not rev or not down:
        raise ConfigError(
            f"{path.name} is not an Alembic revision file (no `revision =`/`down_revision =`)",
            "move it out of migrations/versions/ or fix its header",
        )
    return Revision(rev.group(1), down.group(1), path, checksum(path))


def load_chain(migrations_dir: Path) -> Chain:
    files = sorted((migrations_dir / "versions").glob("*.py"))
    revisions = [read_revision(p) for p in files if not p.name.startswith("_")]
    _refuse_reused_ids(revisions)
    by_down: dict[str | None, list[Revision]] = {}
    for r in revisions:
        by_down.setdefault(r.down, []).append(r)
    for parent, children in by_down.items():
        if len(children) > 1:
            names = ", ".join(sorted(c.id for c in children))
            raise ConfigError(
                f"the migration chain branches: {names} all follow {parent or 'base'}",
                "make them one line: set each new revision's down_revision to the one before it",
            )
    ordered: list[Revision] = []
    current: str | None = None
    # Unique ids and no branches make a walk from base visit each revision once at most;
    # the bound keeps it so should either check ever be loosened.
    while current in by_down and len(ordered) < len(revisions):
        nxt = by_down[current][0]
        ordered.append(nxt)
        current = nxt.id
    if len(ordered) != len(revisions):
        lost = sorted({r.id for r in revisions} - {r.id for r in ordered})
        loop = _loop(revisions, lost)
        if loop:
            raise ConfigError(
                f"the migration chain has a loop: {' -> '.join(r.id for r in loop)} -> "
                f"{loop[0].id} ({', '.join(r.path.name for r in loop)})",
                "fix their down_revision so every revision follows the one before it, "
                "back to the first one (down_revision = None)",
            )
        raise ConfigError(
            f"revisions not reachable from base: {', '.join(lost)}",
            "fix their down_revision so every revision follows the one before it",
        )
    return Chain(tuple(ordered))


def _refuse_reused_ids(revisions: list[Revision]) -> None:
    """Two files with one id (`alembic revision --rev-id` with an id already taken writes a
    file that revises itself) would make the chain ambiguous, or a walk that never ends."""
    for r in revisions:
        if r.down == r.id:
            raise ConfigError(
                f"{r.path.name} revises itself (revision and down_revision are both "
                f"{r.id!r}): `alembic revision --rev-id` was given an id that is taken",
                f"delete {r.path.name} and draft it again with a free id (--rev-id "
                f"{_next_id(revisions)})",
            )
    by_id: dict[str, list[Revision]] = {}
    for r in revisions:
        by_id.setdefault(r.id, []).append(r)
    for rev_id, same in sorted(by_id.items()):
        if len(same) > 1:
            names = ", ".join(r.path.name for r in same)
            raise ConfigError(
                f"revision id {rev_id!r} is used by {len(same)} files: {names}",
                f"give the newer one a free id (e.g. {_next_id(revisions)}) in its "
                "`revision =` and file name, and make down_revision the one before it",
            )


def _loop(revisions: list[Revision], among: list[str]) -> list[Revision]:
    """A cycle of down_revision links among the unreachable revisions, or []."""
    by_id = {r.id: r for r in revisions}
    for start in among:
        seen: list[Revision] = []
        rev: Revision | None = by_id[start]
        while rev is not None and rev not in seen:
            seen.append(rev)
            rev = by_id.get(rev.down) if rev.down is not None else None
        if rev is not None:
            return seen[seen.index(rev):]
    return []


def _next_id(revisions: list[Revision]) -> str:
    """The next free four-digit id, as docs/writing-migrations.md numbers revisions."""
    numbers = [int(r.id) for r in revisions if r.id.isdigit()]
    return f"{max(numbers, default=0) + 1:04d}"
