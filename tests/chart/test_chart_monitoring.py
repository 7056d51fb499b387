"""The statsd_exporter and the PrometheusRule, rendered only with monitoring.enabled."""

from __future__ import annotations

import yaml
from chart_render import Rendered, render

EXPORTER = "yomu-statsd-exporter"


def test_no_monitoring_objects_by_default(default: Rendered) -> None:
    kinds = {o["kind"] for o in default.objects}
    assert not kinds & {"PrometheusRule", "ServiceMonitor"}
    assert default.find("Deployment", EXPORTER) is None


def test_exporter_listens_for_statsd_and_serves_metrics(prod: Rendered) -> None:
    deploy = prod.get("Deployment", EXPORTER)
    (c,) = deploy["spec"]["template"]["spec"]["containers"]
    assert {(p["containerPort"], p["protocol"]) for p in c["ports"]} == {
        (9125, "UDP"), (9125, "TCP"), (9102, "TCP")}
    assert "--statsd.mapping-config=/etc/statsd-exporter/statsd-mapping.yaml" in c["args"]
    service = prod.get("Service", EXPORTER)
    assert {(p["port"], p["protocol"]) for p in service["spec"]["ports"]} == {
        (9125, "UDP"), (9125, "TCP"), (9102, "TCP")}
    mount = c["volumeMounts"][0]
    volume = deploy["spec"]["template"]["spec"]["volumes"][0]
    assert mount["mountPath"] == "/etc/statsd-exporter"
    assert volume["configMap"]["name"] == EXPORTER


def test_mapping_is_rendered_with_tpl_for_this_release(prod: Rendered) -> None:
    mapping_text = prod.get("ConfigMap", EXPORTER)["data"]["statsd-mapping.yaml"]
    assert "{{" not in mapping_text
    mapping = yaml.safe_load(mapping_text)
    assert mapping["mappings"], "no mapping rendered"
    labels = [m.get("labels") or {} for m in mapping["mappings"]]
    assert any(lab.get("environment") == "prod" for lab in labels)
    staging = render({"environment": "staging", "monitoring": {"enabled": True}})
    assert "staging" in staging.get("ConfigMap", EXPORTER)["data"]["statsd-mapping.yaml"]


def test_rule_labels_are_configurable() -> None:
    rendered = render({"monitoring": {"enabled": True,
                                      "prometheusRule": {"labels": {"release": "kps"}}}})
    rule = rendered.get("PrometheusRule", "yomu-migrations")
    assert rule["metadata"]["labels"]["release"] == "kps"


def test_network_policy_lets_only_the_job_send_statsd(prod: Rendered) -> None:
    policy = prod.get("NetworkPolicy", EXPORTER)
    statsd_rule = policy["spec"]["ingress"][0]
    job_labels = prod.job()["spec"]["template"]["metadata"]["labels"]
    selector = statsd_rule["from"][0]["podSelector"]["matchLabels"]
    assert selector.items() <= job_labels.items()
    api_pod_labels = prod.api()["spec"]["template"]["metadata"]["labels"]
    assert not selector.items() <= api_pod_labels.items()
