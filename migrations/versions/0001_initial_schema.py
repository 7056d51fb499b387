"""Initial schema: users, sessions, bookmarks; adopts databases built by the legacy init.sql.

Revision ID: 0001
Revises:
Create Date: 2026-11-25

On an empty database this creates the whole schema. On a database that the legacy
docker/postgres/init.sql built (with real rows), it compares what exists with the tables
below, refuses anything it cannot reconcile safely (listing every difference, changing
nothing), creates only what is missing (an index an older copy of the script lacked is built
concurrently), and records the revision. See migrator/adopt.py.

The tables are spelled out here, not imported from migrator/models.py: a revision is a
frozen record of one step, and the models move on with later revisions.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import TIMESTAMP, UUID

from migrator.adopt import adopt

revision: str = "0001"
down_revision: str | None = None
branch_labels = None
depends_on = None

_meta = sa.MetaData()
_uuid_pk = {"server_default": sa.text("gen_random_uuid()"), "nullable": False}
_now = {"server_default": sa.text("now()"), "nullable": False}

sa.Table(
    "users", _meta,
    sa.Column("id", UUID(as_uuid=True), **_uuid_pk),
    sa.Column("google_id", sa.String(255), nullable=False),
    sa.Column("email", sa.String(255), nullable=False),
    sa.Column("display_name", sa.String(255)),
    sa.Column("profile_picture", sa.Text),
    sa.Column("created_at", TIMESTAMP(timezone=True), **_now),
    sa.Column("last_sign_in_at", TIMESTAMP(timezone=True), **_now),
    sa.PrimaryKeyConstraint("id", name="users_pkey"),
    sa.UniqueConstraint("google_id", name="users_google_id_key"),
    sa.Index("users_google_id_idx", "google_id", unique=True),
    sa.Index("users_email_idx", "email"),
)

sa.Table(
    "sessions", _meta,
    sa.Column("id", UUID(as_uuid=True), **_uuid_pk),
    sa.Column("user_id", UUID(as_uuid=True), nullable=False),
    sa.Column("token", sa.String(512), nullable=False),
    sa.Column("created_at", TIMESTAMP(timezone=True), **_now),
    sa.Column("expires_at", TIMESTAMP(timezone=True), nullable=False),
    sa.Column("last_activity_at", TIMESTAMP(timezone=True), **_now),
    sa.Column("user_agent", sa.Text),
    sa.Column("ip_address_hash", sa.String(64)),
    sa.PrimaryKeyConstraint("id", name="sessions_pkey"),
    sa.ForeignKeyConstraint(["user_id"], ["users.id"], name="sessions_user_id_fkey",
                            ondelete="CASCADE"),
    sa.UniqueConstraint("token", name="sessions_token_key"),
    sa.Index("sessions_token_idx", "token", unique=True),
    sa.Index("sessions_user_id_idx", "user_id"),
    sa.Index("sessions_expires_at_idx", "expires_at"),
)

_bookmarks = sa.Table(
    "bookmarks", _meta,
    sa.Column("id", UUID(as_uuid=True), **_uuid_pk),
    sa.Column("user_id", UUID(as_uuid=True), nullable=False),
    sa.Column("url", sa.Text, nullable=False),
    sa.Column("title", sa.String(500)),
    sa.Column("created_at", TIMESTAMP(timezone=True), **_now),
    sa.PrimaryKeyConstraint("id", name="bookmarks_pkey"),
    sa.ForeignKeyConstraint(["user_id"], ["users.id"], name="bookmarks_user_id_fkey",
                            ondelete="CASCADE"),
    sa.UniqueConstraint("user_id", "url", name="unique_user_url"),
)
sa.Index("bookmarks_user_id_created_at_idx", _bookmarks.c.user_id, _bookmarks.c.created_at.desc())


def upgrade() -> None:
    adopt(_meta)


def downgrade() -> None:
    # Drops every table and its rows: `migrator downgrade base` refuses on a database with
    # rows unless --force (docs/rollback.md).
    for table in ("bookmarks", "sessions", "users"):
        op.execute(f"DROP TABLE IF EXISTS {table}")
