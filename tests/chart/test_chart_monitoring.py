"""The statsd_exporter and the PrometheusRule, rendered only with monitoring.enabled."""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml
from chart_render import CHART, VALUES_DIR, Rendered, load_values, merge, render, render_manifests

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


def _pod_template(rendered: Rendered) -> dict[str, object]:
    template: dict[str, object] = rendered.get("Deployment", EXPORTER)["spec"]["template"]
    return template


def test_a_chart_bump_does_not_restart_the_exporter(tmp_path: Path) -> None:
    """The exporter keeps the last run's gauges in memory: its pod template must not change
    with the chart or app version, or every upgrade would restart it seconds after the hook
    sent them."""
    bumped = tmp_path / "chart"
    shutil.copytree(CHART, bumped)
    meta = yaml.safe_load((bumped / "Chart.yaml").read_text())
    meta["version"], meta["appVersion"] = "9.9.9", "9.9.9"
    (bumped / "Chart.yaml").write_text(yaml.safe_dump(meta))
    values = load_values(VALUES_DIR / "prod.yaml")
    manifests = {
        name: render_manifests(values, chart_dir=chart, upgrade=True)
        for name, chart in (("old", CHART), ("new", bumped))
    }

    def exporter(which: str) -> dict[str, object]:
        text = next(t for p, t in manifests[which].items()
                    if p.endswith("statsd-exporter-deployment.yaml"))
        deployment: dict[str, object] = yaml.safe_load(text)
        return deployment

    old, new = exporter("old"), exporter("new")
    assert old["spec"]["template"] == new["spec"]["template"]  # type: ignore[index]
    assert old["metadata"] != new["metadata"], "the Deployment itself does carry the version"
    labels = old["spec"]["template"]["metadata"]["labels"]  # type: ignore[index]
    assert "helm.sh/chart" not in labels and "app.kubernetes.io/version" not in labels
    # A changed mapping does restart it (the pods must load it).
    other = render_manifests(merge(values, {"metrics": {"prefix": "other"}}), upgrade=True)
    text = next(t for p, t in other.items() if p.endswith("statsd-exporter-deployment.yaml"))
    assert yaml.safe_load(text)["spec"]["template"] != old["spec"]["template"]  # type: ignore[index]


def test_the_exporter_has_a_disruption_budget(prod: Rendered) -> None:
    pdb = prod.get("PodDisruptionBudget", EXPORTER)
    deploy = prod.get("Deployment", EXPORTER)
    assert deploy["spec"]["replicas"] == 1
    assert pdb["spec"]["minAvailable"] == 1
    assert pdb["spec"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow"
    assert pdb["spec"]["selector"]["matchLabels"].items() <= (
        deploy["spec"]["template"]["metadata"]["labels"].items())
    off = render({"monitoring": {"enabled": True,
                                 "statsdExporter": {"podDisruptionBudget": {"enabled": False}}}})
    assert off.find("PodDisruptionBudget", EXPORTER) is None


def test_monitoring_kinds_need_the_operator_api(prod: Rendered) -> None:
    """No Prometheus Operator CRDs: the release still installs, without those two objects,
    and the notes say the alerts are missing."""
    values = load_values(VALUES_DIR / "prod.yaml")
    bare = render(values, api_versions=())
    kinds = {o["kind"] for o in bare.objects}
    assert not kinds & {"PrometheusRule", "ServiceMonitor"}
    assert bare.find("Deployment", EXPORTER) is not None
    assert "no PrometheusRule was rendered" in bare.notes
    assert "no ServiceMonitor was rendered" in bare.notes
    assert {"PrometheusRule", "ServiceMonitor"} <= {o["kind"] for o in prod.objects}
    assert "WARNING" not in prod.notes
    # `helm template --api-versions monitoring.coreos.com/v1` (Argo CD passes the cluster's).
    group_only = render(values, api_versions=("monitoring.coreos.com/v1",))
    assert {"PrometheusRule", "ServiceMonitor"} <= {o["kind"] for o in group_only.objects}


def test_service_monitor_keeps_the_mappings_namespace(prod: Rendered) -> None:
    (endpoint,) = prod.get("ServiceMonitor", EXPORTER)["spec"]["endpoints"]
    assert endpoint["honorLabels"] is True


def test_a_shared_exporter_replaces_the_in_chart_one() -> None:
    """metrics.statsdHost names an exporter that outlives the release (it measures the first
    install too): no exporter of our own, the Job sends there, the alerts stay."""
    rendered = render({"monitoring": {"enabled": True, "statsdExporter": {"enabled": False}},
                       "networkPolicy": {"enabled": True},
                       "metrics": {"statsdHost": "statsd-exporter.monitoring.svc",
                                   "statsdPort": 9125}})
    assert not [o for o in rendered.objects if o["metadata"]["name"] == EXPORTER]
    (container,) = rendered.job()["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["STATSD_HOST"] == "statsd-exporter.monitoring.svc"
    assert rendered.get("PrometheusRule", "yomu-migrations")
    assert "statsd-exporter.monitoring.svc:9125" in rendered.notes
    assert "NOT measured" not in rendered.notes


def test_notes_say_the_first_install_was_not_measured() -> None:
    values = {"monitoring": {"enabled": True}}
    assert "first install's run was NOT measured" in render(values).notes
    assert "NOT measured" not in render(values, upgrade=True).notes
