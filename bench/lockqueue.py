"""The lock queue, measured: how long the app stalls behind a revision that waits for a lock.

A report query holds ACCESS SHARE on `users` for a few seconds while the app reads `users`
every 20 ms. A revision then needs ACCESS EXCLUSIVE (ALTER TABLE ... ADD COLUMN). Waiting,
it sits in the table's lock queue, and every app query queues behind it: with plain
Alembic (no lock_timeout) the app stalls until the report ends; the migrator gives up each
attempt after lock_timeout (100 ms, ramping to the 250 ms cap) and retries, so the app
stalls at most that long. Both tools run the same revision against their own copy of the
same database on the same server, in the same run.

    python -m bench.lockqueue          # prints both stalls and their ratio
    run(server=None, quick=False)      # the row for `python -m bench` (bench/suite.py)
    measure(server, hold_s)            # the raw numbers
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import psycopg

from bench.chain import REPO, copy_migrations, write_revision
from migrator.localdb import LocalPostgres, temporary_server

HOLD_S = 6.0
QUICK_HOLD_S = 3.0
APP_EVERY_S = 0.02
TARGET_MS = 300  # the migrator's lock_timeout cap (250 ms) plus scheduling slack
REVISION = 'op.execute("ALTER TABLE users ADD COLUMN lockqueue_note text")'


class _App(threading.Thread):
    """The app: one indexed read of `users` every 20 ms on its own connection, each timed."""

    def __init__(self, url: str, max_s: float) -> None:
        super().__init__(daemon=True)
        self.url, self.max_s = url, max_s
        self.latencies: list[float] = []
        self.done = threading.Event()
        self.ready = threading.Event()

    def run(self) -> None:
        with psycopg.connect(self.url, autocommit=True, application_name="bench-app") as conn:
            self.ready.set()
            end = time.monotonic() + self.max_s
            while not self.done.is_set() and time.monotonic() < end:
                start = time.monotonic()
                conn.execute("SELECT id FROM users ORDER BY created_at DESC LIMIT 5")
                took = time.monotonic() - start
                self.latencies.append(took)
                self.done.wait(max(APP_EVERY_S - took, 0))


class _Reader(threading.Thread):
    """The report query: ACCESS SHARE on `users`, held for `hold_s`."""

    def __init__(self, url: str, hold_s: float) -> None:
        super().__init__(daemon=True)
        self.url, self.hold_s = url, hold_s
        self.holding = threading.Event()
        self.ended_at = 0.0

    def run(self) -> None:
        with psycopg.connect(self.url, application_name="bench-report") as conn:
            conn.execute("SELECT count(*) FROM users")
            self.holding.set()
            time.sleep(self.hold_s)
            conn.commit()
            self.ended_at = time.monotonic()


def _env(url: str, migrations: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("DATABASE_URL", "MIGRAT", "STATSD"))}
    env.update(DATABASE_URL=url, MIGRATOR_LOG_FORMAT="json",
               MIGRATOR_MIGRATIONS_DIR=str(migrations))
    return env


def _command(tool: str, migrations: Path) -> list[str]:
    if tool == "migrator":
        return [sys.executable, "-m", "migrator", "upgrade"]
    ini = migrations.parent / "alembic.ini"
    ini.write_text(f"[alembic]\nscript_location = {migrations}\nprepend_sys_path = {REPO}\n")
    return [sys.executable, "-m", "alembic", "-c", str(ini), "upgrade", "head"]


def _scenario(tool: str, url: str, migrations: Path, hold_s: float) -> dict[str, Any]:
    """One tool against a reader holding `users`: the app's longest stall, and when the
    revision landed relative to the end of the reader."""
    app = _App(url, max_s=hold_s + 60)
    app.start()
    app.ready.wait(10)
    reader = _Reader(url, hold_s)
    reader.start()
    reader.holding.wait(10)
    proc = subprocess.run(_command(tool, migrations), env=_env(url, migrations), cwd=REPO,
                          capture_output=True, text=True, timeout=hold_s + 60)
    finished = time.monotonic()
    reader.join(hold_s + 10)
    app.done.set()
    app.join(10)
    if proc.returncode != 0:
        raise RuntimeError(f"{tool} failed ({proc.returncode}): "
                           f"{(proc.stdout + proc.stderr)[-2000:]}")
    with psycopg.connect(url) as conn:
        landed = conn.execute("SELECT count(*) FROM information_schema.columns WHERE "
                              "table_name = 'users' AND column_name = 'lockqueue_note'"
                              ).fetchone() == (1,)
    return {
        "longest_stall_ms": round(max(app.latencies, default=0.0) * 1000, 1),
        "app_queries": len(app.latencies),
        "landed": landed,
        "finished_after_reader_s": round(finished - reader.ended_at, 2),
        "lock_retries": proc.stdout.count('"event": "lock_retry"'),
    }


def _own_server() -> AbstractContextManager[LocalPostgres]:
    return temporary_server(prefix="yomu-bench-lockqueue-")


def _database_at_head(server: LocalPostgres) -> str:
    """A fresh database the migrator brought to the repo's head, with some users."""
    name = "lq_" + uuid.uuid4().hex[:10]
    with psycopg.connect(server.dsn(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = server.dsn(name)
    subprocess.run([sys.executable, "-m", "migrator", "upgrade"], check=True, cwd=REPO,
                   capture_output=True, env=_env(url, REPO / "migrations"))
    with psycopg.connect(url) as conn:
        conn.execute("INSERT INTO users (google_id, email) SELECT 'g' || i, 'u' || i || "
                     "'@x.test' FROM generate_series(1, 1000) i")
    return url


def measure(server: LocalPostgres, hold_s: float = HOLD_S) -> dict[str, Any]:
    """Plain Alembic, then the migrator, each on its own database of the same server."""
    work = Path(tempfile.mkdtemp(prefix="yomu-bench-lockqueue-"))
    try:
        results: dict[str, Any] = {"hold_s": hold_s, "app_every_ms": APP_EVERY_S * 1000}
        for tool in ("alembic", "migrator"):
            migrations = copy_migrations(work / tool)
            write_revision(migrations, "lq01", REVISION, doc="Lock queue benchmark.")
            results[tool] = _scenario(tool, _database_at_head(server), migrations, hold_s)
        ours, theirs = results["migrator"], results["alembic"]
        results["ratio"] = round(ours["longest_stall_ms"] / theirs["longest_stall_ms"], 3)
        results["ok"] = ours["longest_stall_ms"] <= TARGET_MS and ours["landed"]
        return results
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run(server: LocalPostgres | None = None, quick: bool = False) -> dict[str, Any]:
    """The benchmark table's row (bench/report.py `Row` fields)."""
    hold_s = QUICK_HOLD_S if quick else HOLD_S
    if server is None:
        with _own_server() as own:
            result = measure(own, hold_s)
    else:
        result = measure(server, hold_s)
    ours, theirs = result["migrator"], result["alembic"]
    return {
        "scenario": f"lock queue: longest app stall while a {hold_s:g} s read holds the "
                    "table and a revision ALTERs it",
        "ours": f"{ours['longest_stall_ms']:.0f} ms",
        "alembic": f"{theirs['longest_stall_ms']:.0f} ms",
        "ratio": result["ratio"],
        "target": f"<= {TARGET_MS} ms (lock_timeout cap 250 ms)",
        "ok": result["ok"],
    }


def main() -> int:
    hold_s = QUICK_HOLD_S if "--quick" in sys.argv[1:] else HOLD_S
    with _own_server() as server:
        result = measure(server, hold_s)
    print(f"lock queue: a report query holds ACCESS SHARE on users for {hold_s:g} s; the app "
          f"reads users every {APP_EVERY_S * 1000:.0f} ms; a revision adds a column")
    for tool, label in (("alembic", "plain Alembic"), ("migrator", "migrator")):
        r = result[tool]
        print(f"  {label:<14} longest app stall {r['longest_stall_ms']:>7.0f} ms over "
              f"{r['app_queries']} queries; {r['lock_retries']} lock_timeout retries; "
              f"finished {r['finished_after_reader_s']:.2f} s after the report ended; "
              f"revision {'landed' if r['landed'] else 'MISSING'}")
    print(f"  ratio (ours / Alembic): {result['ratio']:.3f}x; target ours <= {TARGET_MS} ms: "
          f"{'met' if result['ok'] else 'MISSED'}")
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
