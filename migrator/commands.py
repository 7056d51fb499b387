"""One function per verb: each a short story of the pieces it wires together.

The no-op path (the database is already at head) reads the chain from files and the state
with psycopg and returns before Alembic or SQLAlchemy are imported; those cost more than the
whole check, and a no-op is what almost every deploy does.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg

from migrator import __version__, db, grants, history, lock, signals
from migrator.chain import Chain, Revision, load_chain
from migrator.config import Settings
from migrator.errors import (
    ChecksumMismatch,
    DatabaseBusy,
    DowngradeRefused,
    DriftRefused,
    LockTimeoutExhausted,
    MigratorError,
    NotAtHead,
    UnknownRevision,
    UsageError,
    VerifyFailed,
)
from migrator.logs import event
from migrator.metrics import Metrics
from migrator.status import Status, assess

if TYPE_CHECKING:
    from migrator.runner import Runner


@dataclass
class Result:
    """What a verb did: `outcome` is success or noop; `data` is what --json prints."""

    outcome: str
    message: str
    schema_version: int | None = None
    data: dict[str, Any] = field(default_factory=dict)


def _target_in(chain: Chain, target: str | None) -> str | None:
    if target in (None, "head"):
        return chain.head
    if target == "base":
        return None
    if chain.get(target) is None:
        raise UnknownRevision(f"unknown revision {target!r}: this image has "
                              f"{', '.join(chain.ids()) or 'no revisions'}",
                              "run `migrator history` to list the revisions")
    return target


def _changed_error(status: Status) -> ChecksumMismatch:
    names = ", ".join(sorted(status.changed))
    return ChecksumMismatch(
        f"applied revision file(s) changed since they ran: {names}",
        changed={k: {"recorded": v[0], "file": v[1]} for k, v in status.changed.items()},
    )


def _noop(status: Status, why: str) -> Result:
    return Result("noop", why, status.schema_version, status.as_dict())


def upgrade(settings: Settings, metrics: Metrics, target: str | None = None,
            repair: bool = False) -> Result:
    chain = load_chain(settings.migrations_dir)
    destination = _target_in(chain, target)
    with db.connect(settings, "lock", autocommit=True) as conn:
        db.refuse_unsafe_target(conn)
        db.set_session(conn, settings)
        if settings.app_roles:
            grants.check_roles(conn, settings.app_roles)
        state = history.read_state(conn)
        status = assess(chain, state)
        if status.changed and not repair:
            raise _changed_error(status)
        if (not _pending(chain, status, destination) and not status.unrecorded and not repair
                and not grants.pending(conn, settings.app_roles)):
            result = _noop(status, _noop_message(status))
            _verify_unless_recorded(conn, settings, chain, result, state)
            return result
        waited = lock.acquire(conn, settings.lock_wait_s)
        metrics.timing("lock.wait", waited)
        event("lock_acquired", f"migration lock acquired after {waited:.2f}s",
              duration_ms=round(waited * 1000))
        try:
            result = _upgrade_locked(conn, settings, chain, destination, repair, metrics)
        finally:
            lock.release(conn)
        signals.progress.verifying = True
        _verify_unless_recorded(conn, settings, chain, result, history.read_state(conn))
    return result


def _verify_unless_recorded(conn: psycopg.Connection[Any], settings: Settings, chain: Chain,
                            result: Result, state: history.DbState) -> None:
    """At head, check the schema after revisions were applied, and on a run that applied
    none while no check at head was ever recorded (an exit 17 before, or a history an older
    migrator wrote): a no-op must not pass over a schema that does not match the models."""
    applied = result.data.get("applied_now") or []
    head = state.applied.get(chain.head or "")
    if state.current != chain.head or (not applied and (head is None or head.verified)):
        return
    done = (f"applied {', '.join(applied)} and committed" if applied
            else "no revision to apply") + f" (the database is at {state.current})"
    _verify(conn, settings, done, {"applied_now": applied, "current": state.current,
                                   "schema_version": result.schema_version}, chain)


def _after_commit(error: MigratorError, applied: list[str], current: str | None
                  ) -> MigratorError:
    """A failure after revisions committed (the grants): the same exit code, saying what
    committed, with a next step that does not claim nothing was applied."""
    step = error.next_step
    if isinstance(error, LockTimeoutExhausted):
        step = ("a session kept a table locked through every retry of the grants; end it or "
                "run again when traffic is lower (docs/troubleshooting.md#8)")
    return type(error)(
        f"applied {', '.join(applied)} and committed (the database is at {current}); then "
        f"{error.message}",
        f"the revisions stay applied, only the grants were rolled back: {step}",
        **{**error.details, "applied_now": applied, "current": current})


def _pending(chain: Chain, status: Status, destination: str | None) -> list[Revision]:
    if status.ahead or chain.position(destination) <= chain.position(status.current):
        return []
    return chain.after(status.current, destination)


def _noop_message(status: Status, lead: str = "nothing to do") -> str:
    if status.ahead:
        return (f"{lead}: the database is ahead of this image by "
                f"{', '.join(status.ahead)} (at {status.current}); this image's head "
                f"{status.head} is applied")
    return f"{lead}: the database is at {status.current or 'base'} (head {status.head})"


def _upgrade_locked(conn: psycopg.Connection[Any], settings: Settings, chain: Chain,
                    destination: str | None, repair: bool, metrics: Metrics) -> Result:
    status = assess(chain, history.read_state(conn))  # another runner may have moved it
    if status.changed and not repair:
        raise _changed_error(status)
    to_record = status.unrecorded + (sorted(status.changed) if repair else [])
    if to_record:
        history.ensure_table(conn)
    for rev_id in to_record:
        rev = chain.get(rev_id)
        assert rev is not None
        history.record(conn, rev.id, rev.down, rev.checksum, 0, __version__)
        event("checksum_recorded", f"recorded the checksum of {rev_id} (applied earlier "
              f"{'and edited; --repair' if rev_id in status.changed else 'without one'})",
              logging.WARNING, revision=rev_id)
    pending = _pending(chain, status, destination)
    if pending:
        _apply(conn, settings, chain, pending, metrics)
    statements = grants.pending(conn, settings.app_roles)
    if statements:
        signals.progress.granting = True
        try:
            grants.apply(conn, settings, statements)
        except MigratorError as error:
            if pending:
                raise _after_commit(error, [r.id for r in pending],
                                    history.read_state(conn).current) from None
            raise
        signals.progress.granting = False
    final = assess(chain, history.read_state(conn))
    applied = [revision.id for revision in pending]
    if applied and final.current != applied[-1]:  # never "upgraded to None", exit 0
        raise VerifyFailed(
            f"applied {', '.join(applied)} and committed, but public.alembic_version says "
            f"{final.current or 'nothing'}: the revisions wrote somewhere else",
            "check the migration role's search_path and schemas (`migrator status`), "
            "docs/troubleshooting.md#17", applied_now=applied, current=final.current)
    if not applied:
        granted = f"; granted {', '.join(settings.app_roles)} what the API needs"
        return Result("success" if statements else "noop",
                      _noop_message(final, "no revision to apply")
                      + (granted if statements else ""),
                      final.schema_version, {**final.as_dict(), "applied_now": [],
                                             "granted": statements})
    return Result("success", f"upgraded to {final.current}: applied {', '.join(applied)}",
                  final.schema_version, {**final.as_dict(), "applied_now": applied,
                                         "granted": statements})


def _apply(conn: psycopg.Connection[Any], settings: Settings, chain: Chain,
           pending: list[Revision], metrics: Metrics) -> None:
    from migrator.runner import Runner

    runner = Runner(settings, chain, conn)
    try:
        _log_plan(runner, pending)
        for revision in pending:
            event("revision_started", f"applying {revision.id}", revision=revision.id)
            seconds = runner.apply(revision, "upgrade", None)
            metrics.timing("revision.duration", seconds)
            event("revision_applied", f"applied {revision.id} in {seconds * 1000:.0f} ms",
                  revision=revision.id, duration_ms=round(seconds * 1000), outcome="success")
    finally:
        runner.close()


def _log_plan(runner: Runner, revisions: list[Revision]) -> None:
    """Before applying: what each revision will lock and rewrite, for whoever reads the log."""
    from migrator import plan as planner

    rendered = planner.render(runner.settings, revisions, script=runner.script)
    for item in planner.plan_data(rendered)["revisions"]:
        steps = [{k: s[k] for k in ("kind", "table", "lock", "rewrite", "outside_transaction",
                                    "risk")} for s in item["statements"]]
        locks = sorted({f"{s['lock']} on {s['table']}" for s in steps
                        if s["lock"] and s["table"] not in (None, history.VERSION_TABLE)})
        event("revision_plan", f"{item['revision']} will take {', '.join(locks) or 'no lock'}"
              f" (risk {item['risk']})" + (f"; {item['error']}"
                                           if item["error"] else ""),
              revision=item["revision"], risk=item["risk"], statements=steps)


VERIFY_ATTEMPTS = 3


def _verify(conn: psycopg.Connection[Any], settings: Settings, done: str,
            details: dict[str, Any], chain: Chain) -> None:
    """At head, the live schema must be the models'. The revisions have committed by now
    and the lock is released: whatever goes wrong here is reported as what it is (exit 17),
    never as a failed migration. A match is recorded on the head's history row, so the
    no-op runs that follow need not check again (and do while it is not recorded)."""
    from migrator import schema
    from migrator.models import metadata
    for attempt in range(1, VERIFY_ATTEMPTS + 1):
        try:
            with db.read_only(conn, settings):
                diffs = schema.verify(conn, metadata)
            break
        except psycopg.Error as error:
            busy = isinstance(error, psycopg.errors.LockNotAvailable) and not conn.closed
            problem = db.database_error(error, "checking the schema", conn.info.user,
                                        db.read_blockers(conn) if busy else "")
            if problem is None or conn.closed:
                raise VerifyFailed(f"{done}; then checking the schema failed: "
                                   f"{error.__class__.__name__}", **details) from None
            if isinstance(problem, DatabaseBusy) and attempt < VERIFY_ATTEMPTS:
                time.sleep(0.5 * attempt)
                continue
            raise VerifyFailed(f"{done}; then the schema could not be checked: "
                               f"{problem.message}", **details) from None
    for diff in diffs:
        if diff.action == "warn":
            event("schema_extra", str(diff), logging.WARNING, table=diff.table)
    if not schema.matches(diffs):
        bad = [d for d in diffs if d.action != "warn"]
        raise VerifyFailed(
            f"{done}; but the schema at head does not match the models: "
            + "; ".join(map(str, bad)),
            "the revisions stay applied; the revisions and migrator/models.py disagree: "
            "write a revision that makes them equal (docs/troubleshooting.md#17)",
            differences=[d.as_dict() for d in diffs], **details,
        )
    head = chain.get(chain.head or "")
    if head is not None:
        try:
            history.mark_verified(conn, head.id, head.checksum)
        except psycopg.Error as error:  # not recorded: the next no-op checks again
            event("verify_not_recorded", f"the schema matches, but recording that failed: "
                  f"{type(error).__name__}", logging.WARNING)


def downgrade(settings: Settings, target: str, force: bool = False) -> Result:
    chain = load_chain(settings.migrations_dir)
    destination = _target_in(chain, target)
    with db.connect(settings, "lock", autocommit=True) as conn:
        db.refuse_unsafe_target(conn)
        db.set_session(conn, settings)
        status = assess(chain, history.read_state(conn))
        if status.ahead:
            raise UnknownRevision(
                f"the database is ahead of this image (at {status.current}): downgrade it with "
                "the image that has those revisions", "see docs/rollback.md")
        steps = list(reversed(chain.after(destination, status.current)))
        if chain.position(destination) >= chain.position(status.current):
            return _noop(status, f"nothing to do: the database is at "
                                 f"{status.current or 'base'}, not above {target}")
        if destination is None and not force and _has_rows(conn):
            raise DowngradeRefused("refusing to downgrade to base: the tables hold rows")
        lock.acquire(conn, settings.lock_wait_s)
        try:
            from migrator.runner import Runner

            runner = Runner(settings, chain, conn)
            try:
                for rev in steps:
                    seconds = runner.apply(rev, "downgrade", rev.down)
                    event("revision_reverted", f"reverted {rev.id} in {seconds * 1000:.0f} ms",
                          revision=rev.id, duration_ms=round(seconds * 1000),
                          outcome="success")
            finally:
                runner.close()
            final = assess(chain, history.read_state(conn))
        finally:
            lock.release(conn)
    return Result("success", f"downgraded to {final.current or 'base'}", final.schema_version,
                  final.as_dict())


def _has_rows(conn: psycopg.Connection[Any]) -> bool:
    from migrator.models import metadata

    for table in metadata.sorted_tables:
        exists = conn.execute("SELECT to_regclass(%s)", (f"public.{table.name}",)).fetchone()
        # public's table, whatever search_path says: a same-named empty table in another
        # schema must not answer for it.
        if exists and exists[0] and conn.execute(
                f'SELECT EXISTS (SELECT 1 FROM public."{table.name}")').fetchone() == (True,):
            return True
    return False


def status(settings: Settings) -> Result:
    """Where the database stands, and whether its schema is the models'. Reads only."""
    from migrator import schema
    from migrator.models import metadata

    chain = load_chain(settings.migrations_dir)
    with db.reading(settings, "status") as conn:
        state = assess(chain, history.read_state(conn))
        data: dict[str, Any] = state.as_dict()
        if state.ahead:
            data["schema_matches"] = None  # the models here are older than the schema
            data["differences"] = []
        else:
            diffs = schema.verify(conn, metadata)
            data["schema_matches"] = schema.matches(diffs)
            data["differences"] = [d.as_dict() for d in diffs]
        data["legacy_tables"] = _legacy_tables(conn) if state.current is None else []
        data["migration_running"] = lock.holder(conn) is not None
    return Result("success", _status_message(data), state.schema_version, data)


