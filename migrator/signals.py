"""SIGTERM and SIGINT at any point of the run: exit 14, with a message that is true then.

Kubernetes sends SIGTERM when it deletes the hook Job's pod (a newer deploy, a rollback, a
node drain), a person at a terminal sends SIGINT. Either can come at any moment, so:
- the handlers are installed before anything heavy is imported (`launch`), so a signal in
  the first half second is exit 14, not death by signal (143) or a traceback;
- the handler raises (like Ctrl-C), so psycopg cancels the running statement and the
  revision's transaction rolls back;
- from the moment a revision's history row is written until its COMMIT has returned, a
  signal is held and raised just after: whether the revision committed is then known, not
  guessed, and the message says which revisions committed and which one was rolled back.

This module imports nothing but the standard library: it runs before the rest is loaded.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import FrameType


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so psycopg cancels the running statement."""


@dataclass
class Progress:
    """What the run has changed so far: what a stop message may claim."""

    committed: list[str] = field(default_factory=list)  # revisions applied (or reverted)
    direction: str = "upgrade"
    in_progress: str | None = None  # the revision whose transaction is open
    granting: bool = False  # the grants' transaction is open
    verifying: bool = False  # after the commits: checking the schema (reads only)


progress = Progress()
# The signal that stopped this run, once one arrived. Whatever error surfaces afterwards
# (a cleanup that ran SQL on the cancelled connection, Alembic leaving its autocommit block)
# is a consequence of it: the run reports the interrupt.
stopped_by: str | None = None
_holding = False
_held = False


def _on_signal(signum: int, _frame: FrameType | None) -> None:
    global stopped_by, _held
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    stopped_by = signal.Signals(signum).name
    if _holding:  # a COMMIT is under way: raised by `resume` once it is known
        _held = True
        return
    raise Terminated(stopped_by)


def install() -> None:
    """Handle SIGTERM and SIGINT from now on, for a run that has done nothing yet."""
    global progress, stopped_by, _holding, _held
    progress, stopped_by, _holding, _held = Progress(), None, False, False
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)


def hold() -> None:
    """A revision is about to commit: a signal from now on waits for `resume`."""
    global _holding
    _holding = True


def resume() -> None:
    """The commit returned (or failed): raise a signal that came meanwhile."""
    global _holding, _held
    _holding = False
    if _held:
        _held = False
        raise Terminated(stopped_by)


def started(revision: str, direction: str) -> None:
    progress.in_progress, progress.direction = revision, direction


def committed(revision: str) -> None:
    """`revision`'s transaction committed; then a held signal stops the run."""
    progress.committed.append(revision)
    progress.in_progress = None
    resume()


def message(signal_name: str | None = None) -> str:
    """What is true when the run stops: what committed, what was rolled back."""
    name = signal_name or stopped_by or "a signal"
    verb = "applied" if progress.direction == "upgrade" else "reverted"
    parts = []
    if progress.committed:
        parts.append(f"{verb} {', '.join(progress.committed)} and committed (they stay "
                     f"{verb})")
    if progress.in_progress:
        parts.append(f"revision {progress.in_progress} was in progress and was rolled back "
                     "(an index build it had started is left INVALID, and the next run "
                     "rebuilds it)")
    elif progress.granting:
        parts.append("the grants in progress were rolled back")
    elif progress.verifying:
        parts.append("the check of the schema did not finish")
    if not progress.committed and not progress.in_progress:
        parts.append("no revision was applied")
    return f"stopped by {name}: " + "; ".join(parts) + "; the migration lock, if held, " \
        "is released with the session"


def launch() -> None:
    """The `migrator` command: the handlers first, then the CLI (imports and all)."""
    install()
    try:
        from migrator.cli import entrypoint

        entrypoint()
    except KeyboardInterrupt:  # before the CLI could report it itself: still exit 14
        _report_early()
        os._exit(14)


def _report_early() -> None:
    """One line on stderr, in the format asked for, before logging exists."""
    text = message() if progress.committed or progress.in_progress else (
        f"stopped by {stopped_by or 'SIGINT'} while starting: nothing was changed")
    next_step = "run again"
    fmt = os.environ.get("MIGRATOR_LOG_FORMAT", "auto")
    if "--log-format" in sys.argv[:-1]:
        fmt = sys.argv[sys.argv.index("--log-format") + 1]
    if fmt == "text" or (fmt == "auto" and sys.stderr.isatty()):
        line = f"error   {text}  [outcome=failure.interrupted]\n        next: {next_step}"
    else:
        line = json.dumps({"level": "ERROR", "logger": "migrator", "message": text,
                           "event": "run_failed", "outcome": "failure.interrupted",
                           "exit_code": 14, "next_step": next_step,
                           "timestamp": datetime.now(UTC).isoformat()})
    try:
        sys.stderr.write(line + "\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass
