"""What the real CLI sends to StatsD and prints, run against a real PostgreSQL.

A UDP socket on 127.0.0.1 stands where statsd_exporter listens in the cluster; every run's
datagrams are checked for names, types and values, then passed through the chart's mapping
and the alert rules (real promtool): a failed run pages, a good one does not, and a name the
migrator changes breaks here before it silently breaks an alert.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from obs_mapping import Mapper, load, render
from obs_promtool import firing
from obs_statsd import Packet, StatsdListener
from pgtest import REPO, TEST_PASSWORD, run_migrator

from migrator.chain import load_chain
from migrator.lock import LOCK_KEY

LOG_KEYS = {
    "timestamp", "level", "logger", "event", "run_id", "revision", "duration_ms", "outcome",
    "version", "message",
}
HEAD = len(load_chain(REPO / "migrations").revisions)


@pytest.fixture
def statsd() -> Iterator[StatsdListener]:
    listener = StatsdListener()
    yield listener
    listener.close()


@pytest.fixture(scope="module")
def mapper() -> Mapper:
    return load(render())


def _env(database_url: str, statsd: StatsdListener, **extra: str) -> dict[str, str]:
    return {"DATABASE_URL": database_url, "STATSD_HOST": "127.0.0.1",
            "STATSD_PORT": str(statsd.port), "MIGRATOR_LOG_FORMAT": "json", **extra}


def _logs(stdout: str) -> list[dict[str, Any]]:
    """Every line (stdout's, and stderr's where errors go) is one JSON object with every
    key of the contract."""
    records = []
    for line in stdout.splitlines():
        record = json.loads(line)
        assert set(record) >= LOG_KEYS, f"missing {LOG_KEYS - set(record)} in {line}"
        records.append(record)
    assert records, "a run logs at least its start and its end"
    assert len({r["run_id"] for r in records}) == 1, "one run, one run_id"
    return records


def _no_secret(*outputs: str) -> None:
    for output in outputs:
        assert TEST_PASSWORD not in output


def _by_name(packets: list[Packet]) -> dict[str, list[Packet]]:
    out: dict[str, list[Packet]] = {}
    for p in packets:
        out.setdefault(p.name, []).append(p)
    return out


def _check_run_packets(
    packets: list[Packet], mapper: Mapper, outcome: str, started: float, ended: float
) -> dict[str, list[Packet]]:
    """The packets every run ends with, whatever its outcome."""
    by_name = _by_name(packets)
    # The start time first, then in_progress=1: the alert on a run still going pairs them.
    start, running = packets[0], packets[1]
    assert (start.name, start.type) == ("yomu_migrate.run.started_timestamp", "g")
    assert int(started) <= start.value <= ended and start.value == int(start.value)
    assert running.line == "yomu_migrate.in_progress:1|g", "in_progress=1 comes next"
    assert packets[-1].line == "yomu_migrate.in_progress:0|g", "in_progress=0 comes last"
    assert [p.line for p in by_name[f"yomu_migrate.run.{outcome}"]] == [
        f"yomu_migrate.run.{outcome}:1|c"
    ]
    (duration,) = by_name["yomu_migrate.run.duration"]
    (seconds,) = by_name["yomu_migrate.last_run.duration_seconds"]
    (stamp,) = by_name["yomu_migrate.last_run.timestamp"]
    (success,) = by_name["yomu_migrate.last_run.success"]
    assert (duration.type, seconds.type, stamp.type, success.type) == ("ms", "g", "g", "g")
    assert 0 < duration.value < (ended - started) * 1000
    assert abs(duration.value - seconds.value * 1000) <= 1.0
    assert int(started) <= stamp.value <= ended + 1
    assert success.value == (0 if outcome.startswith("failure") else 1)
    unmapped = [p.line for p in packets if mapper.map(p.line) is None]
    assert not unmapped, f"the chart's mapping drops {unmapped}"
    return by_name


def _alerts(packets: list[Packet], mapper: Mapper, tmp_path: Path) -> set[tuple[str, ...]]:
    samples = [mapper.map(p.line) for p in packets]
    return firing([s for s in samples if s is not None], tmp_path)


FAILED_IN_PROD = {("MigrationFailed", "prod", "critical")}


def _timed(args: tuple[str, ...], env: dict[str, str]) -> tuple[Any, float, float]:
    started = time.time()
    result = run_migrator(*args, env=env)
    return result, started, time.time()


def test_success_then_noop(
    database_url: str, statsd: StatsdListener, mapper: Mapper, tmp_path: Path
) -> None:
    result, started, ended = _timed(("upgrade",), _env(database_url, statsd))
    assert result.returncode == 0, result.stdout + result.stderr
    by_name = _check_run_packets(statsd.drain(), mapper, "success", started, ended)
    assert _alerts(statsd.packets, mapper, tmp_path) == set()
    assert [p.value for p in by_name["yomu_migrate.schema.version"]] == [HEAD]
    revisions = by_name["yomu_migrate.revision.duration"]
    assert len(revisions) == HEAD and all(p.type == "ms" for p in revisions)
    assert [p.type for p in by_name["yomu_migrate.lock.wait"]] == ["ms"]
    assert _logs(result.stdout)[-1]["outcome"] == "success"

    statsd.packets.clear()
    result, started, ended = _timed(("upgrade",), _env(database_url, statsd))
    assert result.returncode == 0, result.stdout + result.stderr
    by_name = _check_run_packets(statsd.drain(), mapper, "noop", started, ended)
    assert [p.value for p in by_name["yomu_migrate.schema.version"]] == [HEAD]
    assert "yomu_migrate.revision.duration" not in by_name
    assert "yomu_migrate.run.success" not in by_name
    assert _alerts(statsd.packets, mapper, tmp_path) == set()
    assert _logs(result.stdout)[-1]["outcome"] == "noop"
    _no_secret(result.stdout, result.stderr)


@pytest.fixture
def lock_holder(database_url: str) -> Iterator[None]:
    """Another migrator, as far as the advisory lock can tell."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (LOCK_KEY,))
        yield


