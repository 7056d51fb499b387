"""${message}

Revision ID: ${up_revision}
Revises: ${down_revision | comma,n}
Create Date: ${create_date}

Expand/contract: this revision must keep the previous release of the app working (it runs
before the new pods start, and an --atomic rollback brings the old pods back on this schema).
See docs/writing-migrations.md.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
${imports if imports else ""}

revision: str = ${repr(up_revision)}
down_revision: str | None = ${repr(down_revision)}
branch_labels = None
depends_on = None

# Optional, for data migrations: per-revision session settings.
# migrator_settings = {"statement_timeout": "10min"}


def upgrade() -> None:
    ${upgrades if upgrades else "pass"}


def downgrade() -> None:
    ${downgrades if downgrades else "pass"}
