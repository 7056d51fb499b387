"""The API release: name, replicas, rollout that never dips, probes, service, init container."""

from __future__ import annotations

from chart_render import Rendered, render


def test_deployment_is_yomu_api_whatever_the_release(default: Rendered) -> None:
    assert default.api()["metadata"]["name"] == "yomu-api"
    assert render(name="blue").api()["metadata"]["name"] == "yomu-api"


def test_rollout_never_drops_below_the_desired_replicas(each_env: Rendered) -> None:
    spec = each_env.api()["spec"]
    assert spec["replicas"] == each_env.values["api"]["replicas"]
    assert spec["strategy"]["type"] == "RollingUpdate"
    assert spec["strategy"]["rollingUpdate"] == {"maxUnavailable": 0, "maxSurge": 1}


def test_default_is_two_pods_on_port_3000_with_health_probes(default: Rendered) -> None:
    deploy = default.api()
    assert deploy["spec"]["replicas"] == 2
    (api,) = deploy["spec"]["template"]["spec"]["containers"]
    assert api["ports"] == [{"name": "http", "containerPort": 3000, "protocol": "TCP"}]
    for probe in ("livenessProbe", "readinessProbe"):
        assert api[probe]["httpGet"] == {"path": "/health", "port": "http"}


def test_service_maps_80_to_the_api_port(default: Rendered) -> None:
    service = default.get("Service", "yomu-api")
    assert service["spec"]["ports"] == [
        {"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}
    ]
    pod_labels = default.api()["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()


def test_app_env_comes_from_the_configmap_and_secret(dev: Rendered) -> None:
    (api,) = dev.api()["spec"]["template"]["spec"]["containers"]
    secret_refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in api["env"]}
    assert set(secret_refs) == {
        "DATABASE_URL", "VALKEY_URL", "GOOGLE_CLIENT_SECRET", "SESSION_SECRET"}
    assert {r["name"] for r in secret_refs.values()} == {"yomu-env"}
    assert "MIGRATION_DATABASE_URL" not in secret_refs, "the app never sees the owner DSN"
    (config_ref,) = api["envFrom"]
    config = dev.get("ConfigMap", config_ref["configMapRef"]["name"])
    assert set(config["data"]) >= {"GOOGLE_CLIENT_ID", "GOOGLE_REDIRECT_URI"}


def test_pods_roll_when_the_config_changes() -> None:
    def checksum(values: dict[str, object]) -> str:
        annotations = render(values).api()["spec"]["template"]["metadata"]["annotations"]
        return str(annotations["checksum/config"])

    assert checksum({}) != checksum({"config": {"googleClientId": "other"}})


def test_init_container_waits_for_head_with_the_apps_dsn(each_env: Rendered) -> None:
    pod = each_env.api()["spec"]["template"]["spec"]
    (init,) = pod["initContainers"]
    job_image = each_env.job()["spec"]["template"]["spec"]["containers"][0]["image"]
    assert init["image"] == job_image
    assert "command" not in init
    wait = each_env.values["api"]["waitForMigrations"]["timeoutSeconds"]
    assert init["args"] == ["check", "--wait", str(wait)]
    env = {e["name"]: e for e in init["env"]}
    assert env["DATABASE_URL"]["valueFrom"]["secretKeyRef"] == {
        "name": each_env.values["secrets"]["existingSecret"] or "yomu-env", "key": "DATABASE_URL"}
    assert "MIGRATION_DATABASE_URL" not in env
    assert env["MIGRATOR_LOG_FORMAT"]["value"] == "json"
    assert init["securityContext"] == pod["containers"][0]["securityContext"]


def test_init_container_connects_with_the_jobs_patience() -> None:
    """A database that is restarting is waited for as long by the API's pods as by the Job."""
    rendered = render({"migrations": {"settings": {"connectTimeoutSeconds": 7}}})
    (init,) = rendered.api()["spec"]["template"]["spec"]["initContainers"]
    env = {e["name"]: e.get("value") for e in init["env"]}
    job = {e["name"]: e.get("value")
           for e in rendered.job()["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["MIGRATOR_CONNECT_TIMEOUT"] == job["MIGRATOR_CONNECT_TIMEOUT"] == "7"


def test_init_container_can_be_turned_off() -> None:
    rendered = render({"api": {"waitForMigrations": {"enabled": False}}})
    pod = rendered.api()["spec"]["template"]["spec"]
    assert "initContainers" not in pod


def test_pdb_keeps_pods_up_during_drains(prod: Rendered, dev: Rendered) -> None:
    pdb = prod.get("PodDisruptionBudget", "yomu-api")
    assert pdb["spec"]["minAvailable"] == 2 < prod.api()["spec"]["replicas"]
    assert pdb["spec"]["selector"]["matchLabels"] == prod.api()["spec"]["selector"]["matchLabels"]
    assert dev.find("PodDisruptionBudget", "yomu-api") is None


def test_ingress_routes_to_the_service(prod: Rendered) -> None:
    ingress = prod.get("Ingress", "yomu-api")
    (rule,) = ingress["spec"]["rules"]
    backend = rule["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": "yomu-api", "port": {"name": "http"}}
    assert ingress["spec"]["tls"][0]["hosts"] == [rule["host"]]


def test_service_account_has_no_token(default: Rendered) -> None:
    sa = default.get("ServiceAccount", "yomu-api")
    assert sa["automountServiceAccountToken"] is False
    assert default.api()["spec"]["template"]["spec"]["serviceAccountName"] == "yomu-api"


def test_api_pods_keep_the_database_port_out_of_a_mesh_proxy(default: Rendered) -> None:
    """The init container connects before a classic sidecar proxy runs: with the database
    port captured, Istio or Linkerd would drop its connection and the pod never starts."""
    annotations = default.api()["spec"]["template"]["metadata"]["annotations"]
    assert annotations["traffic.sidecar.istio.io/excludeOutboundPorts"] == "5432"
    assert annotations["config.linkerd.io/skip-outbound-ports"] == "5432"
    # The API itself stays in the mesh: no opt-out of injection.
    assert "sidecar.istio.io/inject" not in annotations
    custom = render({"mesh": {"excludeOutboundPorts": [5432, 6432]},
                     "api": {"podAnnotations": {"config.linkerd.io/skip-outbound-ports": "1"}}})
    annotations = custom.api()["spec"]["template"]["metadata"]["annotations"]
    assert annotations["traffic.sidecar.istio.io/excludeOutboundPorts"] == "5432,6432"
    assert annotations["config.linkerd.io/skip-outbound-ports"] == "1", "podAnnotations win"
    none = render({"mesh": {"excludeOutboundPorts": []}})
    assert not any("outbound" in k for k in
                   none.api()["spec"]["template"]["metadata"]["annotations"])