@pytest.mark.usefixtures("lock_holder")
def test_failure_counts_its_kind_and_pages(
    database_url: str, statsd: StatsdListener, mapper: Mapper, tmp_path: Path
) -> None:
    env = _env(database_url, statsd, MIGRATOR_LOCK_WAIT="1")
    result, started, ended = _timed(("upgrade",), env)
    assert result.returncode == 7, result.stdout + result.stderr
    by_name = _check_run_packets(statsd.drain(), mapper, "failure.lock_wait", started, ended)
    assert "yomu_migrate.run.success" not in by_name
    sample = mapper.map(by_name["yomu_migrate.run.failure.lock_wait"][0].line)
    assert sample is not None
    assert (sample.labels["outcome"], sample.labels["kind"]) == ("failure", "lock_wait")
    assert _alerts(statsd.packets, mapper, tmp_path) == FAILED_IN_PROD
    records = _logs(result.stdout + result.stderr)  # errors are on stderr, after the rest
    assert records[-1]["outcome"] == "failure.lock_wait" and records[-1]["level"] == "ERROR"
    _no_secret(result.stdout, result.stderr)


@pytest.mark.usefixtures("lock_holder")
def test_sigterm_reports_interrupted_and_not_in_progress(
    database_url: str, statsd: StatsdListener, mapper: Mapper, tmp_path: Path
) -> None:
    """The Job's deadline ends in SIGTERM: the run must still say it is no longer running."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "MIGRAT"))}
    env.update(_env(database_url, statsd, MIGRATOR_LOCK_WAIT="60"))
    started = time.time()
    proc = subprocess.Popen(
        [sys.executable, "-m", "migrator", "upgrade"], env=env, cwd=REPO,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stdout is not None
        lines = []
        for line in proc.stdout:  # the lock holder makes it wait: SIGTERM it then
            lines.append(line)
            if json.loads(line)["event"] == "lock_waiting":
                break
        else:
            pytest.fail("the migrator never reported waiting for the lock: " + "".join(lines))
        proc.send_signal(signal.SIGTERM)
        rest, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    ended = time.time()
    assert proc.returncode == 14, "".join(lines) + rest + stderr
    by_name = _check_run_packets(statsd.drain(), mapper, "failure.interrupted", started, ended)
    assert "yomu_migrate.schema.version" not in by_name
    assert _alerts(statsd.packets, mapper, tmp_path) == FAILED_IN_PROD  # failed, not stuck
    assert _logs("".join(lines) + rest + stderr)[-1]["outcome"] == "failure.interrupted"
    _no_secret("".join(lines), rest, stderr)


def _warnings(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in records if r["level"] == "WARNING"]


def test_unresolvable_statsd_host_costs_one_warning(database_url: str) -> None:
    env = {"DATABASE_URL": database_url, "STATSD_HOST": "statsd.invalid", "STATSD_PORT": "8125"}
    result = run_migrator("upgrade", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    records = _logs(result.stdout)
    (warning,) = _warnings(records)
    assert warning["event"] == "metrics_unavailable"
    assert warning["message"].startswith(
        "metrics are off for this run: cannot reach STATSD_HOST=statsd.invalid (")
    assert warning["message"].endswith(")")
    assert records[-1]["outcome"] == "success"
    assert "Traceback" not in result.stdout + result.stderr
    _no_secret(result.stdout, result.stderr)


def test_closed_statsd_port_does_not_fail_the_run(database_url: str) -> None:
    """Nothing listens there: the kernel's "port unreachable" becomes one warning."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {"DATABASE_URL": database_url, "STATSD_HOST": "127.0.0.1", "STATSD_PORT": str(port)}
    result = run_migrator("upgrade", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    records = _logs(result.stdout)
    (warning,) = _warnings(records)
    assert warning["event"] == "metrics_unavailable"
    assert warning["message"].startswith("metrics are off for this run: StatsD refused them (")
    assert warning["message"].endswith(
        "); is anything listening on STATSD_HOST:STATSD_PORT?")
    assert records[-1]["outcome"] == "success"
    assert "Traceback" not in result.stdout + result.stderr
    _no_secret(result.stdout, result.stderr)
