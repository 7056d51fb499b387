"""The yomu schema as SQLAlchemy models: the source of truth for migrations and drift checks.

They match what the legacy `init.sql` created, name for name, so a database adopted from it
and one built from scratch are the same catalog. Constraint names are PostgreSQL's own
defaults (`users_pkey`, `sessions_user_id_fkey`, ...) because that is what the legacy script
got; the redundant unique index beside each UNIQUE column is legacy too, and kept.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    ForeignKeyConstraint,
    Index,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import TIMESTAMP, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

UUID_DEFAULT = text("gen_random_uuid()")
NOW = text("now()")


class Base(DeclarativeBase):
    metadata = MetaData()


class User(Base):
    __tablename__ = "users"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), server_default=UUID_DEFAULT)
    google_id: Mapped[str] = mapped_column(String(255))
    email: Mapped[str] = mapped_column(String(255))
    display_name: Mapped[str | None] = mapped_column(String(255))
    profile_picture: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(TIMESTAMP(timezone=True), server_default=NOW)
    last_sign_in_at: Mapped[datetime] = mapped_column(TIMESTAMP(timezone=True), server_default=NOW)

    __table_args__ = (
        PrimaryKeyConstraint("id", name="users_pkey"),
        UniqueConstraint("google_id", name="users_google_id_key"),
        Index("users_google_id_idx", "google_id", unique=True),
        Index("users_email_idx", "email"),
    )


class Session(Base):
    __tablename__ = "sessions"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), server_default=UUID_DEFAULT)
    user_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    token: Mapped[str] = mapped_column(String(512))
    created_at: Mapped[datetime] = mapped_column(TIMESTAMP(timezone=True), server_default=NOW)
    expires_at: Mapped[datetime] = mapped_column(TIMESTAMP(timezone=True))
    last_activity_at: Mapped[datetime] = mapped_column(
        TIMESTAMP(timezone=True), server_default=NOW
    )
    user_agent: Mapped[str | None] = mapped_column(Text)
    ip_address_hash: Mapped[str | None] = mapped_column(String(64))

    __table_args__ = (
        PrimaryKeyConstraint("id", name="sessions_pkey"),
        ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="sessions_user_id_fkey", ondelete="CASCADE"
        ),
        UniqueConstraint("token", name="sessions_token_key"),
        Index("sessions_token_idx", "token", unique=True),
        Index("sessions_user_id_idx", "user_id"),
        Index("sessions_expires_at_idx", "expires_at"),
        # Revision 0002: the API's "live sessions of a user" query.
        Index("sessions_user_id_expires_at_idx", "user_id", "expires_at"),
    )


class Bookmark(Base):
    __tablename__ = "bookmarks"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), server_default=UUID_DEFAULT)
    user_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    url: Mapped[str] = mapped_column(Text)
    title: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(TIMESTAMP(timezone=True), server_default=NOW)

    __table_args__ = (
        PrimaryKeyConstraint("id", name="bookmarks_pkey"),
        ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="bookmarks_user_id_fkey", ondelete="CASCADE"
        ),
        UniqueConstraint("user_id", "url", name="unique_user_url"),
    )


Index("bookmarks_user_id_created_at_idx", Bookmark.user_id, Bookmark.created_at.desc())


metadata = Base.metadata