def _legacy_tables(conn: psycopg.Connection[Any]) -> list[str]:
    """The models' tables that exist in a database no revision was applied to (init.sql's)."""
    rows = conn.execute(
        "SELECT t FROM unnest(%s::text[]) WITH ORDINALITY u(t, i)"
        " WHERE to_regclass(format('public.%%I', t)) IS NOT NULL ORDER BY i",
        (list(grants.APP_TABLES),)).fetchall()
    return [row[0] for row in rows]


def _status_message(data: dict[str, Any]) -> str:
    if data["current"]:
        current = data["current"]
    elif data["legacy_tables"]:
        current = (f"none yet: a database built without migrations (it has "
                   f"{', '.join(data['legacy_tables'])}); `migrator upgrade` adopts it")
    else:
        current = "base (empty)"
    parts = [f"current: {current}", f"head: {data['head']}"]
    if data["pending"]:
        parts.append(f"pending: {', '.join(data['pending'])}")
    if data["ahead"]:
        parts.append(f"database ahead by: {', '.join(data['ahead'])}")
    if data["changed_revisions"]:
        parts.append(f"CHANGED since applied: {', '.join(data['changed_revisions'])}")
    matches = data["schema_matches"]
    parts.append("schema: " + ("matches the models" if matches else
                               "not checked (database ahead)" if matches is None else
                               _differences(data["differences"])))
    if data["migration_running"]:
        parts.append("a migration is running now")
    return "; ".join(parts)


