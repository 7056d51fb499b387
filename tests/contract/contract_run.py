"""Run a rendered container spec here, as the kubelet would run it from the migrator image.

The command is the image's ENTRYPOINT (read from migrator/Dockerfile) plus the container's
args; the environment is the image's ENV overlaid with the container's env, where every
secretKeyRef / configMapKeyRef is resolved against the rendered Secrets and ConfigMaps (or
Secrets that exist before the release, passed in). Nothing else from this process leaks in,
so a variable the chart forgets, or names differently from the migrator, fails here.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from chart_render import REPO, Obj, Rendered, secret_data

DOCKERFILE = REPO / "migrator" / "Dockerfile"
# Paths inside the image and what they were copied from (migrator/Dockerfile's COPY lines).
IMAGE_PATHS = {"/app/migrations": REPO / "migrations"}


def image_entrypoint() -> list[str]:
    """The runtime stage's ENTRYPOINT, exec form."""
    found = re.findall(r"^ENTRYPOINT\s+(\[.*\])\s*$", DOCKERFILE.read_text(), re.MULTILINE)
    assert found, "migrator/Dockerfile has no exec-form ENTRYPOINT"
    entrypoint: list[str] = json.loads(found[-1])
    return entrypoint


def image_env() -> dict[str, str]:
    """The runtime stage's ENV, with image paths mapped to this checkout."""
    text = DOCKERFILE.read_text().split("AS runtime", 1)[1].replace("\\\n", " ")
    env: dict[str, str] = {}
    for line in re.findall(r"^ENV\s+(.*)$", text, re.MULTILINE):
        for name, value in re.findall(r"([A-Za-z_][A-Za-z0-9_]*)=(\S+)", line):
            env[name] = str(IMAGE_PATHS.get(value, value))
    env.pop("PATH", None)  # the image's venv is this interpreter's
    return env


def resolve_env(container: Obj, rendered: Rendered,
                existing_secrets: dict[str, dict[str, str]] | None = None) -> dict[str, str]:
    """The container's env as the kubelet computes it (later entries win)."""
    secrets = {s["metadata"]["name"]: secret_data(s) for s in rendered.of_kind("Secret")}
    secrets.update(existing_secrets or {})
    configmaps = {c["metadata"]["name"]: c.get("data", {}) for c in rendered.of_kind("ConfigMap")}
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "secretRef" in source:
            env.update(secrets[source["secretRef"]["name"]])
        if "configMapRef" in source:
            env.update(configmaps[source["configMapRef"]["name"]])
    for var in container.get("env", []):
        if "value" in var:
            env[var["name"]] = str(var["value"])
            continue
        ref = var["valueFrom"]
        if "secretKeyRef" in ref:
            store, key = secrets, ref["secretKeyRef"]
        else:
            store, key = configmaps, ref["configMapKeyRef"]
        if key["name"] not in store or key["key"] not in store[key["name"]]:
            assert key.get("optional"), f"{var['name']}: {key} does not exist"
            continue
        env[var["name"]] = store[key["name"]][key["key"]]
    return env


def command_of(container: Obj) -> list[str]:
    """ENTRYPOINT + args; `migrator` is the console script of this checkout's package."""
    entrypoint = container.get("command") or image_entrypoint()
    assert entrypoint == ["migrator"], f"unexpected entrypoint {entrypoint}"
    return [sys.executable, "-m", "migrator", *container.get("args", [])]


def run_container(container: Obj, rendered: Rendered,
                  existing_secrets: dict[str, dict[str, str]] | None = None,
                  timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**image_env(), **resolve_env(container, rendered, existing_secrets)}
    env["PATH"] = str(Path(sys.executable).parent) + ":/usr/bin:/bin"
    with tempfile.TemporaryDirectory(prefix="yomu-pod-") as workdir:
        env["HOME"] = workdir
        return subprocess.run(command_of(container), env=env, cwd=workdir, capture_output=True,
                              text=True, timeout=timeout)


def job_container(rendered: Rendered) -> Obj:
    (container,) = rendered.job()["spec"]["template"]["spec"]["containers"]
    return dict(container)


def init_container(rendered: Rendered) -> Obj:
    (container,) = rendered.api()["spec"]["template"]["spec"]["initContainers"]
    return dict(container)


def json_lines(text: str) -> list[dict[str, Any]]:
    """Every non-empty stdout line must be one JSON object (MIGRATOR_LOG_FORMAT=json)."""
    return [json.loads(line) for line in text.splitlines() if line.strip()]
