"""One function per verb: each a short story of the pieces it wires together.

The no-op path (the database is already at head) reads the chain from files and the state
with psycopg and returns before Alembic or SQLAlchemy are imported; those cost more than the
whole check, and a no-op is what almost every deploy does.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg

from migrator import __version__, db, history, lock
from migrator.chain import Chain, Revision, load_chain
from migrator.config import Settings
from migrator.errors import (
    ChecksumMismatch,
    DowngradeRefused,
    DriftRefused,
    MigratorError,
    NotAtHead,
    UnknownRevision,
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
        status = assess(chain, history.read_state(conn))
        if status.changed and not repair:
            raise _changed_error(status)
        if not _pending(chain, status, destination) and not status.unrecorded and not repair:
            return _noop(status, _noop_message(status))
        waited = lock.acquire(conn, settings.lock_wait_s)
        metrics.timing("lock.wait", waited)
        event("lock_acquired", f"migration lock acquired after {waited:.2f}s",
              duration_ms=round(waited * 1000))
        try:
            return _upgrade_locked(conn, settings, chain, destination, repair, metrics)
        finally:
            lock.release(conn)


def _pending(chain: Chain, status: Status, destination: str | None) -> list[Revision]:
    if status.ahead or chain.position(destination) <= chain.position(status.current):
        return []
    return chain.after(status.current, destination)


def _noop_message(status: Status) -> str:
    if status.ahead:
        return (f"nothing to do: the database is ahead of this image by "
                f"{', '.join(status.ahead)} (at {status.current}); this image's head "
                f"{status.head} is applied")
    return f"nothing to do: the database is at {status.current or 'base'} (head {status.head})"


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
    if not pending:
        return _noop(status, _noop_message(status))

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
    final = assess(chain, history.read_state(conn))
    if final.current == chain.head:
        _verify_models(conn)
    applied = [revision.id for revision in pending]
    return Result("success", f"upgraded to {final.current}: applied {', '.join(applied)}",
                  final.schema_version, {**final.as_dict(), "applied_now": applied})


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
              f" (risk {item['risk']})" + (f"; cannot render: {item['error']}"
                                           if item["error"] else ""),
              revision=item["revision"], risk=item["risk"], statements=steps)


def _verify_models(conn: psycopg.Connection[Any]) -> None:
    """At head, the live schema must be the models'; a mismatch is a bug in the revisions."""
    from migrator import schema
    from migrator.models import metadata

    diffs = schema.verify(conn, metadata)
    for diff in diffs:
        if diff.action == "warn":
            event("schema_extra", str(diff), logging.WARNING, table=diff.table)
    if not schema.matches(diffs):
        bad = [d for d in diffs if d.action != "warn"]
        raise DriftRefused(
            "the schema at head does not match the models: " + "; ".join(map(str, bad)),
            "the revisions and migrator/models.py disagree: write a revision that makes them "
            "equal (docs/writing-migrations.md)",
            differences=[d.as_dict() for d in diffs],
        )


def downgrade(settings: Settings, target: str, force: bool = False) -> Result:
    chain = load_chain(settings.migrations_dir)
    destination = _target_in(chain, target)
    with db.connect(settings, "lock", autocommit=True) as conn:
        db.refuse_unsafe_target(conn)
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
        if exists and exists[0] and conn.execute(
                f'SELECT EXISTS (SELECT 1 FROM "{table.name}")').fetchone() == (True,):
            return True
    return False


def status(settings: Settings) -> Result:
    """Where the database stands, and whether its schema is the models'."""
    from migrator import schema
    from migrator.models import metadata

    chain = load_chain(settings.migrations_dir)
    with db.connect(settings, "status", autocommit=True) as conn:
        state = assess(chain, history.read_state(conn))
        data: dict[str, Any] = state.as_dict()
        if state.ahead:
            data["schema_matches"] = None  # the models here are older than the schema
            data["differences"] = []
        else:
            diffs = schema.verify(conn, metadata)
            data["schema_matches"] = schema.matches(diffs)
            data["differences"] = [d.as_dict() for d in diffs]
        holder = lock.holder(conn)
        data["migration_running"] = holder is not None
    return Result("success", _status_message(data), state.schema_version, data)


