"""Where the database stands against this image's chain: behind, at head, or ahead.

Pure logic over the chain read from files and the state read from the database, so every
verb (upgrade, status, check) agrees, and the rules are unit-tested without a server.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from migrator.chain import Chain
from migrator.errors import UnknownRevision
from migrator.history import DbState


@dataclass(frozen=True)
class Status:
    current: str | None
    head: str | None
    applied: list[str]
    pending: list[str]
    # Revisions the database has beyond our head (an image rolled back after a deploy).
    ahead: list[str]
    # Applied revisions whose file differs from what ran: {revision: (recorded, file)}.
    changed: dict[str, tuple[str, str]] = field(default_factory=dict)
    # Applied revisions with no checksum recorded yet (applied by plain Alembic).
    unrecorded: list[str] = field(default_factory=list)

    @property
    def at_head(self) -> bool:
        return not self.pending

    @property
    def schema_version(self) -> int:
        """The database revision's 1-based position in the chain (0 = empty)."""
        return len(self.applied) + len(self.ahead)

    def as_dict(self) -> dict[str, object]:
        return {
            "current": self.current,
            "head": self.head,
            "pending": self.pending,
            "ahead": self.ahead,
            "at_head": self.at_head,
            "schema_version": self.schema_version,
            "changed_revisions": sorted(self.changed),
            "unrecorded_revisions": self.unrecorded,
        }


def path_ahead(chain: Chain, state: DbState) -> list[str] | None:
    """The revisions from our head up to the database's, if our record proves it is ahead."""
    path: list[str] = []
    rev = state.current
    while rev is not None and chain.get(rev) is None:
        row = state.applied.get(rev)
        if row is None or rev in path:
            return None
        path.append(rev)
        rev = row.down_revision
    if rev != chain.head:
        return None
    return list(reversed(path))


def assess(chain: Chain, state: DbState) -> Status:
    if state.current is None or chain.get(state.current) is not None:
        applied = chain.ids()[: chain.position(state.current)]
        pending = chain.ids()[len(applied):]
        ahead: list[str] = []
    else:
        maybe_ahead = path_ahead(chain, state)
        if maybe_ahead is None:
            raise UnknownRevision(
                f"the database is at revision {state.current}, which this image does not know "
                f"and cannot prove to be ahead of its head {chain.head or '(none)'}"
            )
        applied, pending, ahead = chain.ids(), [], maybe_ahead
    changed: dict[str, tuple[str, str]] = {}
    unrecorded: list[str] = []
    for rev_id in applied:
        rev = chain.get(rev_id)
        assert rev is not None
        row = state.applied.get(rev_id)
        if row is None:
            unrecorded.append(rev_id)
        elif row.checksum != rev.checksum:
            changed[rev_id] = (row.checksum, rev.checksum)
    return Status(state.current, chain.head, applied, pending, ahead, changed, unrecorded)
