"""Every rendered object is valid Kubernetes (strict: no unknown field) for our versions."""

from __future__ import annotations

from typing import Any

import kubernetes_validate
import pytest
import yaml
from chart_render import CHART, ENVIRONMENTS, Rendered, render, rendered_file

# The chart's kubeVersion floor, and the newest version kubernetes-validate ships.
KUBE_VERSIONS = ["1.27.0", kubernetes_validate.latest_version()]
# Prometheus Operator kinds: no schema in kubernetes-validate; checked by shape below.
CUSTOM_KINDS = {"PrometheusRule", "ServiceMonitor"}

VARIANTS: dict[str, dict[str, Any]] = {
    "argocd": {"migrations": {"mode": "argocd"}, "monitoring": {"enabled": True}},
    "none": {"migrations": {"mode": "none"}, "networkPolicy": {"enabled": True}},
    "everything": {
        "api": {"ingress": {"enabled": True, "tlsSecretName": "tls"},
                "image": {"digest": "sha256:" + "0" * 64}},
        "networkPolicy": {"enabled": True},
        "monitoring": {"enabled": True, "serviceMonitor": {"enabled": True}},
        "migrations": {"ownerSecret": {"key": "MIGRATION_DATABASE_URL"},
                       "appRoles": ["yomu_app", "yomu_reports"],
                       "securityContext": {"capabilities": {"add": ["NET_BIND_SERVICE"]}},
                       "tolerations": [{"key": "batch", "operator": "Exists"}]},
        "mesh": {"injectMigrationJob": True, "excludeOutboundPorts": [5432, 6432]},
    },
    "shared-exporter": {
        "monitoring": {"enabled": True, "statsdExporter": {"enabled": False}},
        "metrics": {"statsdHost": "statsd-exporter.monitoring.svc", "statsdPort": 9125},
    },
}


def _all_renders() -> list[tuple[str, Rendered]]:
    return [(env, rendered_file(env)) for env in ENVIRONMENTS] + [
        (name, render(values)) for name, values in VARIANTS.items()
    ]


RENDERS = _all_renders()


@pytest.mark.parametrize("version", KUBE_VERSIONS)
@pytest.mark.parametrize(("label", "rendered"), RENDERS, ids=[label for label, _ in RENDERS])
def test_every_object_validates(label: str, rendered: Rendered, version: str) -> None:
    checked = 0
    for obj in rendered.objects:
        if obj["kind"] in CUSTOM_KINDS:
            continue
        kubernetes_validate.validate(obj, version, strict=True)
        checked += 1
    assert checked >= 6, f"{label}: only {checked} objects rendered"


def test_prometheus_rule_has_the_rule_file_shape() -> None:
    rendered = rendered_file("prod.yaml")
    rule = rendered.get("PrometheusRule", "yomu-migrations")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    groups = rule["spec"]["groups"]
    assert groups, "no rule group embedded"
    for group in groups:
        assert group["name"] and group["rules"]
        for r in group["rules"]:
            assert ("alert" in r) != ("record" in r) and r["expr"]
    # The file with its placeholders replaced, nothing else (no tpl): Prometheus' own
    # {{ $labels }} templates survive.
    source = (CHART / "files" / "prometheus-rules.yaml").read_text()
    for name, value in {"namespace": "yomu", "job_name": "yomu-migrations",
                        "environment": "prod", "release": "yomu", "stuck_for": "330s",
                        "deadline": "240", "grace": "30"}.items():
        source = source.replace("${" + name + "}", value)
    assert rule["spec"] == yaml.safe_load(source)
    assert "{{ $labels.environment }}" in str(rule["spec"])


def test_service_monitor_scrapes_the_exporter_metrics_port() -> None:
    rendered = rendered_file("prod.yaml")
    monitor = rendered.get("ServiceMonitor", "yomu-statsd-exporter")
    service = rendered.get("Service", "yomu-statsd-exporter")
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= service["metadata"]["labels"].items()
    port_names = {p["name"] for p in service["spec"]["ports"]}
    assert {e["port"] for e in monitor["spec"]["endpoints"]} <= port_names
