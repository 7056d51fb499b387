"""Build the test cluster's Go binaries once per machine, and find them afterwards.

The control plane (kube-apiserver, kube-controller-manager, etcd and kubectl in one binary),
both Helm majors and statsd_exporter are built from the Go module proxy by the small modules
under tests/cluster/go/. A cold build takes 15-25 minutes on 2 cores, so the binaries live
outside the repository, keyed by what determines them (the module's go.mod, go.sum and
sources, the Go version, the link flags): a new machine pays the build once, a checkout that
changes nothing relinks nothing, and a change to go.sum builds anew.

`python tests/cluster/build.py` builds what is missing, showing progress; `make test` runs it
before pytest so the build's progress is not hidden in a test's captured output.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
MODULES = HERE / "go"
KUBE_VERSION = "v1.36.3"
HELM3_VERSION = "v3.19.5"
HELM4_VERSION = "v4.3.2"
STATSD_EXPORTER_VERSION = "v0.28.0"


def cache_root() -> Path:
    """Where built binaries are kept: YOMU_TEST_CACHE, else the user's cache folder."""
    configured = os.environ.get("YOMU_TEST_CACHE")
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "yomu-migrate" / "testcluster"


@dataclass(frozen=True)
class Target:
    """One binary: the module that builds it, the package, and its version stamps."""

    name: str
    module: str
    package: str
    ldflags: tuple[str, ...]

    @property
    def folder(self) -> Path:
        return MODULES / self.module

    def key(self, go_version: str) -> str:
        digest = hashlib.sha256(go_version.encode())
        digest.update("\0".join(self.ldflags).encode())
        for path in sorted(self.folder.glob("*")):
            if path.suffix in {".go", ".mod", ".sum"}:
                digest.update(path.name.encode() + b"\0" + path.read_bytes())
        return digest.hexdigest()[:16]


def _stamps(package: str, **values: str) -> tuple[str, ...]:
    return tuple(f"-X {package}.{name}={value}" for name, value in values.items())


_K8S_VERSION = dict(gitVersion=KUBE_VERSION, gitMajor="1", gitMinor="36",
                    gitTreeState="clean")

TARGETS = {
    t.name: t
    for t in (
        Target(
            "kube", "kube", ".",
            _stamps("k8s.io/component-base/version", **_K8S_VERSION)
            + _stamps("k8s.io/client-go/pkg/version", **_K8S_VERSION),
        ),
        Target(
            "helm3", "helm3", "helm.sh/helm/v3/cmd/helm",
            _stamps("helm.sh/helm/v3/internal/version", version=HELM3_VERSION,
                    gitTreeState="clean")
            # Helm 3's default .Capabilities.KubeVersion and lint's deprecation floor: its
            # Makefile sets them from the client-go it builds with (v0.34 -> 1.34).
            + _stamps("helm.sh/helm/v3/pkg/chartutil", k8sVersionMajor="1",
                      k8sVersionMinor="34")
            + _stamps("helm.sh/helm/v3/pkg/lint/rules", k8sVersionMajor="1",
                      k8sVersionMinor="34"),
        ),
        Target(
            "helm4", "helm4", "helm.sh/helm/v4/cmd/helm",
            _stamps("helm.sh/helm/v4/internal/version", version=HELM4_VERSION,
                    gitTreeState="clean"),
        ),
        Target(
            "statsd_exporter", "statsd_exporter", "github.com/prometheus/statsd_exporter",
            _stamps("github.com/prometheus/common/version", Version=STATSD_EXPORTER_VERSION[1:],
                    Branch="HEAD"),
        ),
    )
}


def go_version() -> str:
    go = shutil.which("go")
    if go is None:
        raise SystemExit(
            "go is not installed: the test cluster is built from source with Go 1.26 "
            "(https://go.dev/doc/install), see docs/testing.md"
        )
    return subprocess.run([go, "env", "GOVERSION"], capture_output=True, text=True,
                          check=True).stdout.strip()


def binary_path(name: str, version: str | None = None) -> Path:
    """Where `name` is (or will be) for this checkout's sources and this Go."""
    target = TARGETS[name]
    key = target.key(version or go_version())
    return cache_root() / f"{name}-{key}" / name


def _count_packages(target: Target, env: dict[str, str]) -> int:
    listed = subprocess.run(["go", "list", "-deps", target.package], cwd=target.folder,
                            capture_output=True, text=True, env=env)
    return len(listed.stdout.split()) if listed.returncode == 0 else 0


def _build(target: Target, out: Path) -> None:
    env = {**os.environ, "CGO_ENABLED": "0", "GOFLAGS": "-buildvcs=false"}
    total = _count_packages(target, env)
    tmp = out.with_name(out.name + ".part")
    cmd = ["go", "build", "-v", "-trimpath", "-ldflags", " ".join(("-s", "-w", *target.ldflags)),
           "-o", str(tmp), target.package]
    started = time.monotonic()
    done = 0
    log = out.parent / "build.log"
    print(f"[{target.name}] building ({total or '?'} packages; log: {log})", flush=True)
    with log.open("w") as sink:
        proc = subprocess.Popen(cmd, cwd=target.folder, env=env, stdout=sink,
                                stderr=subprocess.PIPE, text=True)
        assert proc.stderr is not None
        stop = threading.Event()

        def report() -> None:
            while not stop.wait(20):
                elapsed = int(time.monotonic() - started)
                print(f"[{target.name}] {done}/{total or '?'} packages, "
                      f"{elapsed // 60}m{elapsed % 60:02d}s", flush=True)

        ticker = threading.Thread(target=report, daemon=True)
        ticker.start()
        for line in proc.stderr:
            sink.write(line)
            done += 1
        code = proc.wait()
        stop.set()
    if code != 0:
        tail = log.read_text().splitlines()[-25:]
        raise SystemExit(f"[{target.name}] go build failed (exit {code}); last lines of {log}:\n"
                         + "\n".join(tail))
    tmp.rename(out)
    elapsed = int(time.monotonic() - started)
    print(f"[{target.name}] built in {elapsed // 60}m{elapsed % 60:02d}s: {out}", flush=True)


def ensure(names: list[str] | None = None) -> dict[str, Path]:
    """Build every missing binary (one builder at a time per machine); return their paths."""
    version = go_version()
    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    paths = {}
    with open(root / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        for name in names or list(TARGETS):
            out = binary_path(name, version)
            if not out.exists():
                out.parent.mkdir(parents=True, exist_ok=True)
                _build(TARGETS[name], out)
            paths[name] = out
    return paths


if __name__ == "__main__":
    started = time.monotonic()
    for name, path in ensure(sys.argv[1:] or None).items():
        print(f"{name}: {path}")
    print(f"test cluster binaries ready ({time.monotonic() - started:.0f}s)")
