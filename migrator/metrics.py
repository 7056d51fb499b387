"""StatsD metrics that can never fail or slow a migration.

The sink is best effort: the host is resolved on a background thread (a slow or broken DNS
must not delay the run), packets sent before it resolves are kept and sent once it does,
and any problem is one warning, after which metrics are simply off for the run.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from migrator.logs import event

# How long, at exit, a late DNS answer may still delay the process.
FLUSH_WAIT_S = 0.5
_MAX_PENDING = 200


class Metrics:
    """The migrator's metrics: names are fixed here, the prefix comes from STATSD_PREFIX."""

    def __init__(self, host: str | None, port: int, prefix: str) -> None:
        self._client: Any = None
        self._pending: list[Callable[[Any], None]] = []
        self._lock = threading.Lock()
        self._disabled = host is None
        self._resolver: threading.Thread | None = None
        if host is not None:
            self._resolver = threading.Thread(
                target=self._connect, args=(host, port, prefix), daemon=True
            )
            self._resolver.start()

    def _connect(self, host: str, port: int, prefix: str) -> None:
        try:
            client = _client(host, port, prefix)
        except (OSError, UnicodeError) as exc:
            self._give_up(f"metrics are off for this run: cannot reach STATSD_HOST={host} ({exc})")
            return
        with self._lock:
            self._client = client
            pending, self._pending = self._pending, []
        for send in pending:
            if not self._send(client, send):
                return

    def _send(self, client: Any, send: Callable[[Any], None]) -> bool:
        """One send; a refused one (ICMP from an earlier packet) turns metrics off."""
        try:
            send(client)
        except OSError as exc:
            self._give_up(f"metrics are off for this run: StatsD refused them ({exc}); is "
                          "anything listening on STATSD_HOST:STATSD_PORT?")
            return False
        return True

    def _give_up(self, message: str) -> None:
        with self._lock:
            if self._disabled:
                return
            self._disabled = True
            self._pending.clear()
        event("metrics_unavailable", message, logging.WARNING)

    def _emit(self, send: Callable[[Any], None]) -> None:
        with self._lock:
            if self._disabled:
                return
            if self._client is None:
                if len(self._pending) < _MAX_PENDING:
                    self._pending.append(send)
                return
            client = self._client
        self._send(client, send)

    # What the migrator reports.
    def timing(self, name: str, seconds: float) -> None:
        self._emit(lambda c: c.timing(name, round(seconds * 1000)))

    def incr(self, name: str) -> None:
        self._emit(lambda c: c.incr(name))

    def gauge(self, name: str, value: float) -> None:
        self._emit(lambda c: c.gauge(name, value))

    def run_started(self) -> None:
        """The start time first, then in_progress: an alert reading both never pairs a new
        in_progress=1 with the previous run's start (one socket, so the order holds)."""
        self.gauge("run.started_timestamp", int(time.time()))
        self.gauge("in_progress", 1)

    def run_finished(self, outcome: str, seconds: float, schema_version: int | None) -> None:
        """`outcome` is success, noop, or failure.<kind>."""
        self.timing("run.duration", seconds)
        self.incr(f"run.{outcome}")
        if schema_version is not None:
            self.gauge("schema.version", schema_version)
        self.gauge("last_run.success", 0 if outcome.startswith("failure") else 1)
        self.gauge("last_run.duration_seconds", round(seconds, 3))
        self.gauge("last_run.timestamp", int(time.time()))
        self.gauge("in_progress", 0)

    def close(self) -> None:
        """Give a late DNS answer a short, bounded chance to flush what is pending."""
        if self._resolver is not None:
            self._resolver.join(FLUSH_WAIT_S)
        with self._lock:
            late = self._client is None and bool(self._pending) and not self._disabled
            if late:
                self._disabled = True
                self._pending.clear()
        if late:
            event("metrics_unavailable", "metrics were not sent: STATSD_HOST did not resolve in "
                  "time", logging.WARNING)


def _client(host: str, port: int, prefix: str) -> Any:
    """A statsd client on a connected UDP socket, whose sends raise instead of being dropped.

    The statsd package swallows send errors. On a connected socket the kernel reports an
    ICMP "port unreachable" from an earlier packet on the next send, which is how a closed
    port becomes one warning instead of silence. It never waits for anything.
    """
    import statsd

    class _Client(statsd.StatsClient):  # type: ignore[misc]
        def _send(self, data: str) -> None:
            self._sock.send(data.encode("ascii"))

    client = _Client(host, port, prefix=prefix)
    client._sock.connect(client._addr)
    return client
