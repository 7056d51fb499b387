"""Migration folders of our own: the repo's chain copied, revisions added after its head.

The benchmarks grow the chain to hundreds of revisions, and the lint and online-index tests
add one revision that does the thing under test; both need a folder they may write to.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from migrator.chain import load_chain

REPO = Path(__file__).resolve().parent.parent
MIGRATIONS = REPO / "migrations"

_TEMPLATE = '''"""{doc}"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from migrator import online

revision: str = "{rev}"
down_revision: str | None = "{down}"
branch_labels = None
depends_on = None


def upgrade() -> None:
{body}


def downgrade() -> None:
    pass
'''


def copy_migrations(parent: Path) -> Path:
    """The repo's migrations/ (env.py, versions/) copied into `parent`."""
    target = parent / "migrations"
    shutil.copytree(MIGRATIONS, target, ignore=shutil.ignore_patterns("__pycache__"))
    return target


def fresh_id(migrations: Path, stem: str = "t") -> str:
    """An id no revision in the folder has: `stem` and a number. Never a fixed one: the
    developer's own next revisions (0003, 0004, ...) are in the copied folder too."""
    taken = set(load_chain(migrations).ids())
    return next(rev for n in range(1, 10_000) if (rev := f"{stem}{n:03d}") not in taken)


def write_revision(migrations: Path, rev: str, body: str, doc: str = "A test revision.",
                   down: str | None = None) -> Path:
    """Revision `rev` after the folder's head (or `down`); `body` is upgrade()'s Python."""
    chain = load_chain(migrations)
    if chain.get(rev) is not None:
        raise ValueError(f"revision {rev} is in {migrations} already: use fresh_id()")
    down = down or chain.head
    lines = "\n".join(f"    {line}" if line else "" for line in body.strip("\n").splitlines())
    path = migrations / "versions" / f"{rev}_{doc.split('.')[0].lower().replace(' ', '_')[:30]}.py"
    path.write_text(_TEMPLATE.format(doc=doc, rev=rev, down=down, body=lines or "    pass"))
    return path


def generate(migrations: Path, count: int) -> list[str]:
    """`count` small revisions after the head, each one catalog-only DDL on a real table."""
    ids, down = [], load_chain(migrations).head
    for n in range(1, count + 1):
        rev = f"b{n:04d}"
        write_revision(migrations, rev, f'op.execute("COMMENT ON TABLE users IS \'bench {n}\'")',
                       doc=f"Bench revision {n}.", down=down)
        ids.append(rev)
        down = rev
    return ids