def _status_message(data: dict[str, Any]) -> str:
    parts = [f"current: {data['current'] or 'base (empty)'}", f"head: {data['head']}"]
    if data["pending"]:
        parts.append(f"pending: {', '.join(data['pending'])}")
    if data["ahead"]:
        parts.append(f"database ahead by: {', '.join(data['ahead'])}")
    if data["changed_revisions"]:
        parts.append(f"CHANGED since applied: {', '.join(data['changed_revisions'])}")
    matches = data["schema_matches"]
    parts.append("schema: " + ("matches the models" if matches else
                               "not checked (database ahead)" if matches is None else
                               f"{sum(d['action'] != 'warn' for d in data['differences'])} "
                               "difference(s) from the models"))
    if data["migration_running"]:
        parts.append("a migration is running now")
    return "; ".join(parts)


def check(settings: Settings, wait_s: float = 0) -> Result:
    """Succeed only at head (or ahead) with a matching schema; --wait polls until then."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            result = status(settings)
            _raise_unless_ready(result)
            return result
        except MigratorError as error:
            if time.monotonic() >= deadline or error.exit_code not in (4, 9, 13):
                raise
            event("check_waiting", f"not ready yet: {error.message}")
            time.sleep(min(2.0, max(deadline - time.monotonic(), 0.1)))


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
            "the schema differs from the models: " + "; ".join(
                f"{d['table']}{'.' + d['item'] if d['item'] else ''}: {d['problem']}"
                for d in bad),
            "see `migrator status` and docs/troubleshooting.md#9",
        )


def history_rows(settings: Settings) -> Result:
    """Every revision of this image, and when each was applied (from our own table)."""
    chain = load_chain(settings.migrations_dir)
    with db.connect(settings, "history", autocommit=True) as conn:
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


def offline_sql(settings: Settings, revision_range: str | None) -> str:
    """The SQL of `[FROM:]TO` (default base:head) for review, without a database."""
    import io

    from migrator.runner import render_sql

    chain = load_chain(settings.migrations_dir)
    start, _, end = (revision_range or "head").rpartition(":")
    buffer = io.StringIO()
    render_sql(settings, _target_in(chain, start or "base"), _target_in(chain, end), buffer)
    return buffer.getvalue()


def plan(settings: Settings, offline: bool = False) -> Result:
    """The pending revisions' SQL, with the lock, rewrite and risk of each statement.

    Pending relative to the database when there is one to ask; otherwise (no DATABASE_URL,
    --offline, or the database unreachable) every revision from base.
    """
    from migrator import plan as planner
    from migrator.errors import ConnectError

    chain = load_chain(settings.migrations_dir)
    current, pending, source = None, list(chain.revisions), "offline: every revision from base"
    if not offline and settings.database_url:
        try:
            with db.connect(settings, "plan", autocommit=True) as conn:
                state = assess(chain, history.read_state(conn))
        except ConnectError as error:
            source = f"offline: every revision from base (database unreachable: {error.message})"
            event("plan_offline", source, logging.WARNING)
        else:
            current, pending = state.current, _pending(chain, state, chain.head)
            source = f"database {settings.redacted_url}"
    data = {"source": source, "current": current, "head": chain.head,
            "pending": [revision.id for revision in pending],
            **planner.plan_data(planner.render(settings, pending))}
    summary = data["summary"]
    return Result("success", f"plan: {len(pending)} revision(s) to apply, "
                  f"{summary['statements']} statement(s), {summary['high_risk']} high risk "
                  f"({source})", None, data)


def lint(settings: Settings, config: Path | None = None) -> Result:
    """squawk and our own rules over every revision's SQL; LintFailed (16) on a finding."""
    from migrator import lint as linter
    from migrator.errors import LintFailed

    report = linter.run(settings, config)
    if report.failures:
        raise LintFailed(report.message(), **report.as_dict())
    return Result("success", report.message(), None, report.as_dict())
