"""The StatsD sink in-process, against a real UDP socket: exact packets, the pending queue
while DNS answers late, and what `close()` does with a DNS answer that has not come.

A slow or failing DNS server is stood in for by delaying `socket.getaddrinfo` for one
made-up host name; everything else (the statsd client, its socket, the kernel) is real.
The CLI-level behaviour (one warning for an unresolvable host or a closed port) is in
test_statsd_packets.py.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
from obs_statsd import StatsdListener

from migrator.logs import LOGGER_NAME
from migrator.metrics import Metrics

SLOW_HOST = "slow-statsd.test"
PREFIX = "yomu_migrate"


@pytest.fixture
def statsd() -> Iterator[StatsdListener]:
    listener = StatsdListener()
    yield listener
    listener.close()


@pytest.fixture
def warnings() -> Iterator[list[logging.LogRecord]]:
    """The sink's warnings, as the migrator's logger emits them."""
    handler = _Kept(logging.WARNING)
    logger = logging.getLogger(LOGGER_NAME)
    logger.addHandler(handler)
    yield handler.records
    logger.removeHandler(handler)


class _Kept(logging.Handler):
    def __init__(self, level: int) -> None:
        super().__init__(level)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def _slow_dns(monkeypatch: pytest.MonkeyPatch, seconds: float, fails: bool = False) -> None:
    """SLOW_HOST answers 127.0.0.1 (or "no such host") after `seconds`."""
    real = socket.getaddrinfo

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host != SLOW_HOST:
            return real(host, *args, **kwargs)
        time.sleep(seconds)
        if fails:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real("127.0.0.1", *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


def _resolved(metrics: Metrics) -> None:
    """Wait for the sink's background resolution to have ended (however it ended)."""
    assert metrics._resolver is not None
    metrics._resolver.join(10)
    assert not metrics._resolver.is_alive()


def test_a_finished_run_sends_exact_values_in_order(statsd: StatsdListener) -> None:
    metrics = Metrics("127.0.0.1", statsd.port, PREFIX)
    metrics.run_finished("failure.lock", 12.3456, 2)
    before = int(time.time())
    metrics.close()
    lines = [p.line for p in statsd.drain()]
    stamp = lines[5]
    assert lines[:5] + lines[6:] == [
        "yomu_migrate.run.duration:12346.000000|ms",  # whole milliseconds
        "yomu_migrate.run.failure.lock:1|c",
        "yomu_migrate.schema.version:2|g",
        "yomu_migrate.last_run.success:0|g",
        "yomu_migrate.last_run.duration_seconds:12.346|g",  # seconds, to the millisecond
        "yomu_migrate.in_progress:0|g",
    ]
    assert stamp.startswith("yomu_migrate.last_run.timestamp:") and stamp.endswith("|g")
    assert before - 1 <= int(stamp.split(":")[1].split("|")[0]) <= time.time() + 1


def test_a_successful_run_without_a_version_sends_none(statsd: StatsdListener) -> None:
    metrics = Metrics("127.0.0.1", statsd.port, "other.prefix")
    metrics.run_finished("noop", 0.25, None)
    metrics.close()
    names = [p.name for p in statsd.drain()]
    assert "other.prefix.schema.version" not in names
    assert "other.prefix.last_run.success" in names
    assert [p.line for p in statsd.packets if p.name.endswith("success")] == [
        "other.prefix.last_run.success:1|g"]


def test_no_host_sends_nothing_and_warns_nothing(
        statsd: StatsdListener, warnings: list[logging.LogRecord]) -> None:
    """The verbs that only look get a sink without a host: silent, even at close."""
    metrics = Metrics(None, statsd.port, PREFIX)
    metrics.run_started()
    metrics.run_finished("success", 1.0, 2)
    metrics.close()
    assert statsd.drain(quiet_s=0.3) == []
    assert warnings == []


def test_packets_wait_for_a_late_dns_answer_up_to_the_bound(
        monkeypatch: pytest.MonkeyPatch, statsd: StatsdListener,
        warnings: list[logging.LogRecord]) -> None:
    _slow_dns(monkeypatch, 0.3)
    metrics = Metrics(SLOW_HOST, statsd.port, PREFIX)
    for i in range(250):
        metrics.gauge("queued", i)
    _resolved(metrics)
    metrics.close()
    values = [p.value for p in statsd.drain()]
    assert values == list(range(200)), "the first 200 are kept, in order"
    assert warnings == []


def test_close_lets_a_late_dns_answer_flush(
        monkeypatch: pytest.MonkeyPatch, statsd: StatsdListener,
        warnings: list[logging.LogRecord]) -> None:
    """An answer within FLUSH_WAIT_S still delivers what was sent before it."""
    _slow_dns(monkeypatch, 0.1)
    metrics = Metrics(SLOW_HOST, statsd.port, PREFIX)
    metrics.gauge("in_progress", 0)
    metrics.close()
    assert [p.line for p in statsd.drain()] == ["yomu_migrate.in_progress:0|g"]
    assert warnings == []


def test_close_does_not_wait_for_a_slower_dns_answer(
        monkeypatch: pytest.MonkeyPatch, statsd: StatsdListener,
        warnings: list[logging.LogRecord]) -> None:
    """A DNS answer later than FLUSH_WAIT_S (0.5 s) costs one warning, and nothing is
    sent after it."""
    _slow_dns(monkeypatch, 1.2)
    metrics = Metrics(SLOW_HOST, statsd.port, PREFIX)
    metrics.gauge("in_progress", 0)
    metrics.close()
    assert [(r.getMessage(), getattr(r, "event", None)) for r in warnings] == [
        ("metrics were not sent: STATSD_HOST did not resolve in time", "metrics_unavailable")]
    _resolved(metrics)
    assert statsd.drain(quiet_s=0.3) == [], "the late answer sends nothing"


def test_a_dns_failure_after_close_adds_no_second_warning(
        monkeypatch: pytest.MonkeyPatch, statsd: StatsdListener,
        warnings: list[logging.LogRecord]) -> None:
    _slow_dns(monkeypatch, 1.0, fails=True)
    metrics = Metrics(SLOW_HOST, statsd.port, PREFIX)
    metrics.incr("run.success")
    metrics.close()
    _resolved(metrics)
    assert [r.getMessage() for r in warnings] == [
        "metrics were not sent: STATSD_HOST did not resolve in time"]
