"""Each layer that keeps secrets out of the output, on its own.

Three layers scrub: the log filter (every field of every record), the guard on stdout and
stderr (every write, whatever wrote it: a `print` in a revision, a library), and the hook
that prints an uncaught exception's traceback. Together they overlap, so a test of the whole
process passes with any one of them gone; these tests give each layer its own unguarded
stream, so removing that layer alone fails its test.
"""

from __future__ import annotations

import io
import logging
import sys
from collections.abc import Iterator

import pytest

from migrator import logs
from migrator.conninfo import remember

SECRET = "Zq9-layer-s3cret"


@pytest.fixture(autouse=True)
def _remembered() -> Iterator[None]:
    remember(SECRET)
    root = logging.getLogger()
    saved = (root.handlers[:], root.level, sys.stdout, sys.stderr, sys.excepthook)
    yield
    root.handlers[:], level, sys.stdout, sys.stderr, sys.excepthook = saved
    root.setLevel(level)


@pytest.mark.parametrize("log_format", ["json", "text"])
def test_the_log_filter_scrubs_message_fields_and_traceback(log_format: str) -> None:
    out = io.StringIO()  # a plain stream: no guard behind the filter
    logs.setup(log_format, "run", stream=out)
    logging.getLogger().handlers[1].setStream(out)  # errors too
    try:
        raise RuntimeError(f"cannot use {SECRET}")
    except RuntimeError:
        logging.getLogger("migrator").error("failed for %s", SECRET, exc_info=True,
                                            extra={"event": "x", "next_step": SECRET,
                                                   "details": {"url": f"p://u:{SECRET}@h"}})
    text = out.getvalue()
    assert "failed for ***" in text and "RuntimeError: cannot use ***" in text
    assert SECRET not in text


def test_the_guard_scrubs_every_write() -> None:
    out = io.StringIO()
    guarded = logs.GuardedStream(out)
    print("url:", f"postgresql://app:{SECRET}@db/yomu", "and", SECRET, file=guarded)
    assert SECRET not in out.getvalue() and "***" in out.getvalue()


def test_the_traceback_hook_scrubs_an_uncaught_exception() -> None:
    logs.guard_output()
    err = io.StringIO()
    sys.stderr = err  # a plain stream: no guard behind the hook
    try:
        raise ValueError(f"bad {SECRET}")
    except ValueError as error:
        sys.excepthook(type(error), error, error.__traceback__)
    assert "ValueError: bad ***" in err.getvalue() and SECRET not in err.getvalue()
