"""The migrator image, built with buildah and run against a real PostgreSQL.

What the Helm hook Job relies on: the image runs as a numeric non-root user, writes nothing
outside /tmp (the chart mounts the root read-only), finds its migrations without a checkout,
and `migrator upgrade` / `status` work from inside it. The build uses `make image`, whose
base is a Debian bookworm rootfs made by debootstrap (no registry is reachable here).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

pytestmark = [pytest.mark.image, pytest.mark.timeout(900)]

REPO = Path(__file__).resolve().parents[2]
IMAGE = "localhost/yomu-migrate:test"
BUILDAH_ENV = {**os.environ, "STORAGE_DRIVER": "vfs", "BUILDAH_ISOLATION": "chroot"}
# The runtime layers on top of the base: the virtualenv and the migrations. A build tool or a
# cache left in the runtime stage would blow this.
MAX_ADDED_BYTES = 80 * 1024 * 1024


def buildah(
    *args: str, check: bool = True, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["buildah", *args], env=BUILDAH_ENV, capture_output=True, text=True,
        timeout=timeout, check=check,
    )


@dataclass(frozen=True)
class Built:
    config: dict[str, Any]
    size: int
    base_size: int
    seconds: float


def _image_size(ref: str) -> int:
    """Bytes of the image's (uncompressed) layers, from its manifest."""
    inspect = json.loads(buildah("inspect", "--type", "image", ref).stdout)
    return sum(int(layer["size"]) for layer in json.loads(inspect["Manifest"])["layers"])


@pytest.fixture(scope="module")
def built() -> Built:
    """`make image` (base image cached in buildah's storage after the first run)."""
    started = time.monotonic()
    proc = subprocess.run(
        ["make", "--no-print-directory", "image", f"IMAGE={IMAGE}"],
        cwd=REPO, capture_output=True, text=True, timeout=840,
    )
    seconds = time.monotonic() - started
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    inspect = json.loads(buildah("inspect", "--type", "image", IMAGE).stdout)
    base_ref = "localhost/yomu-migrate-base:bookworm"
    return Built(inspect["OCIv1"]["config"], _image_size(IMAGE), _image_size(base_ref), seconds)


@pytest.fixture(scope="module")
def container(built: Built) -> Iterator[tuple[str, Path]]:
    """A working container of the image and its root filesystem, mounted on the host."""
    name = buildah("from", IMAGE).stdout.strip()
    mountpoint = Path(buildah("mount", name).stdout.strip())
    yield name, mountpoint
    buildah("umount", name, check=False)
    buildah("rm", name, check=False)


def run_read_only(
    config: dict[str, Any], rootfs: Path, argv: list[str], env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    """Run `argv` as the image would run: its user, env and workdir, root read-only, /tmp tmpfs.

    buildah's `run` has no read-only root, so this does what a kubelet does with
    readOnlyRootFilesystem: a read-only bind mount of the rootfs in a private mount namespace,
    a tmpfs on /tmp, and chroot as the image's numeric user. The network is the host's.
    """
    user = str(config["User"])
    image_env = [str(e) for e in config.get("Env") or []]
    full_env = [*image_env, *(f"{k}={v}" for k, v in env.items())]
    workdir = str(config.get("WorkingDir") or "/")
    with tempfile.TemporaryDirectory(prefix="yomu-ro-") as root:
        script = "\n".join([
            "set -e",
            f"mount --bind {shlex.quote(str(rootfs))} {root}",
            f"mount -o remount,bind,ro {root}",
            f"mount -t tmpfs -o size=64m,mode=1777 tmpfs {root}/tmp",
            f"mount --rbind /dev {root}/dev",
            f"mount -t proc proc {root}/proc",
            f"exec chroot --userspec={user} {root} /usr/bin/env -i -C {shlex.quote(workdir)} "
            + " ".join(shlex.quote(e) for e in full_env)
            + " " + " ".join(shlex.quote(a) for a in argv),
        ])
        return subprocess.run(
            ["unshare", "--mount", "--fork", "sh", "-c", script],
            capture_output=True, text=True, timeout=120,
        )


def entrypoint(config: dict[str, Any], *args: str) -> list[str]:
    return [*config["Entrypoint"], *args]


def test_image_config_is_non_root_with_entrypoint_and_labels(built: Built) -> None:
    config = built.config
    user = str(config["User"])
    assert re.fullmatch(r"[1-9][0-9]*:[0-9]+", user), f"user must be numeric non-root: {user}"
    assert config["Entrypoint"] == ["migrator"]
    assert config["Cmd"] == ["upgrade"]
    env = dict(str(e).split("=", 1) for e in config["Env"])
    assert env["MIGRATOR_MIGRATIONS_DIR"] == "/app/migrations"
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    labels = config["Labels"]
    version = re.search(r'^version = "(.+)"', (REPO / "pyproject.toml").read_text(), re.M)
    assert version is not None
    assert labels["org.opencontainers.image.version"] == version.group(1)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True)
    assert labels["org.opencontainers.image.revision"] == head.stdout.strip()
    assert str(labels["org.opencontainers.image.source"]).startswith("https://")