def _differences(differences: list[dict[str, Any]]) -> str:
    """Which differences, not only how many: the reader's next step depends on them."""
    bad = [d for d in differences if d["action"] != "warn"]
    listed = "; ".join(_difference(d) for d in bad)
    return f"{len(bad)} difference(s) from the models: {listed}"


def _difference(d: dict[str, Any]) -> str:
    return f"{d['table']}{'.' + d['item'] if d['item'] else ''}: {d['problem']}"


# Exit codes `check --wait` waits out: not reachable yet, drift (a migration may be under
# way), not at head, busy.
_WAIT_FOR = (4, 9, 13, 19)


def check(settings: Settings, wait_s: float = 0) -> Result:
    """Succeed only at head (or ahead) with a matching schema; --wait polls until then.

    Every attempt's connect and statements are bounded by what is left of the wait, so the
    command returns within it (plus the last attempt's own timeouts, about a second).
    """
    deadline = time.monotonic() + wait_s
    while True:
        left = deadline - time.monotonic()
        bounded = settings if wait_s <= 0 else dataclasses.replace(
            settings, connect_timeout_s=min(settings.connect_timeout_s, max(left, 0.0)),
            statement_timeout_ms=min(settings.statement_timeout_ms,
                                     max(round(left * 1000), 500)))
        try:
            result = status(bounded)
            _raise_unless_ready(result)
            return result
        except MigratorError as error:
            left = deadline - time.monotonic()
            if left < 0.5 or error.exit_code not in _WAIT_FOR:
                raise
            event("check_waiting", f"{'busy' if error.exit_code == 19 else 'not ready yet'}, "
                  f"retrying: {error.message}", exit_code=error.exit_code)
            time.sleep(min(2.0, left - 0.25))


