"""Render the chart in-process (helm-python-sdk) and look objects up in the result.

Shared by tests/chart and tests/contract so both read the manifests the same way Helm
would apply them: defaults coalesced with the given values, one dict per YAML document.
"""

from __future__ import annotations

import base64
import copy
import functools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import helm_python
import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "chart"
VALUES_DIR = REPO / "values"
VALUES_FILES = sorted(VALUES_DIR.glob("*.yaml"))
RELEASE = "yomu"
# fullnameOverride's default: every object is <FULLNAME>-<component>, whatever the release name.
FULLNAME = "yomu"
NAMESPACE = "yomu"
# What the prod deploy adds on the command line (docs/chart.md): images pinned by digest.
PIPELINE_DIGESTS = {
    "api": {"image": {"digest": "sha256:" + "1" * 64}},
    "migrations": {"image": {"digest": "sha256:" + "2" * 64}},
    "monitoring": {"statsdExporter": {"image": {"digest": "sha256:" + "3" * 64}}},
}
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


def render(values: dict[str, Any] | None = None, *, name: str = RELEASE,
           upgrade: bool = False) -> Rendered:
    with helm_python.Chart.load(CHART) as chart:
        manifests = chart.render(values or {}, name=name, namespace=NAMESPACE,
                                 is_install=not upgrade, is_upgrade=upgrade,
                                 revision=2 if upgrade else 1)
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
