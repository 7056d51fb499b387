"""The scenarios: each runs `migrator` and plain `alembic` as processes on the same server.

Wall time of the whole process is what a deploy waits for (interpreter start and imports
included), so that is what is measured; each tool gets its own fresh database where the
scenario needs one, and repeated runs alternate between the tools so drift hits both.
"""

from __future__ import annotations

import importlib
import inspect
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

import psycopg

from bench.chain import REPO, copy_migrations, generate
from bench.report import Row, seconds
from migrator.chain import load_chain
from migrator.localdb import LocalPostgres, temporary_server

LEGACY_INIT_SQL = REPO / "docker" / "postgres" / "init.sql"
TABLES = ("users", "sessions", "bookmarks")


@dataclass(frozen=True)
class Sizes:
    """How much work each scenario does: the real suite, or a smoke run that only proves it
    still works (`--quick`)."""

    noop_runs: int = 9
    empty_runs: int = 5
    chain_runs: int = 3
    chain_lengths: tuple[int, ...] = (50, 100, 200)
    bookmarks: int = 1_000_000
    users: int = 10_000


QUICK = Sizes(noop_runs=2, empty_runs=1, chain_runs=1, chain_lengths=(5, 10), bookmarks=10_000,
              users=100)


def local_server() -> AbstractContextManager[LocalPostgres]:
    """A PostgreSQL of the benchmark's own, on loopback, removed afterwards."""
    return temporary_server(prefix="yomu-bench-")


