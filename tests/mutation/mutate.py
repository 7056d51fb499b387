"""Mutation testing of the critical modules: `make mutation` (MODULES="schema lock" for some).

mutmut 2.x rewrites one module on disk per mutant and runs a test command we choose; most of
our tests run the real CLI as a child process, which then imports the mutated file too. Each
module is mutated in a copy of the tree of its own (.mutation/MODULE/repo, refreshed at
every run), never in the working tree: tests can run meanwhile, and so can another module's
mutation run. For each module it runs only the tests that exercise it, fastest first, with
`-x`, against one PostgreSQL server started here for the whole run (each pytest run would
otherwise initdb its own). Results stay in .mutation/MODULE/.mutmut-cache (git-ignored): a
rerun retests only the mutants not killed yet, or all of them after the module changed.

    python tests/mutation/mutate.py run [MODULE ...]   # mutate, then summarize
    python tests/mutation/mutate.py summary            # the table again, and the survivors
    python tests/mutation/mutate.py gate MODULE        # one test run (what mutmut calls)

docs/testing.md says how to read the results and explains every mutant left alive.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from migrator.localdb import temporary_server  # noqa: E402 - after the path is set

STATE = REPO / ".mutation"
PASSWORD = "s3cr3t-Pa55word"  # tests/pgtest.py TEST_PASSWORD: the tests' superuser password


@dataclass(frozen=True)
class Module:
    path: str
    tests: tuple[str, ...]  # fastest first: with -x the first failure ends the run
    timeout_s: int = 60  # per test (pytest-timeout): a hanging mutant fails its test


MODULES: dict[str, Module] = {
    "schema": Module("migrator/schema.py", (
        "tests/unit/test_schema_normalize.py",
        "tests/integration/test_schema_drift.py",
        # in-process: the CLI's collation cases are drift cases above
        "tests/integration/test_schema_oracle.py::test_what_postgres_builds_is_what_the_models_say",
        "tests/integration/test_schema_oracle.py::test_an_expression_spelled_otherwise_is_reported",
        "tests/integration/test_schema_oracle.py::test_the_comparison_creates_and_writes_nothing",
    )),
    "adopt": Module("migrator/adopt.py", (
        "tests/integration/test_adoption_report.py",
        "tests/integration/test_adoption.py",
        "tests/integration/test_upgrade.py::test_sql_for_a_legacy_database_is_what_adoption_will_run",
        "tests/integration/test_upgrade.py::test_offline_sql_runs_on_an_empty_database",
    )),
    "online": Module("migrator/online.py", (
        "tests/integration/test_online.py",
        "tests/integration/test_upgrade.py::test_sql_renders_the_guarded_drop_only_for_an_invalid_leftover",
        "tests/integration/test_upgrade.py::test_sql_from_where_the_database_stands_and_nothing_at_head",
        "tests/integration/test_online_render.py",
        "tests/integration/test_upgrade.py::test_offline_sql_runs_on_an_empty_database",
    )),
    "retry": Module("migrator/retry.py", (
        "tests/integration/test_lock_retries.py",
    )),
    "lock": Module("migrator/lock.py", (
        "tests/integration/test_migration_lock.py",
        "tests/faults/test_concurrency.py::test_waiting_reports_the_holder_every_few_seconds",
        "tests/faults/test_concurrency.py::test_lock_is_taken_soon_after_the_holder_lets_go",
    )),
    "grants": Module("migrator/grants.py", (
        "tests/integration/test_grants_catalog.py",
        "tests/integration/test_least_privilege.py::test_app_tables_are_the_models_tables",
    )),
    "metrics": Module("migrator/metrics.py", (
        "tests/observability/test_metrics_sink.py",
        "tests/observability/test_statsd_packets.py",
        "tests/observability/test_prefix_end_to_end.py",
    )),
    "runner": Module("migrator/runner.py", (
        "tests/integration/test_upgrade.py::test_empty_database_reaches_head_and_matches_the_models",
        "tests/integration/test_runner_failures.py",
        "tests/integration/test_upgrade.py::test_downgrade_to_base_and_back_up_on_an_empty_database",
        "tests/integration/test_upgrade.py::test_offline_sql_runs_on_an_empty_database",
        "tests/integration/test_upgrade.py::test_sql_for_a_legacy_database_is_what_adoption_will_run",
        "tests/faults/test_lock_queue.py::test_revision_settings_override_the_run_and_reach_the_session",
        "tests/faults/test_lock_queue.py::test_statement_timeout_stops_a_runaway_revision",
        "tests/faults/test_server_faults.py::test_lost_lock_session_stops_the_run_before_the_next_commit",
        "tests/integration/test_least_privilege.py::test_a_revision_refused_a_privilege_exits_18_and_changes_nothing",
    )),
}
STATUSES = {"ok_killed": "killed", "ok_suspicious": "killed", "bad_timeout": "timeout",
            "bad_survived": "survived", "skipped": "skipped", "untested": "untested"}


def _python() -> str:
    return sys.executable


def _copy(name: str) -> Path:
    """The module's copy of the tree; MUTATE_COPY names another one (a second mutmut
    process working through the same module's mutants by id, in a copy of its own)."""
    return Path(os.environ.get("MUTATE_COPY") or STATE / name / "repo")


def gate(name: str) -> int:
    """One pytest run for the current mutant. mutmut counts exit code 1 as killed and any
    other code as survived, so every failure (a failed test, an import error at collection)
    becomes 1; pytest's own 5 (no tests ran) stays an error of this script."""
    module = MODULES[name]
    result = subprocess.run(
        [_python(), "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "--no-header",
         f"--timeout={module.timeout_s}", *module.tests], cwd=_copy(name), check=False)
    if result.returncode == 5:
        print(f"mutate.py: no tests ran for {name}", file=sys.stderr)
        return 3
    return 0 if result.returncode == 0 else 1


