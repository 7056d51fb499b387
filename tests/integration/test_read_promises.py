"""What `status`, `check`, `history` and `plan` promise about the transaction they read in.

They run as the API's role, on a standby, behind a migration's locks: their transaction is
READ ONLY (a read path that ever wrote would fail on a standby and could change production
from an init container), and its statement_timeout bounds a server that does not answer.
Each promise is checked on its own, in the transaction the verbs use (`db.reading`).
"""

from __future__ import annotations

import time

import psycopg
import pytest

from migrator import db
from migrator.config import load_settings
from migrator.errors import DatabaseBusy, UnsafeTargetError


def test_the_read_transaction_refuses_to_write(database_url: str) -> None:
    settings = load_settings(env={"DATABASE_URL": database_url})
    with db.reading(settings, "status") as conn:
        assert conn.execute("SHOW transaction_read_only").fetchone() == ("on",)
    with pytest.raises(UnsafeTargetError, match="read-only"), \
            db.reading(settings, "status") as conn:
        conn.execute("CREATE TABLE written_by_a_read (id int)")
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT to_regclass('written_by_a_read')").fetchone() == (None,)


def test_the_read_transaction_is_bounded_by_statement_timeout(database_url: str) -> None:
    settings = load_settings(env={"DATABASE_URL": database_url,
                                  "MIGRATOR_STATEMENT_TIMEOUT_MS": "300"})
    with db.reading(settings, "status") as conn:
        assert conn.execute("SHOW statement_timeout").fetchone() == ("300ms",)
    started = time.monotonic()
    with pytest.raises(DatabaseBusy, match="statement_timeout"), \
            db.reading(settings, "status") as conn:
        conn.execute("SELECT pg_sleep(5)")  # a server that does not answer in time
    assert time.monotonic() - started < 3
