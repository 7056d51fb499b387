"""Render the chart in-process (helm-python-sdk) and look objects up in the result.

Shared by tests/chart and tests/contract so both read the manifests the same way Helm
would apply them: defaults coalesced with the given values, one dict per YAML document.
"""

from __future__ import annotations

import base64
import copy
import functools
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import helm_python
import yaml
from helm_python import _native

REPO = Path(__file__).resolve().parents[2]
# YOMU_CHART_DIR: render another copy of the chart (tests/mutation/chart_env.py's mutants).
CHART = Path(os.environ.get("YOMU_CHART_DIR") or REPO / "chart")
VALUES_DIR = REPO / "values"
VALUES_FILES = sorted(VALUES_DIR.glob("*.yaml"))
RELEASE = "yomu"
# fullnameOverride's default: every object is <FULLNAME>-<component>, whatever the release name.
FULLNAME = "yomu"
NAMESPACE = "yomu"
# What the clusters we deploy to serve besides Kubernetes itself: the Prometheus Operator's
# API, which the chart's capability checks look for before rendering its kinds.
MONITORING_APIS = ("monitoring.coreos.com/v1", "monitoring.coreos.com/v1/PrometheusRule",
                   "monitoring.coreos.com/v1/ServiceMonitor")
HOOK_KINDS_BEFORE_JOB = ("Secret", "ServiceAccount", "NetworkPolicy")

Obj = dict[str, Any]


def load_values(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text()) or {}
    assert isinstance(data, dict), path
    return data


def merge(base: dict[str, Any], *overrides: dict[str, Any]) -> dict[str, Any]:
    """Deep merge, later wins: how `-f a.yaml -f b.yaml --set ...` combine."""
    out = copy.deepcopy(base)
    for over in overrides:
        for key, value in over.items():
            if isinstance(value, dict) and isinstance(out.get(key), dict):
                out[key] = merge(out[key], value)
            else:
                out[key] = copy.deepcopy(value)
    return out


@dataclass
class Rendered:
    """The objects of one render, plus the values Helm computed for it."""

    objects: list[Obj]
    values: dict[str, Any]
    notes: str

    def of_kind(self, kind: str) -> list[Obj]:
        return [o for o in self.objects if o["kind"] == kind]

    def get(self, kind: str, name: str) -> Obj:
        found = [o for o in self.of_kind(kind) if o["metadata"]["name"] == name]
        assert len(found) == 1, f"{kind}/{name}: found {len(found)}"
        return found[0]

    def find(self, kind: str, name: str) -> Obj | None:
        found = [o for o in self.of_kind(kind) if o["metadata"]["name"] == name]
        return found[0] if found else None

    def job(self) -> Obj:
        return self.get("Job", f"{FULLNAME}-migrations")

    def api(self) -> Obj:
        return self.get("Deployment", f"{FULLNAME}-api")


def render_manifests(
    values: dict[str, Any] | None = None, *, name: str = RELEASE, namespace: str = NAMESPACE,
    upgrade: bool = False, api_versions: tuple[str, ...] = MONITORING_APIS,
    kube_version: str | None = None, chart_dir: Path = CHART,
) -> dict[str, str]:
    """Template path -> rendered text, as `helm template --api-versions ...` prints it.

    helm-python's Chart.render has no parameter for the cluster's API versions, which the
    chart's capability checks read; its native call takes them (`api_versions`), as
    `helm template --api-versions` and a cluster's discovery do.
    """
    opts: dict[str, Any] = {"name": name, "namespace": namespace, "is_install": not upgrade,
                            "is_upgrade": upgrade, "revision": 2 if upgrade else 1,
                            "api_versions": list(api_versions)}
    if kube_version:
        opts["kube_version"] = kube_version
    with helm_python.Chart.load(chart_dir) as chart:
        payload = json.dumps(values) if values else None
        rendered = _native.call_string("helm_render", chart._raw(), payload, json.dumps(opts))
    manifests: dict[str, str] = json.loads(rendered)
    return manifests


def render(values: dict[str, Any] | None = None, *, name: str = RELEASE,
           upgrade: bool = False, api_versions: tuple[str, ...] = MONITORING_APIS) -> Rendered:
    manifests = render_manifests(values, name=name, upgrade=upgrade, api_versions=api_versions)
    with helm_python.Chart.load(CHART) as chart:
        computed = chart.merge_values(values or {})
    objects: list[Obj] = []
    notes = ""
    for path, text in sorted(manifests.items()):
        if path.endswith("NOTES.txt"):
            notes = text
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                doc.setdefault("metadata", {}).setdefault("annotations", {})
                objects.append(doc)
    return Rendered(objects, computed, notes)


def pod_specs(rendered: Rendered) -> Iterator[tuple[Obj, Obj]]:
    """(object, pod spec) of every workload."""
    for obj in rendered.objects:
        if obj["kind"] in ("Deployment", "Job"):
            yield obj, obj["spec"]["template"]["spec"]


def containers(pod_spec: Obj) -> list[Obj]:
    return [*pod_spec.get("initContainers", []), *pod_spec["containers"]]


def secret_data(secret: Obj) -> dict[str, str]:
    """A Secret's keys as text, whether rendered as data (base64) or stringData."""
    out = {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}
    out.update(secret.get("stringData") or {})
    return out


def hook_annotations(obj: Obj) -> dict[str, str]:
    return {k: v for k, v in obj["metadata"]["annotations"].items()
            if k.startswith(("helm.sh/hook", "argocd.argoproj.io/"))}


@functools.cache
def rendered_file(name: str) -> Rendered:
    """Render once per session: `name` is a file in values/, or "default" (the chart's own)."""
    if name == "default":
        return render()
    return render(load_values(VALUES_DIR / name))


ENVIRONMENTS = ["default", *(p.name for p in VALUES_FILES)]