def _fresh_copy(name: str) -> Path:
    """The tree as it is now, without what is not source (the venv, git, caches)."""
    copy = _copy(name)
    if copy.exists():
        shutil.rmtree(copy)
    shutil.copytree(REPO, copy, ignore=shutil.ignore_patterns(
        ".git", ".venv", ".mutation", ".local", "node_modules", "__pycache__", ".*_cache",
        "*.bak", ".mutmut-cache"))
    return copy


def run(names: list[str]) -> int:
    with temporary_server(auth="scram-sha-256", password=PASSWORD) as server:
        env = {**os.environ, "YOMU_TEST_PG_PORT": str(server.port),
               "YOMU_TEST_PG_DATADIR": str(server.datadir)}
        for name in names:
            module, folder = MODULES[name], STATE / name
            folder.mkdir(parents=True, exist_ok=True)
            copy = _fresh_copy(name)
            started = time.monotonic()
            subprocess.run(
                [_python(), "-m", "mutmut", "run", "--paths-to-mutate",
                 str(copy / module.path), "--tests-dir", f"{copy / 'tests'}/",
                 "--runner", f"{_python()} {Path(__file__).resolve()} gate {name}",
                 "--test-time-multiplier", "3", "--test-time-base", "10",
                 "--simple-output", "--no-progress"],
                cwd=folder, env=env, check=False)
            times = _load_times()
            times.setdefault(name, []).append(round(time.monotonic() - started))
            (STATE / "times.json").write_text(json.dumps(times, indent=1))
            print(table([name], times))
    return 0


def _load_times() -> dict[str, list[int]]:
    """Wall seconds of each run per module: the first runs every mutant, later ones only
    the mutants not killed yet."""
    path = STATE / "times.json"
    return json.loads(path.read_text()) if path.exists() else {}


def counts(name: str) -> dict[str, int]:
    kept = STATE / name / ".mutmut-cache"
    out = dict.fromkeys(["killed", "timeout", "survived", "skipped", "untested"], 0)
    if not kept.exists():
        return out
    with sqlite3.connect(kept) as db:
        for status, number in db.execute("SELECT status, count(*) FROM Mutant GROUP BY status"):
            out[STATUSES[status]] += number
    return out


def _minutes(seconds: int) -> str:
    return f"{seconds // 60}m{seconds % 60:02d}s"


def table(names: list[str], times: dict[str, list[int]]) -> str:
    """Killed / survived / timeout per module; the score counts a timeout as detected (a
    hanging migrator is stopped by the Job's deadline and pages)."""
    lines = ["| module | mutants | killed | survived | timeout | score | wall time (runs) |",
             "|---|---|---|---|---|---|---|"]
    for name in names:
        c = counts(name)
        total = sum(c.values())
        if not total:
            continue
        score = 100 * (c["killed"] + c["timeout"]) / total
        runs = times.get(name, [])
        wall = f"{_minutes(sum(runs))} ({' + '.join(map(_minutes, runs))})" if runs else "-"
        lines.append(f"| {MODULES[name].path} | {total} | {c['killed']} | {c['survived']} | "
                     f"{c['timeout']} | {score:.1f}% | {wall} |")
    return "\n".join(lines)


def survivors(name: str) -> list[str]:
    """Each mutant not killed, as a diff of the module in the working tree (mutmut's own
    `show` reads the copy, which holds a mutant while a run is going on)."""
    from difflib import unified_diff

    from mutmut import Context, RelativeMutationID, mutate

    path = REPO / MODULES[name].path
    source = path.read_text()
    with sqlite3.connect(STATE / name / ".mutmut-cache") as db:
        rows = db.execute(
            "SELECT m.id, m.status, l.line, l.line_number, m.\"index\" FROM Mutant m "
            "JOIN Line l ON l.id = m.line WHERE m.status NOT IN ('ok_killed', 'ok_suspicious')"
            " ORDER BY l.line_number, m.\"index\"").fetchall()
    out = []
    for pk, status, line, number, index in rows:
        context = Context(source=source, filename=str(path), mutation_id=RelativeMutationID(
            line=line, index=index, line_number=number))
        mutated, _ = mutate(context)
        diff = "".join(list(unified_diff(source.splitlines(keepends=True),
                                         mutated.splitlines(keepends=True), n=0))[2:])
        out.append(f"# {name} mutant {pk} ({STATUSES[status]}), line {number + 1}\n{diff}")
    return out


def summary(names: list[str]) -> int:
    """The table, and every mutant not killed as a diff in .mutation/MODULE-survivors.txt."""
    print(table(names, _load_times()))
    for name in names:
        if (STATE / name / ".mutmut-cache").exists():
            found = survivors(name)
            (STATE / f"{name}-survivors.txt").write_text("\n".join(found))
            print(f"{name}: {len(found)} not killed, as diffs in .mutation/{name}-survivors.txt")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=["run", "summary", "gate"])
    parser.add_argument("modules", nargs="*", metavar="MODULE",
                        help=f"some of: {' '.join(MODULES)} (default: all)")
    args = parser.parse_args(argv)
    names = args.modules or list(MODULES)
    unknown = set(names) - set(MODULES)
    if unknown:
        parser.error(f"unknown module(s) {', '.join(sorted(unknown))}; known: {' '.join(MODULES)}")
    if args.action == "gate":
        return gate(names[0])
    if args.action == "run":
        run(names)
    return summary(names)


if __name__ == "__main__":
    sys.exit(main())
