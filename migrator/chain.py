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
    while current in by_down:
        nxt = by_down[current][0]
        ordered.append(nxt)
        current = nxt.id
    if len(ordered) != len(revisions):
        lost = sorted({r.id for r in revisions} - {r.id for r in ordered})
        raise ConfigError(
            f"revisions not reachable from base: {', '.join(lost)}",
            "fix their down_revision so every revision follows the one before it",
        )
    return Chain(tuple(ordered))
