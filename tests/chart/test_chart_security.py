"""Every pod the chart runs is hardened; secrets never sit inline in prod."""

from __future__ import annotations

import pytest
from chart_render import Rendered, containers, pod_specs, render, secret_data

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


HARDENED = {"runAsNonRoot": True, "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"}, "allowPrivilegeEscalation": False}


def _container_sc(rendered: Rendered, kind: str, name: str) -> dict[str, object]:
    pod = rendered.get(kind, name)["spec"]["template"]["spec"]
    sc: dict[str, object] = pod["containers"][0]["securityContext"]
    return sc


@pytest.mark.parametrize(("component", "kind", "name"), [
    ("migrations", "Job", "yomu-migrations"),
    ("api", "Deployment", "yomu-api"),
    ("monitoring.statsdExporter", "Deployment", "yomu-statsd-exporter"),
])
def test_a_partial_security_context_is_merged_not_replaced(
    component: str, kind: str, name: str
) -> None:
    """One key changed keeps every other hardened default: a typo or a short override no
    longer drops runAsNonRoot, drop ALL or the seccomp profile."""
    override = {"readOnlyRootFilesystem": False, "capabilities": {"add": ["NET_BIND_SERVICE"]}}
    values: dict[str, object] = {"monitoring": {"enabled": True}}
    here = values
    *parents, last = component.split(".")
    for key in parents:
        here = here.setdefault(key, {})  # type: ignore[assignment]
    here[last] = {"securityContext": override, "podSecurityContext": {"fsGroup": 2000}}
    rendered = render(values)
    sc = _container_sc(rendered, kind, name)
    assert sc["readOnlyRootFilesystem"] is False
    assert sc["capabilities"] == {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}
    for key in ("runAsNonRoot", "seccompProfile", "allowPrivilegeEscalation"):
        assert sc[key] == HARDENED[key], key
    psc = rendered.get(kind, name)["spec"]["template"]["spec"]["securityContext"]
    assert psc["fsGroup"] == 2000
    assert psc["runAsNonRoot"] is True and psc["seccompProfile"] == {"type": "RuntimeDefault"}
    # Other components keep the global default untouched.
    others = [n for k, n in (("Job", "yomu-migrations"), ("Deployment", "yomu-api")) if n != name]
    for other in others:
        other_kind = "Job" if other.endswith("migrations") else "Deployment"
        assert _container_sc(rendered, other_kind, other)["readOnlyRootFilesystem"] is True


def test_false_and_zero_in_an_override_win() -> None:
    """sprig's mergeOverwrite would skip false and 0; the chart's merge does not."""
    rendered = render({"migrations": {
        "securityContext": {"allowPrivilegeEscalation": True, "runAsNonRoot": False},
        "podSecurityContext": {"runAsUser": 0}}})
    sc = _container_sc(rendered, "Job", "yomu-migrations")
    assert sc["runAsNonRoot"] is False and sc["allowPrivilegeEscalation"] is True
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert rendered.job()["spec"]["template"]["spec"]["securityContext"]["runAsUser"] == 0


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
