"""Applying revisions one at a time, each in its own transaction, without queueing the app.

Every attempt runs with a short lock_timeout and is retried while the app holds the table
(migrator/retry.py says why). The revision's history row is written in the same
transaction as the revision, so nothing is ever half-recorded.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import psycopg
from alembic.config import Config
from alembic.runtime.environment import EnvironmentContext
from alembic.runtime.migration import MigrationContext, MigrationInfo
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, exc
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import QueuePool

from migrator import __version__, db, history, lock, logs, signals
from migrator.chain import Chain, Revision
from migrator.config import Settings
from migrator.errors import ConnectError, MigrationFailed, MigratorError, PermissionDenied
from migrator.models import metadata
from migrator.online import LIVE_CONNECTION
from migrator.retry import one_line, sqlstate, with_lock_retries

# The server went away under us (restart, failover, admin shutdown).
LOST_SQLSTATES = {"57P01", "57P02", "57P03", "08000", "08003", "08006"}


def alembic_config(settings: Settings) -> Config:
    config = Config()
    config.set_main_option("script_location", str(settings.migrations_dir))
    return config


def script_directory(settings: Settings) -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config(settings))


def render_sql(settings: Settings, start: str | None, end: str | None, out: Any,
               script: ScriptDirectory | None = None,
               live: psycopg.Connection[Any] | None = None) -> None:
    """Write the SQL of the revisions after `start` up to `end` to `out`.

    Alembic's offline (`as_sql`) mode: what `upgrade --sql` prints and `plan` classifies.
    With `live`, a read-only connection to the database the SQL is for, steps that depend
    on the database (adoption, rebuilding an INVALID index) render what they would do there;
    without it, what an empty database gets. Pass `script` when rendering revision by
    revision: building it reads every revision file.
    """
    config = alembic_config(settings)
    config.attributes[LIVE_CONNECTION] = live
    script = script or ScriptDirectory.from_config(config)
    with EnvironmentContext(
        config, script, as_sql=True, starting_rev=start, destination_rev=end,
        fn=lambda rev, _: script._upgrade_revs(end or "base", rev),
    ) as env:
        env.configure(url="postgresql+psycopg://", output_buffer=out, literal_binds=True,
                      target_metadata=metadata, transaction_per_migration=True)
        with env.begin_transaction():
            env.run_migrations()


class Runner:
    """Applies the revisions of `chain` with one engine that connects like the rest of us."""

    def __init__(self, settings: Settings, chain: Chain, watcher: psycopg.Connection[Any]):
        self.settings = settings
        self.chain = chain
        self.watcher = watcher  # the lock connection, used to name blocking sessions
        self.config = alembic_config(settings)
        self.script = ScriptDirectory.from_config(self.config)
        # One connection serves every revision (a pool of one); a broken one is replaced.
        self.engine: Engine = create_engine(
            "postgresql+psycopg://", creator=self._connect, poolclass=QueuePool, pool_size=1,
            max_overflow=0,
        )
        self._step_started = 0.0

    def _connect(self) -> psycopg.Connection[Any]:
        return db.connect(self.settings, "migrate")

    def apply(self, revision: Revision, direction: str, target: str | None) -> float:
        """Run one step; every log line meanwhile names the revision."""
        token = logs.current_revision.set(revision.id)
        signals.started(revision.id, direction)
        try:
            seconds = self._apply(revision, direction, target)
        except BaseException:
            signals.resume()  # held during a COMMIT that failed: the revision rolled back
            raise
        finally:
            logs.current_revision.reset(token)
        signals.committed(revision.id)  # a signal held during the COMMIT stops us now
        return seconds

    def _apply(self, revision: Revision, direction: str, target: str | None) -> float:
        """Run one step (upgrade to `revision`, or downgrade from it to `target`)."""
        try:
            return with_lock_retries(
                self.settings, f"revision {revision.id}",
                lambda lock_timeout: self._attempt(revision, direction, target, lock_timeout),
                self.watcher, revision=revision.id)
        except MigratorError:
            raise
        except Exception as error:  # every failure becomes one exit code
            raise self._failure(revision, error) from None

    def _failure(self, revision: Revision, error: Exception) -> MigratorError:
        code, s = sqlstate(error), self.settings
        if code in LOST_SQLSTATES or _connection_lost(error):
            return ConnectError(
                f"lost the database connection during revision {revision.id} "
                f"({one_line(error)}); the revision was rolled back",
                "run again once the database is back (the Job can simply be rerun)",
            )
        if code == "57014" and "statement timeout" in str(error):
            return MigrationFailed(
                f"revision {revision.id} hit statement_timeout ({s.statement_timeout_ms} ms) "
                "and was rolled back",
                "raise MIGRATOR_STATEMENT_TIMEOUT_MS, or set `migrator_settings` in the "
                "revision (docs/writing-migrations.md)", revision=revision.id,
            )
        if code == "42501":
            return PermissionDenied(
                f"revision {revision.id} was refused a privilege and was rolled back: "
                f"{one_line(error)}",
                db.grant_hint(one_line(error), f"revision {revision.id}",
                              self.watcher.info.user if not self.watcher.closed else None),
                revision=revision.id,
            )
        return MigrationFailed(
            f"revision {revision.id} failed and was rolled back: {one_line(error)}",
            revision=revision.id,
        )

    def _attempt(self, revision: Revision, direction: str, target: str | None,
                 lock_timeout_ms: int) -> float:
        try:
            return self._attempt_once(revision, direction, target, lock_timeout_ms)
        except BaseException:
            signals.resume()  # the COMMIT failed: a held signal stops us before a retry
            raise

    def _attempt_once(self, revision: Revision, direction: str, target: str | None,
                      lock_timeout_ms: int) -> float:
        overrides = _revision_settings(self.script, revision.id)
        lock.ensure_held(self.watcher, f"before revision {revision.id}")
        with self.engine.connect() as conn:
            # All of them, every attempt: the previous revision's overrides must not linger.
            values = {**db.session_settings(self.settings, lock_timeout_ms), **overrides}
            conn.exec_driver_sql(*db.set_statement(values))
            conn.commit()
            self._step_started = time.monotonic()
            if direction == "upgrade":
                self._run(conn, revision.id, lambda rev, _: self.script._upgrade_revs(
                    revision.id, rev))
            else:
                self._run(conn, target, lambda rev, _: self.script._downgrade_revs(
                    target or "base", rev))
        return time.monotonic() - self._step_started

    def _run(self, conn: Connection, destination: str | None,
             fn: Callable[[Any, MigrationContext], Any]) -> None:
        with EnvironmentContext(self.config, self.script, fn=fn,
                                destination_rev=destination) as env:
            env.configure(connection=conn, target_metadata=metadata,
                          transaction_per_migration=True,
                          on_version_apply=self._record)  # type: ignore[arg-type]
            with env.begin_transaction():
                env.run_migrations()

    def _record(self, *, ctx: MigrationContext, step: MigrationInfo, **_: Any) -> None:
        """Inside the revision's transaction: the history row commits with it, and only
        while we still hold the migration lock."""
        assert ctx.connection is not None
        # From here until the COMMIT returns, a signal waits: then we know what committed.
        signals.hold()
        lock.ensure_held(self.watcher, f"during revision {step.up_revision_id}")
        cursor = ctx.connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
        # Created here, not before the run: a refused first revision leaves nothing behind.
        cursor.execute(history.CREATE_SQL)
        if step.is_upgrade:
            rev = self.chain.get(step.up_revision_id or "")
            assert rev is not None
            history.record(cursor, rev.id, rev.down, rev.checksum,
                           round((time.monotonic() - self._step_started) * 1000), __version__)
        else:
            history.forget(cursor, step.up_revision_id or "")

    def close(self) -> None:
        self.engine.dispose()


def _revision_settings(script: ScriptDirectory, rev_id: str) -> dict[str, str]:
    """A revision may set `migrator_settings = {"statement_timeout": "10min"}` for itself."""
    revision = script.get_revision(rev_id)
    assert revision is not None
    module = revision.module
    # Not lock_timeout: its cap is the promise that the app never stalls longer.
    allowed = {"statement_timeout", "idle_in_transaction_session_timeout"}
    raw = getattr(module, "migrator_settings", {}) or {}
    return {k: str(v) for k, v in raw.items() if k in allowed}


def _connection_lost(error: BaseException) -> bool:
    if isinstance(error, exc.DBAPIError) and error.connection_invalidated:
        return True
    orig = getattr(error, "orig", error)
    return isinstance(orig, psycopg.OperationalError) and (
        "server closed the connection" in str(orig) or "terminating connection" in str(orig)
        or "consuming input failed" in str(orig) or "the connection is closed" in str(orig)
    )