def _raise_unless_ready(result: Result) -> None:
    data = result.data
    if data["changed_revisions"]:
        raise ChecksumMismatch(f"applied revision file(s) changed since they ran: "
                               f"{', '.join(data['changed_revisions'])}")
    if data["pending"]:
        raise NotAtHead(f"the database is at {data['current'] or 'base'}; pending: "
                        f"{', '.join(data['pending'])}")
    if data["schema_matches"] is False:
        bad = [d for d in data["differences"] if d["action"] != "warn"]
        raise DriftRefused(
            "the schema differs from the models: " + "; ".join(map(_difference, bad)),
            "see `migrator status` and docs/troubleshooting.md#9",
        )


def history_rows(settings: Settings) -> Result:
    """Every revision of this image, and when each was applied (from our own table)."""
    chain = load_chain(settings.migrations_dir)
    with db.reading(settings, "history") as conn:
        state = history.read_state(conn)
    rows = []
    for rev in chain.revisions:
        applied = state.applied.get(rev.id)
        rows.append({
            "revision": rev.id, "down_revision": rev.down, "file": rev.path.name,
            "applied_at": applied.applied_at.isoformat() if applied else None,
            "duration_ms": applied.duration_ms if applied else None,
            "migrator_version": applied.migrator_version if applied else None,
            "checksum_ok": (applied.checksum == rev.checksum) if applied else None,
            "current": rev.id == state.current,
        })
    return Result("success", f"{len(rows)} revision(s); current {state.current or 'base'}",
                  None, {"revisions": rows, "current": state.current})


