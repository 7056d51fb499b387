"""One exception class per exit code: what happened, and what to do next.

Every failure a user can meet ends as one of these. The CLI prints `message` and `next_step`
on one line each (or as JSON) and exits with `exit_code`; nothing else is ever printed for
them, so no traceback and no secret leaves the process.
"""

from __future__ import annotations

from typing import ClassVar


class MigratorError(Exception):
    """Base: a failure with a cause the user can act on."""

    exit_code: ClassVar[int] = 1
    kind: ClassVar[str] = "internal"
    default_next_step: ClassVar[str] = "this is a bug in the migrator: report it with the log"

    def __init__(self, message: str, next_step: str | None = None, **details: object) -> None:
        super().__init__(message)
        self.message = message
        self.next_step = next_step or self.default_next_step
        self.details = details


class ConfigError(MigratorError):
    exit_code = 3
    kind = "config"
    default_next_step = "fix the setting named above (see `migrator --help`)"


class ConnectError(MigratorError):
    exit_code = 4
    kind = "connect"
    default_next_step = (
        "check that PostgreSQL is up and reachable from here (host, port, network policy), "
        "or raise --connect-timeout"
    )


class AuthError(MigratorError):
    exit_code = 5
    kind = "auth"
    default_next_step = (
        "check the user, password and database name in DATABASE_URL / MIGRATION_DATABASE_URL"
    )


class UnsafeTargetError(MigratorError):
    exit_code = 6
    kind = "unsafe_target"
    default_next_step = "point the migrator at the primary, directly (not through PgBouncer)"


class LockWaitTimeout(MigratorError):
    exit_code = 7
    kind = "lock_wait"
    default_next_step = (
        "another migrator holds the migration lock: wait for it to finish, or stop it "
        "(docs/troubleshooting.md#7), then run again"
    )


class LockTimeoutExhausted(MigratorError):
    exit_code = 8
    kind = "lock_timeout"
    default_next_step = (
        "a session kept a conflicting lock on the table; nothing was applied. End that "
        "session or run again when traffic is lower (docs/troubleshooting.md#8)"
    )


class DriftRefused(MigratorError):
    exit_code = 9
    kind = "drift"
    default_next_step = (
        "the live schema differs from the models in a way that cannot be reconciled safely; "
        "nothing was changed. Fix the differences listed above by hand, or write a migration "
        "for them (docs/troubleshooting.md#9)"
    )


class ChecksumMismatch(MigratorError):
    exit_code = 10
    kind = "checksum"
    default_next_step = (
        "an applied revision file was edited. Restore it, or after review run "
        "`migrator upgrade --repair` to record the new checksums (docs/troubleshooting.md#10)"
    )


class UnknownRevision(MigratorError):
    exit_code = 11
    kind = "unknown_revision"
    default_next_step = (
        "the database (or the target you named) is at a revision this image does not know "
        "and that is not provably ahead of it: deploy the image that wrote it "
        "(docs/troubleshooting.md#11)"
    )


class MigrationFailed(MigratorError):
    exit_code = 12
    kind = "migration_failed"
    default_next_step = (
        "the revision named above failed and was rolled back; fix it in a new image and deploy "
        "again (docs/troubleshooting.md#12)"
    )


class NotAtHead(MigratorError):
    exit_code = 13
    kind = "not_at_head"
    default_next_step = "run `migrator upgrade` (the Helm hook does this on deploy)"


class Interrupted(MigratorError):
    exit_code = 14
    kind = "interrupted"
    default_next_step = (
        "the run was stopped by a signal (what committed, and what was rolled back, is named "
        "above). Run again: applied revisions stay applied, the rest follow"
    )


class DowngradeRefused(MigratorError):
    exit_code = 15
    kind = "downgrade_refused"
    default_next_step = (
        "downgrading to base drops every table and its rows: back up first, then pass --force "
        "(docs/rollback.md)"
    )


class LintFailed(MigratorError):
    exit_code = 16
    kind = "lint"
    default_next_step = (
        "fix the statements listed above, or, after review, set the rule aside for one "
        "statement with `# lint: allow RULE -- reason` above its call (docs/plan-and-lint.md)"
    )


class VerifyFailed(MigratorError):
    """The revisions committed; only the check of the result failed (or could not run)."""

    exit_code = 17
    kind = "verify"
    default_next_step = (
        "the revisions named above are applied and stay applied (nothing to roll back); "
        "`migrator status` shows the schema against the models (docs/troubleshooting.md#17)"
    )


class PermissionDenied(MigratorError):
    exit_code = 18
    kind = "permission"
    default_next_step = (
        "grant the role the privilege named above, or run the migration as the tables' "
        "owner (docs/troubleshooting.md#18)"
    )


class DatabaseBusy(MigratorError):
    exit_code = 19
    kind = "busy"
    default_next_step = (
        "another session held a lock (or the server did not answer) for longer than our "
        "timeouts; nothing was changed. Run again, or see who holds it "
        "(docs/troubleshooting.md#19)"
    )


class LoginRefused(MigratorError):
    """The server knows the role and the database and will never let this role in."""

    exit_code = 21
    kind = "login_refused"
    default_next_step = (
        "a DBA must let the role in (`ALTER ROLE <role> LOGIN`, `GRANT CONNECT ON DATABASE "
        "<db> TO <role>`), or use a role that may connect (docs/troubleshooting.md#21)"
    )


class ConnectOptionsRefused(MigratorError):
    """The URL asks for a session this server (or this machine) cannot give, every time."""

    exit_code = 22
    kind = "connect_options"
    default_next_step = (
        "fix the connection parameter named above in DATABASE_URL / MIGRATION_DATABASE_URL "
        "(docs/troubleshooting.md#22)"
    )


class UsageError(MigratorError):
    exit_code = 2
    kind = "usage"
    default_next_step = "see `migrator --help`"


ALL_ERRORS: tuple[type[MigratorError], ...] = (
    MigratorError,
    ConfigError,
    ConnectError,
    AuthError,
    UnsafeTargetError,
    LockWaitTimeout,
    LockTimeoutExhausted,
    DriftRefused,
    ChecksumMismatch,
    UnknownRevision,
    MigrationFailed,
    NotAtHead,
    Interrupted,
    DowngradeRefused,
    LintFailed,
    VerifyFailed,
    PermissionDenied,
    DatabaseBusy,
    LoginRefused,
    ConnectOptionsRefused,
)


def exit_code_table() -> str:
    """The exit codes, as `--help` shows them."""
    rows = {0: "success (or nothing to do)", 2: "usage error (bad flags)"}
    rows.update({e.exit_code: e.kind for e in ALL_ERRORS})
    return "\n".join(f"  {code:<2} {text}" for code, text in sorted(rows.items()))
