"""A StatsD server reduced to what a test needs: the datagrams the real CLI sends."""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class Packet:
    name: str
    value: float
    type: str
    line: str


class StatsdListener:
    """A StatsD server reduced to what a test needs: keep every line that arrives."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port: int = self.sock.getsockname()[1]
        self.packets: list[Packet] = []

    def drain(self, quiet_s: float = 0.3, limit_s: float = 5.0) -> list[Packet]:
        """Everything received until the line has been quiet for `quiet_s`."""
        self.sock.settimeout(quiet_s)
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline:
            try:
                data = self.sock.recv(65535)
            except TimeoutError:
                break
            for line in data.decode().splitlines():
                name, _, rest = line.partition(":")
                value, _, kind = rest.partition("|")
                self.packets.append(Packet(name, float(value), kind, line))
        return self.packets

    def close(self) -> None:
        self.sock.close()
