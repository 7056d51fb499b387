"""${message}

Revision ID: ${up_revision}
Revises: ${down_revision | comma,n}
Create Date: ${create_date}

Expand/contract: this revision must keep the previous release of the app working (it runs
before the new pods start, and an --atomic rollback brings the old pods back on this schema).
See docs/writing-migrations.md.
"""

## Import only what the body uses, in ruff's order: a fresh draft passes `make lint`.
<% body = (upgrades or "") + (downgrades or "") %>\
from __future__ import annotations
% if "sa." in body or "op." in body or imports:

% endif
% if "sa." in body:
import sqlalchemy as sa
% endif
% if "op." in body:
from alembic import op
% endif
% if imports:
${imports}
% endif

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
