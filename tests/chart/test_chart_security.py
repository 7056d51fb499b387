"""Every pod the chart runs is hardened; secrets never sit inline in prod."""

from __future__ import annotations

from chart_render import Rendered, containers, pod_specs, secret_data

APP_SECRET_KEYS = {"DATABASE_URL", "VALKEY_URL", "GOOGLE_CLIENT_SECRET", "SESSION_SECRET",
                   "MIGRATION_DATABASE_URL"}


def test_every_pod_and_container_is_hardened(each_env: Rendered) -> None:
    seen = 0
    for obj, pod in pod_specs(each_env):
        where = obj["metadata"]["name"]
        assert pod["automountServiceAccountToken"] is False, where
        psc = pod["securityContext"]
        assert psc["runAsNonRoot"] is True, where
        assert psc["runAsUser"] >= 10000, where
        assert psc["seccompProfile"]["type"] == "RuntimeDefault", where
        for c in containers(pod):
            sc = c["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False, (where, c["name"])
            assert sc["readOnlyRootFilesystem"] is True, (where, c["name"])
            assert sc["runAsNonRoot"] is True, (where, c["name"])
            assert sc["capabilities"]["drop"] == ["ALL"], (where, c["name"])
            assert "add" not in sc["capabilities"], (where, c["name"])
            assert sc["seccompProfile"]["type"] == "RuntimeDefault", (where, c["name"])
            assert c["resources"]["requests"] and c["resources"]["limits"], (where, c["name"])
            seen += 1
    assert seen >= 3


def test_python_containers_get_a_writable_tmp(each_env: Rendered) -> None:
    for obj, pod in pod_specs(each_env):
        if obj["kind"] == "Deployment" and obj["metadata"]["name"].endswith("statsd-exporter"):
            continue
        volumes = {v["name"]: v for v in pod["volumes"]}
        for c in containers(pod):
            tmp = [m for m in c["volumeMounts"] if m["mountPath"] == "/tmp"]
            assert tmp, (obj["metadata"]["name"], c["name"])
            assert "emptyDir" in volumes[tmp[0]["name"]]


def test_component_security_context_overrides_the_global_one() -> None:
    from chart_render import render

    rendered = render({"migrations": {"securityContext": {"runAsNonRoot": True, "privileged": False,
                                                          "allowPrivilegeEscalation": False,
                                                          "readOnlyRootFilesystem": False}}})
    job_sc = rendered.job()["spec"]["template"]["spec"]["containers"][0]["securityContext"]
    api_sc = rendered.api()["spec"]["template"]["spec"]["containers"][0]["securityContext"]
    assert job_sc["readOnlyRootFilesystem"] is False
    assert api_sc["readOnlyRootFilesystem"] is True


def test_prod_has_no_inline_secret(prod: Rendered) -> None:
    existing = prod.values["secrets"]["existingSecret"]
    assert existing
    for secret in prod.of_kind("Secret"):
        assert not APP_SECRET_KEYS & set(secret_data(secret)), secret["metadata"]["name"]
    assert prod.values["migrations"]["ownerDatabaseUrl"] == ""
    for key in ("databaseUrl", "valkeyUrl", "googleClientSecret", "sessionSecret"):
        assert prod.values["secrets"][key] == "", key
    refs = 0
    for _, pod in pod_specs(prod):
        for c in containers(pod):
            for env in c.get("env", []):
                assert "postgres" not in str(env.get("value", "")), env["name"]
                if env["name"] in APP_SECRET_KEYS:
                    assert env["valueFrom"]["secretKeyRef"]["name"] == existing
                    refs += 1
    # API: 4 keys; init container: DATABASE_URL; Job: MIGRATION_DATABASE_URL.
    assert refs == 6


def test_dev_renders_its_inline_secrets_into_a_secret(dev: Rendered) -> None:
    secret = dev.get("Secret", "yomu-env")
    assert set(secret_data(secret)) == APP_SECRET_KEYS - {"MIGRATION_DATABASE_URL"}
    assert secret_data(secret)["DATABASE_URL"] == dev.values["secrets"]["databaseUrl"]
