"""The hook's no-op run inside the migrator image (`buildah run`) against the same run outside.

A no-op `migrator upgrade` at head is what almost every deploy's hook Job does. Inside the
image it runs on the image's interpreter, libraries and bytecode (compiled at build time,
the root filesystem as the Job sees it); outside, from this checkout's virtualenv. Both
runs alternate against the same database; `buildah run` adds its own start (a chroot and
the container's mounts, vfs storage), which a kubelet's container start replaces.

    python -m bench.image      # this row alone (needs root, buildah, and `make image`)
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import time

from bench.report import Row, seconds
from bench.suite import Bench, Sizes, local_server

IMAGE = os.environ.get("BENCH_IMAGE", "localhost/yomu-migrate:dev")
BUILDAH_ENV = {**os.environ, "STORAGE_DRIVER": "vfs", "BUILDAH_ISOLATION": "chroot"}


def _buildah(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["buildah", *args], env=BUILDAH_ENV, capture_output=True, text=True,
                          timeout=300)


def available(image: str = IMAGE) -> str | None:
    """Why the row cannot run here, or None when it can."""
    if shutil.which("buildah") is None:
        return "no buildah"
    if _buildah("inspect", "--type", "image", image).returncode != 0:
        return f"no image {image} (make image)"
    return None


def image_size(image: str = IMAGE) -> int:
    inspect = json.loads(_buildah("inspect", "--type", "image", image).stdout)
    return sum(int(layer["size"]) for layer in json.loads(inspect["Manifest"])["layers"])


def row(bench: Bench, runs: int, image: str = IMAGE) -> Row:
    scenario = "hook no-op at head: in the image (buildah run) / outside it"
    why = available(image)
    if why is not None:
        return Row(scenario, f"skipped: {why}", "-", None, "-")
    url = bench.database()
    bench.ours(url)  # to head, from outside
    container = _buildah("from", image).stdout.strip()
    try:
        inside, outside = [], []
        for _ in range(runs):
            started = time.perf_counter()
            proc = _buildah("run", "--network", "host", "--env", f"DATABASE_URL={url}",
                            "--env", "MIGRATOR_LOG_FORMAT=json", container, "--",
                            "migrator", "upgrade")
            inside.append(time.perf_counter() - started)
            if proc.returncode != 0 or '"outcome": "noop"' not in proc.stdout:
                raise RuntimeError(f"in-image no-op failed ({proc.returncode}): "
                                   f"{(proc.stdout + proc.stderr)[-2000:]}")
            outside.append(bench.ours(url))
    finally:
        _buildah("rm", container)
    a, b = statistics.median(inside), statistics.median(outside)
    return Row(f"{scenario} (median of {runs}; image {image_size(image) / 1e6:.0f} MB)",
               seconds(a), f"{seconds(b)} (outside)", a / b, "-")


def main() -> int:
    with local_server() as server:
        bench = Bench(server, Sizes())
        try:
            result = row(bench, 9)
        finally:
            bench.close()
    from bench.report import table

    print(table([result]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
