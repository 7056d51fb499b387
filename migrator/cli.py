"""The command line: verbs, flags, output and exit codes, nothing else."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg

from migrator import __version__, db, signals
from migrator.config import ENV_NAMES, Settings, load_settings
from migrator.conninfo import redact
from migrator.errors import ConfigError, Interrupted, MigratorError, exit_code_table
from migrator.logs import event, guard_output, setup

if TYPE_CHECKING:
    from migrator.metrics import Metrics

EXAMPLES = """\
examples:
  DATABASE_URL=postgresql://app:***@db:5432/yomu migrator upgrade
  migrator status --json             # where the database stands, for machines
  migrator check --wait 300          # the API's init container: wait until migrated
  migrator upgrade --sql 0001:head   # the SQL, for review, without a database
  migrator downgrade 0001            # one step back (see docs/rollback.md)
  migrator plan                      # what pending revisions will lock, and their risk
  migrator lint                      # squawk + our own rules on every revision (CI)
"""

ENVIRONMENT = "environment:\n  DATABASE_URL, MIGRATION_DATABASE_URL (wins)\n" + "\n".join(
    f"  {name}" for name in ENV_NAMES.values()
)


def _settings_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("settings (flags win over the environment)")
    group.add_argument("--lock-wait", dest="lock_wait_s", type=float, metavar="S",
                       help="seconds to wait for another migrator's lock (default 60)")
    group.add_argument("--lock-timeout", dest="lock_timeout_ms", type=int, metavar="MS",
                       help="lock_timeout of the first attempt of each revision (default 100)")
    group.add_argument("--lock-timeout-cap", dest="lock_timeout_cap_ms", type=int, metavar="MS",
                       help="highest lock_timeout on retries: the app's worst stall (default 250)")
    group.add_argument("--statement-timeout", dest="statement_timeout_ms", type=int,
                       metavar="MS", help="statement_timeout of migration sessions")
    group.add_argument("--connect-timeout", dest="connect_timeout_s", type=float, metavar="S",
                       help="seconds to keep retrying while the database is not up (default 30)")
    group.add_argument("--app-role", dest="app_roles", metavar="ROLE[,ROLE]",
                       help="the API's database role(s): upgrade grants them what the API "
                       "needs; plan shows those grants")
    group.add_argument("--log-format", choices=["auto", "json", "text"],
                       help="json (default when not a terminal) or text")
    group.add_argument("--json", action="store_true", help="print the result as one JSON "
                       "document on stdout (logs go to stderr)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="migrator",
        description="Safe, observable PostgreSQL migrations for the yomu API.",
        epilog=f"{EXAMPLES}\n{ENVIRONMENT}\n\nexit codes:\n{exit_code_table()}\n\n"
               "docs: docs/README.md, docs/troubleshooting.md (one section per exit code)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"migrator {__version__}")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")

    up = verbs.add_parser("upgrade", help="apply pending revisions (default: to head)")
    up.add_argument("revision", nargs="?", default="head", help="target (default head); "
                    "with --sql, a range FROM:TO")
    up.add_argument("--sql", action="store_true", help="print the SQL instead of running it: "
                    "for the database in DATABASE_URL (from where it stands), else for an "
                    "empty one")
    up.add_argument("--offline", action="store_true", help="with --sql: do not ask the "
                    "database; the SQL an empty database gets")
    up.add_argument("--repair", action="store_true", help="after review: record the current "
                    "checksums of applied revision files that were edited")
    down = verbs.add_parser("downgrade", help="revert to an explicit revision (or base)")
    down.add_argument("revision", help="the revision to end at, or `base`")
    down.add_argument("--force", action="store_true", help="allow base on tables with rows")
    verbs.add_parser("status", help="current revision, head, pending, schema match")
    chk = verbs.add_parser("check", help="exit 0 only when migrated (for CI and init containers)")
    chk.add_argument("--wait", type=float, default=0, metavar="S",
                     help="keep checking for up to S seconds")
    verbs.add_parser("history", help="every revision and when it was applied")
    plan = verbs.add_parser("plan", help="pending revisions' SQL, with the lock, rewrite and "
                            "risk of each statement (docs/plan-and-lint.md)")
    plan.add_argument("--offline", action="store_true", help="do not ask the database: plan "
                      "every revision from base")
    lint = verbs.add_parser("lint", help="squawk and our own rules on every revision's SQL "
                            "(exit 16 on a finding)")
    lint.add_argument("--config", type=Path, metavar="PATH",
                      help="squawk configuration (default: the checked-in .squawk.toml)")
    for sub in verbs.choices.values():
        _settings_flags(sub)
    return parser


def entrypoint() -> None:
    """The `migrator` command: run, flush, and leave without tearing the interpreter down.

    Everything it prints goes through `guard_output` (no secret, no death by a closed pipe).
    A run that imported Alembic and SQLAlchemy spends ~80 ms at exit freeing their modules,
    which is pure waiting for the deploy; everything that matters is flushed first.
    """
    guard_output()
    code = main()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def main(argv: list[str] | None = None) -> int:
    """Parse, load the settings, run the verb; a signal at any point of it is exit 14."""
    signals.install()  # again, for callers that did not come through `signals.launch`
    started = time.monotonic()
    args = build_parser().parse_args(argv)
    run_id = uuid.uuid4().hex[:12]
    log_format = args.log_format
    logging_ready = False
    try:
        try:
            settings = _load(args)
            log_format = settings.log_format
        except ConfigError as error:  # the format asked for, even when another setting is bad
            log_format = log_format or os.environ.get("MIGRATOR_LOG_FORMAT") or "auto"
            setup(log_format, run_id, stream=_log_stream(args))
            logging_ready = True
            return _fail(error, args, None, started)
        setup(log_format, run_id, stream=_log_stream(args))
        logging_ready = True
        return _run(args, settings)
    except KeyboardInterrupt:  # a signal outside the verb's own handling (start-up, exit)
        if not logging_ready:
            log_format = log_format or os.environ.get("MIGRATOR_LOG_FORMAT") or "auto"
            setup(log_format if log_format in ("auto", "json", "text") else "auto", run_id,
                  stream=_log_stream(args))
        return _fail(_interrupted(), args, None, started)


def _log_stream(args: argparse.Namespace) -> Any:
    """Logs go to stderr when stdout carries a document (--json, SQL with --sql, a plan)."""
    return sys.stderr if args.json or getattr(args, "sql", False) or args.verb == "plan" \
        else sys.stdout


def _load(args: argparse.Namespace) -> Settings:
    overrides = {name: getattr(args, name, None) for name in ENV_NAMES}
    reads_sql = args.verb == "plan" or (args.verb == "upgrade" and args.sql)
    offline = args.verb == "lint" or (reads_sql and (args.offline or not any(
        os.environ.get(name) for name in ("MIGRATION_DATABASE_URL", "DATABASE_URL"))))
    return load_settings(overrides, need_database=not offline)


def _run(args: argparse.Namespace, settings: Settings) -> int:
    from migrator import commands
    from migrator.metrics import Metrics

    started = time.monotonic()
    runs = args.verb in ("upgrade", "downgrade") and not getattr(args, "sql", False)
    # Only runs that change the database report metrics; for the other verbs it is a no-op.
    metrics = Metrics(settings.statsd_host if runs else None, settings.statsd_port,
                      settings.statsd_prefix)
    if runs:
        metrics.run_started()
        event("run_started", f"migrator {__version__} {args.verb}: {settings.redacted_url}",
              settings=settings.public())
    try:
        try:
            if args.verb == "upgrade" and args.sql:
                sys.stdout.write(commands.offline_sql(settings, args.revision, args.offline))
                return 0
            if args.verb == "upgrade":
                result = commands.upgrade(settings, metrics, args.revision, args.repair)
            elif args.verb == "downgrade":
                result = commands.downgrade(settings, args.revision, args.force)
            elif args.verb == "status":
                result = commands.status(settings)
            elif args.verb == "check":
                result = commands.check(settings, args.wait)
            elif args.verb == "plan":
                result = commands.plan(settings, args.offline)
            elif args.verb == "lint":
                result = commands.lint(settings, args.config)
            else:
                result = commands.history_rows(settings)
        except KeyboardInterrupt:
            raise _interrupted() from None
        except psycopg.Error as error:  # one the verb did not expect: still a known kind?
            known = db.database_error(error, args.verb, None)
            if known is None:
                raise
            raise known from None
    except MigratorError as error:
        return _fail(_interrupted() if signals.stopped_by else error, args, metrics, started)
    except Exception as error:  # a bug: say so in one line, with the trace
        if signals.stopped_by:
            return _fail(_interrupted(), args, metrics, started)
        logging.getLogger("migrator").error(
            f"internal error: {redact(str(error)).splitlines()[0] if str(error) else ''}",
            exc_info=True, extra={"event": "internal_error", "outcome": "failure"})
        failure = MigratorError(f"internal error ({type(error).__name__})")
        return _fail(failure, args, metrics, started)
    seconds = time.monotonic() - started
    metrics.run_finished(result.outcome, seconds, result.schema_version)
    metrics.close()
    event("run_finished", result.message, outcome=result.outcome,
          duration_ms=round(seconds * 1000), result=result.data)
    if args.json:
        print(json.dumps({"outcome": result.outcome, "message": result.message,
                          **result.data}, default=str))
    elif args.verb == "history" and (settings.log_format == "text" or sys.stdout.isatty()):
        _print_history(result.data)
    elif args.verb == "plan":
        from migrator.plan import format_text

        print(format_text(result.data))
    return 0


def _interrupted() -> Interrupted:
    """What is true when the signal came: what committed, what was rolled back."""
    stop = Interrupted(signals.message(signals.stopped_by or "SIGINT"))
    if signals.progress.committed:
        stop.details["committed"] = list(signals.progress.committed)
    return stop


def _print_history(data: dict[str, Any]) -> None:
    for row in data["revisions"]:
        mark = "*" if row["current"] else " "
        when = row["applied_at"] or "not applied"
        ok = {True: "", False: "  CHANGED SINCE APPLIED", None: ""}[row["checksum_ok"]]
        print(f"{mark} {row['revision']:<8} {row['file']:<40} {when}{ok}")


def _fail(error: MigratorError, args: argparse.Namespace, metrics: Metrics | None,
          started: float) -> int:
    seconds = time.monotonic() - started
    if metrics is not None:  # None: the settings could not even be read
        # A failure after revisions committed (exit 17) still reports where the schema is.
        version = error.details.get("schema_version")
        metrics.run_finished(f"failure.{error.kind}", seconds,
                             version if isinstance(version, int) else None)
        metrics.close()
    event("run_failed", error.message, logging.ERROR, outcome=f"failure.{error.kind}",
          revision=error.details.get("revision"),
          duration_ms=round(seconds * 1000), exit_code=error.exit_code,
          next_step=error.next_step, details=error.details or None)
    if args.json:
        print(json.dumps({"outcome": "failure", "error": error.kind,
                          "exit_code": error.exit_code, "message": error.message,
                          "next_step": error.next_step, **error.details}, default=str))
    return error.exit_code
