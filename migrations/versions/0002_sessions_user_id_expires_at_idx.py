"""Index sessions on (user_id, expires_at) for the API's "live sessions of a user" query.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25

The API looks up a user's live sessions with `WHERE user_id = $1 AND expires_at > now()`.
`sessions_user_id_idx` finds the user's rows, then every expired one is read and thrown away;
this index answers the whole condition. It is an expand step: built CONCURRENTLY (SHARE
UPDATE EXCLUSIVE: the app keeps reading and writing sessions during the build), outside the
revision's transaction, and safe to rerun (an INVALID leftover of a failed build is dropped
and built again; see migrator/online.py). `sessions_user_id_idx` is now redundant (its column
is this index's prefix); dropping it is a later contract revision, once this one has reached
every environment and the API's plans use the new index.
"""

from __future__ import annotations

from migrator.online import create_index, drop_index

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels = None
depends_on = None

INDEX = "sessions_user_id_expires_at_idx"


def upgrade() -> None:
    create_index(INDEX, "sessions", ["user_id", "expires_at"])


def downgrade() -> None:
    drop_index(INDEX)