class Bench:
    def __init__(self, server: LocalPostgres, sizes: Sizes) -> None:
        self.server = server
        self.sizes = sizes
        self.work = Path(tempfile.mkdtemp(prefix="yomu-bench-chains-"))
        self.empty_ours: list[float] = []
        self.noop_ours: list[float] = []

    def sql(self, url: str, statement: str) -> list[tuple[object, ...]]:
        with psycopg.connect(url, autocommit=True) as conn:
            cursor = conn.execute(statement)
            return cursor.fetchall() if cursor.description else []

    def database(self, template: str | None = None) -> str:
        name = "b_" + uuid.uuid4().hex[:10]
        self.sql(self.server.dsn(), f'CREATE DATABASE "{name}"'
                 + (f' TEMPLATE "{template}"' if template else ""))
        return self.server.dsn(name)

    def server_version(self) -> str:
        return str(self.sql(self.server.dsn(), "SHOW server_version")[0][0])

    def _run(self, argv: list[str], url: str, migrations: Path | None) -> float:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("DATABASE_URL", "MIGRAT", "STATSD"))}
        env.update(DATABASE_URL=url, MIGRATOR_LOG_FORMAT="json")
        if migrations is not None:
            env["MIGRATOR_MIGRATIONS_DIR"] = str(migrations)
        started = time.perf_counter()
        proc = subprocess.run(argv, env=env, cwd=REPO, capture_output=True, text=True,
                              timeout=900)
        took = time.perf_counter() - started
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(argv[2:])} failed ({proc.returncode}): "
                               f"{(proc.stdout + proc.stderr)[-2000:]}")
        return took

    def ours(self, url: str, migrations: Path | None = None) -> float:
        return self._run([sys.executable, "-m", "migrator", "upgrade"], url, migrations)

    def alembic(self, url: str, migrations: Path | None = None, verb: str = "upgrade") -> float:
        ini = REPO / "alembic.ini"
        if migrations is not None:
            ini = migrations.parent / "alembic.ini"
            ini.write_text(f"[alembic]\nscript_location = {migrations}\n"
                           f"prepend_sys_path = {REPO}\n")
        return self._run([sys.executable, "-m", "alembic", "-c", str(ini), verb, "head"], url,
                         migrations)

    def noop(self) -> Row:
        url = self.database()
        self.ours(url)
        ours, theirs = [], []
        for _ in range(self.sizes.noop_runs):
            ours.append(self.ours(url))
            theirs.append(self.alembic(url))
        self.noop_ours = ours
        a, b = statistics.median(ours), statistics.median(theirs)
        return Row(f"no-op at head (median of {len(ours)})", seconds(a), seconds(b), a / b,
                   "<= 0.5x", a / b <= 0.5)

    def empty(self) -> Row:
        ours, theirs = [], []
        for _ in range(self.sizes.empty_runs):
            ours.append(self.ours(self.database()))
            theirs.append(self.alembic(self.database()))
        self.empty_ours = ours
        a, b = statistics.median(ours), statistics.median(theirs)
        return Row(f"empty DB to head, real chain (median of {len(ours)})", seconds(a),
                   seconds(b), a / b, "<= 1.0x", a / b <= 1.0)

    def chains(self) -> list[Row]:
        rows, per_revision, totals = [], [], []
        for length in self.sizes.chain_lengths:
            migrations = copy_migrations(Path(tempfile.mkdtemp(dir=self.work)))
            generate(migrations, length)
            total = len(load_chain(migrations).revisions)  # the repo's own revisions too
            ours, theirs = [], []
            for _ in range(self.sizes.chain_runs):
                ours.append(self.ours(self.database(), migrations) / total)
                theirs.append(self.alembic(self.database(), migrations) / total)
            a, b = statistics.median(ours), statistics.median(theirs)
            per_revision.append(a)
            totals.append((total, a * total, b * total))
            growth = a / per_revision[0]
            rows.append(Row(f"{total}-revision chain, per revision (median of {len(ours)})",
                            f"{a * 1000:.1f} ms", f"{b * 1000:.1f} ms", a / b,
                            "linear: per-revision time flat (<= 1.5x the shortest)",
                            growth <= 1.5))
        (n0, ours0, theirs0), (n1, ours1, theirs1) = totals[0], totals[-1]
        a, b = (ours1 - ours0) / (n1 - n0), (theirs1 - theirs0) / (n1 - n0)
        rows.append(Row(f"each further revision ({n0} to {n1} revisions: the slope)",
                        f"{a * 1000:.1f} ms", f"{b * 1000:.1f} ms", a / b, "-"))
        return rows

    def adopt(self) -> Row:
        n = self.sizes.bookmarks
        url = self.database()
        self.sql(url, LEGACY_INIT_SQL.read_text())
        self.sql(url, f"INSERT INTO users (google_id, email) SELECT 'g' || i, 'u' || i || "
                      f"'@x.test' FROM generate_series(1, {self.sizes.users}) i")
        self.sql(url, "INSERT INTO sessions (user_id, token, expires_at) SELECT id, "
                      "md5(id::text), now() + interval '1 day' FROM users")
        self.sql(url, f"INSERT INTO bookmarks (user_id, url, title) SELECT (SELECT "
                      f"array_agg(id) FROM users)[1 + i % {self.sizes.users}], "
                      f"'https://example.com/' || i, 'title ' || i FROM generate_series(1, {n}) i")
        self.sql(url, "VACUUM ANALYZE")
        copy = self.database(template=url.rsplit("/", 1)[1])
        before = self.relfilenodes(url)
        took = self.ours(url)
        rewritten = sorted(t for t, node in self.relfilenodes(url).items() if node != before[t])
        if rewritten:
            raise RuntimeError(f"adoption rewrote {', '.join(rewritten)}")
        stamp = self.alembic(copy, verb="stamp")
        return Row(f"adopt a legacy DB with {n:,} bookmarks (no table rewritten)", seconds(took),
                   f"{seconds(stamp)} (stamp only)", None, "<= 2 s, relfilenodes unchanged",
                   took <= 2.0)

    def relfilenodes(self, url: str) -> dict[str, int]:
        rows = self.sql(url, "SELECT relname, relfilenode FROM pg_class WHERE relname IN "
                             f"({', '.join(repr(t) for t in TABLES)}) AND relkind = 'r'")
        return {str(name): int(str(node)) for name, node in rows}

    def lockqueue(self, quick: bool) -> list[Row]:
        """bench/lockqueue.py (the safety engineer's): `run(server, quick) -> Row | [Row]`."""
        try:
            module = importlib.import_module("bench.lockqueue")
        except ModuleNotFoundError:
            return [Row("lock-queue: longest app stall behind a waiting revision", "pending",
                        "pending", None, "<= lock_timeout cap (250 ms)")]
        params = inspect.signature(module.run).parameters
        offered = {"server": self.server, "quick": quick, "dsn": self.server.dsn()}
        result = module.run(**{k: v for k, v in offered.items() if k in params})
        rows = result if isinstance(result, list) else [result]
        return [row if isinstance(row, Row) else Row(**row) for row in rows]

    def hook(self) -> Row:
        """What the Helm hook Job takes with the real chain, from the runs measured above."""
        first, noop = max(self.empty_ours), statistics.median(self.noop_ours)
        return Row("hook Job wall time, real chain: empty DB to head (worst) / at head",
                   f"{seconds(first)} / {seconds(noop)}", "-", None,
                   "< 30 s (the alert threshold)", first < 30)

    def close(self) -> None:
        shutil.rmtree(self.work, ignore_errors=True)


def run(sizes: Sizes, quick: bool) -> tuple[list[Row], str]:
    """Every scenario on one fresh server: the rows, and that server's version."""
    with local_server() as server:
        bench = Bench(server, sizes)
        try:
            rows = [bench.noop(), bench.empty(), *bench.chains(), bench.adopt(),
                    *bench.lockqueue(quick), bench.hook()]
            return rows, bench.server_version()
        finally:
            bench.close()