def offline_sql(settings: Settings, revision_range: str | None, offline: bool = False) -> str:
    """The SQL of `[FROM:]TO` for review. With a database (unless `offline`), FROM defaults
    to where it stands and steps that depend on it say what they will do there; without
    one, FROM defaults to base and the SQL is what an empty database gets."""
    import io

    from migrator.runner import render_sql

    chain = load_chain(settings.migrations_dir)
    start, colon, end = (revision_range or "head").rpartition(":")
    if colon and not start:
        raise UsageError(f"range {revision_range!r} has no FROM: use FROM:TO, or just TO")
    buffer = io.StringIO()
    if offline or not settings.database_url:
        first = _target_in(chain, start or "base")
        last = _target_in(chain, end)
        _check_range(chain, first, last, revision_range)
        buffer.write(f"-- yomu-migrate {__version__}: {first or 'base'} -> {last}, for an "
                     "empty database (no DATABASE_URL, or --offline)\n")
        render_sql(settings, first, last, buffer)
        return buffer.getvalue()
    with db.reading(settings, "sql") as conn:
        state = assess(chain, history.read_state(conn))
        first = _target_in(chain, start) if colon else state.current
        last = _target_in(chain, end)
        if state.ahead and not colon:
            raise UsageError(f"the database is ahead of this image ({state.current}): "
                             "there is no SQL to run on it; name a range FROM:TO")
        header = (f"-- yomu-migrate {__version__}: {first or 'base'} -> {last}, for "
                  f"{settings.redacted_url} (at {state.current or 'base'})\n")
        if not colon and chain.position(first) >= chain.position(last):
            return header + "-- nothing to run: `migrator upgrade` would do nothing here\n"
        _check_range(chain, first, last, revision_range)
        buffer.write(header)
        render_sql(settings, first, last, buffer, live=conn)
    return buffer.getvalue()