def test_image_size_is_reported_and_bounded(built: Built) -> None:
    added = built.size - built.base_size
    print(
        f"\nimage {IMAGE}: {built.size / 1e6:.1f} MB "
        f"(base {built.base_size / 1e6:.1f} MB + {added / 1e6:.1f} MB); "
        f"make image took {built.seconds:.0f}s"
    )
    assert 0 < added < MAX_ADDED_BYTES


def test_runtime_has_bytecode_and_no_package_manager(container: tuple[str, Path]) -> None:
    _, rootfs = container
    venv = rootfs / "opt" / "venv"
    assert not list(venv.glob("bin/pip*")), "pip must not ship in the runtime image"
    assert list(venv.glob("lib/python3*/site-packages/migrator/__pycache__/cli.*.pyc"))
    assert list((rootfs / "app" / "migrations" / "versions").glob("__pycache__/*.pyc"))


def test_runs_as_non_root_via_buildah_run(container: tuple[str, Path]) -> None:
    name, _ = container
    proc = buildah("run", "--network", "host", name, "--", "id", "-u")
    assert proc.stdout.strip() not in ("", "0")
    assert proc.stdout.strip() == "10001"


def test_upgrade_then_status_in_the_image(
    built: Built, container: tuple[str, Path], database_url: str
) -> None:
    name, rootfs = container
    # As the brief's `buildah run`: the image's own user, the host's network (127.0.0.1).
    upgrade = buildah(
        "run", "--network", "host", "--env", f"DATABASE_URL={database_url}",
        "--env", "MIGRATOR_LOG_FORMAT=json", name, "--", "migrator", "upgrade",
        check=False,
    )
    assert upgrade.returncode == 0, upgrade.stdout[-3000:] + upgrade.stderr[-3000:]
    assert "s3cr3t" not in upgrade.stdout + upgrade.stderr
    events = [json.loads(line) for line in upgrade.stdout.splitlines() if line.startswith("{")]
    assert events, upgrade.stdout
    with psycopg.connect(database_url) as conn:
        tables = {r[0] for r in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
        )}
    assert {"users", "sessions", "bookmarks"} <= tables

    # Read-only root, as the chart runs it: status must still work and report "at head".
    status = run_read_only(
        built.config, rootfs, entrypoint(built.config, "status", "--json"),
        {"DATABASE_URL": database_url},
    )
    assert status.returncode == 0, status.stdout[-3000:] + status.stderr[-3000:]
    report = json.loads(status.stdout.strip().splitlines()[-1])
    assert report["current"] == report["head"], report
    assert not report["pending"], report

    # A second upgrade under the read-only root is a no-op that succeeds.
    again = run_read_only(
        built.config, rootfs, entrypoint(built.config, "upgrade"), {"DATABASE_URL": database_url}
    )
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]


def test_read_only_sandbox_really_is_read_only(built: Built, container: tuple[str, Path]) -> None:
    """The check above means something only if writes outside /tmp do fail."""
    _, rootfs = container
    probe = ["/bin/sh", "-c", "touch /tmp/ok && id -u && touch /app/x"]
    proc = run_read_only(built.config, rootfs, probe, {})
    assert proc.stdout.strip() == "10001"
    assert proc.returncode != 0
    assert "Read-only file system" in proc.stderr
    assert not (rootfs / "app" / "x").exists()
