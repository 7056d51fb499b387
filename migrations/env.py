"""Alembic environment for developers' `alembic` commands (revision --autogenerate, offline).

Deploys do not come through here: `migrator` drives the same revisions with its own
environment (migrator/runner.py), adding the advisory lock, lock_timeout retries, checksums
and metrics. Both use the models in migrator/models.py as the target metadata.
"""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy import create_engine
from sqlalchemy.pool import NullPool

from migrator.history import OWN_TABLES
from migrator.models import metadata


def _url() -> str:
    url = os.environ.get("MIGRATION_DATABASE_URL") or os.environ.get("DATABASE_URL", "")
    return url.replace("postgresql://", "postgresql+psycopg://", 1)


def _include_object(obj: object, name: str | None, type_: str, *_: object) -> bool:
    """Autogenerate must not propose dropping the migrator's own tables."""
    return not (type_ == "table" and name in OWN_TABLES)


def run_offline() -> None:
    context.configure(url=_url() or "postgresql+psycopg://", literal_binds=True,
                      target_metadata=metadata, transaction_per_migration=True)
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    engine = create_engine(_url(), poolclass=NullPool)
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=metadata,
                          transaction_per_migration=True, include_object=_include_object,
                          compare_server_default=True)
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