def _check_range(chain: Chain, first: str | None, last: str | None,
                 written: str | None) -> None:
    if chain.position(first) >= chain.position(last):
        raise UsageError(
            f"{written or 'head'}: nothing between {first or 'base'} and {last or 'base'} "
            "(FROM must come before TO; `migrator downgrade` reverts)")


def plan(settings: Settings, offline: bool = False) -> Result:
    """The pending revisions' SQL, with the lock, rewrite and risk of each statement, and
    the grants the run will make.

    Pending relative to the database when there is one to ask (and the SQL is what will
    run there); otherwise (no DATABASE_URL, --offline, or the database unreachable) every
    revision from base, as an empty database gets them.
    """
    from migrator import plan as planner
    from migrator.errors import ConnectError

    chain = load_chain(settings.migrations_dir)
    if not offline and settings.database_url:
        try:
            with db.reading(settings, "plan") as conn:
                state = assess(chain, history.read_state(conn))
                pending = _pending(chain, state, chain.head)
                rendered = planner.render(settings, pending, live=conn)
                granted = grants.pending(conn, settings.app_roles, future_tables=True)
            return _plan_result(chain, state.current, pending, rendered, granted,
                                f"database {settings.redacted_url}")
        except ConnectError as error:
            source = f"offline: every revision from base (database unreachable: {error.message})"
            event("plan_offline", source, logging.WARNING)
    else:
        source = "offline: every revision from base"
    pending = list(chain.revisions)
    return _plan_result(chain, None, pending, planner.render(settings, pending),
                        grants.pending(None, settings.app_roles), source)


def _plan_result(chain: Chain, current: str | None, pending: list[Revision],
                 rendered: Any, granted: list[str], source: str) -> Result:
    from migrator import plan as planner

    data = {"source": source, "current": current, "head": chain.head,
            "pending": [revision.id for revision in pending],
            **planner.plan_data(rendered), "grants": granted}
    summary = data["summary"]
    return Result("success", f"plan: {len(pending)} revision(s) to apply, "
                  f"{summary['statements']} statement(s), {summary['high_risk']} high risk, "
                  f"{len(granted)} grant(s) ({source})", None, data)


def lint(settings: Settings, config: Path | None = None) -> Result:
    """squawk and our own rules over every revision's SQL; LintFailed (16) on a finding."""
    from migrator import lint as linter
    from migrator.errors import LintFailed

    report = linter.run(settings, config)
    if report.failures:
        raise LintFailed(report.message(), **report.as_dict())
    return Result("success", report.message(), None, report.as_dict())
