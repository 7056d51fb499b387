"""helm lint and values.schema.json: a typo or a bad value fails at render time, naming the key."""

from __future__ import annotations

import json
import re
import shutil
from typing import Any

import helm_python
import pytest
import schema_defs
import yaml
from chart_render import CHART, VALUES_FILES, load_values, render, render_manifests

SEVERITY_WARNING = 2


@pytest.mark.parametrize(
    "values_file", [None, *VALUES_FILES], ids=lambda p: p.name if p else "default"
)
def test_lint_strict_is_clean(values_file: Any) -> None:
    values = load_values(values_file) if values_file else None
    report = helm_python.lint(CHART, values, strict=True)
    assert report["errors"] == []
    # Only "icon is recommended" (info) may remain: the chart has no icon to point at.
    assert [m for m in report["messages"] if m["severity"] >= SEVERITY_WARNING] == []


def test_lint_reports_a_schema_violation() -> None:
    report = helm_python.lint(CHART, {"api": {"replicas": -1}}, strict=True)
    assert any("/api/replicas" in e for e in report["errors"])


@pytest.mark.parametrize(
    ("values", "names"),
    [
        ({"typo": 1}, ["typo"]),
        ({"api": {"replica": 3}}, ["/api", "replica"]),
        ({"migrations": {"setings": {}}}, ["/migrations", "setings"]),
        ({"api": {"replicas": "two"}}, ["/api/replicas"]),
        ({"api": {"replicas": -1}}, ["/api/replicas"]),
        ({"api": {"replicas": 0}}, ["/api/replicas"]),
        ({"migrations": {"mode": "flux"}}, ["/migrations/mode"]),
        ({"migrations": {"backoffLimit": -1}}, ["/migrations/backoffLimit"]),
        ({"migrations": {"ttlSecondsAfterFinished": 0}}, ["/migrations/ttlSecondsAfterFinished"]),
        ({"migrations": {"image": {"digest": "sha256:abc"}}}, ["/migrations/image/digest"]),
        ({"migrations": {"image": {"tag": ""}}}, ["/migrations/image/tag"]),
        ({"migrations": {"image": {"tag": "latest"}}}, ["/migrations/image/tag"]),
        ({"migrations": {"settings": {"lockTimeoutMs": 0}}},
         ["/migrations/settings/lockTimeoutMs"]),
        ({"secrets": {"databaseUrl": "mysql://x/y"}}, ["/secrets/databaseUrl"]),
        ({"api": {"resources": {"requests": {"cpu": "lots"}}}}, ["/api/resources/requests/cpu"]),
        ({"monitoring": {"enabled": "yes"}}, ["/monitoring/enabled"]),
        # Pass-through Kubernetes objects are checked against Kubernetes' own definitions.
        ({"securityContext": {"runAsNonRot": True}}, ["/securityContext", "runAsNonRot"]),
        ({"migrations": {"securityContext": {"capabilities": {"dorp": ["ALL"]}}}},
         ["/migrations/securityContext/capabilities", "dorp"]),
        ({"api": {"podSecurityContext": {"runAsUser": "root"}}},
         ["/api/podSecurityContext/runAsUser"]),
        ({"api": {"affinity": {"nodeAfinity": {}}}}, ["/api/affinity", "nodeAfinity"]),
        ({"affinity": {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 1, "podAffinityTerm": {"topologyKey": "h", "labelSelectr": {}}}]}}},
         ["podAffinityTerm", "labelSelectr"]),
        ({"tolerations": [{"key": "k", "operater": "Exists"}]}, ["/tolerations/0", "operater"]),
        ({"monitoring": {"statsdExporter": {"tolerations": [{"efect": "NoSchedule"}]}}},
         ["/monitoring/statsdExporter/tolerations/0", "efect"]),
        ({"migrations": {"extraEnv": [{"name": "A", "valu": "b"}]}},
         ["/migrations/extraEnv/0", "valu"]),
        ({"networkPolicy": {"apiFrom": [{"podSelectr": {}}]}}, ["/networkPolicy/apiFrom/0"]),
        ({"imagePullSecrets": [{"nmae": "regcred"}]}, ["/imagePullSecrets/0", "nmae"]),
        ({"migrations": {"appRoles": ["yomu app"]}}, ["/migrations/appRoles/0"]),
        ({"migrations": {"appRoles": "yomu_app"}}, ["/migrations/appRoles"]),
        ({"mesh": {"excludeOutboundPorts": [0]}}, ["/mesh/excludeOutboundPorts/0"]),
    ],
    ids=lambda v: json.dumps(v) if isinstance(v, dict) else "",
)
def test_schema_rejects_bad_values_naming_the_key(values: dict[str, Any], names: list[str]) -> None:
    with pytest.raises(helm_python.HelmValuesError) as caught:
        render(values)
    for name in names:
        assert name in str(caught.value)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"migrations": {"activeDeadlineSeconds": 300, "helmTimeoutSeconds": 300}},
         "migrations.activeDeadlineSeconds (300) + migrations.terminationGracePeriodSeconds (30)"
         " must not exceed migrations.helmTimeoutSeconds (300)"),
        ({"migrations": {"activeDeadlineSeconds": 271}}, "must not exceed"),
        ({"migrations": {"settings": {"lockTimeoutMs": 500, "lockTimeoutCapMs": 250}}},
         "migrations.settings.lockTimeoutMs (500) must not exceed"),
        ({"secrets": {"existingSecret": ""}}, "secrets.databaseUrl is required"),
        ({"secrets": {"existingSecret": "", "databaseUrl": "postgresql://a:b@db/y",
                      "valkeyUrl": "redis://v"}}, "secrets.googleClientSecret is required"),
        ({"secrets": {"existingSecret": "", "databaseUrl": "postgresql://a:b@db/y",
                      "valkeyUrl": "redis://v", "googleClientSecret": "g", "sessionSecret": "s"},
          "migrations": {"ownerSecret": {"key": "MIGRATION_DATABASE_URL"}}},
         "migrations.ownerSecret.key is set but"),
        ({"api": {"replicas": 2, "podDisruptionBudget": {"minAvailable": 2}}},
         "api.podDisruptionBudget.minAvailable (2) must be below api.replicas"),
    ],
)
def test_relations_between_values_are_checked(values: dict[str, Any], message: str) -> None:
    with pytest.raises(helm_python.HelmRenderError, match=re.escape(message)):
        render(values)


def test_timeout_check_is_off_without_a_job() -> None:
    """mode none renders no Job, so its deadline is nobody's business."""
    render({"migrations": {"mode": "none", "activeDeadlineSeconds": 400}})


SCHEMA = json.loads((CHART / "values.schema.json").read_text())


def _resolve(schema: dict[str, Any]) -> dict[str, Any]:
    """A local `$ref` replaced by what it points to (the embedded Kubernetes definitions)."""
    ref = schema.get("$ref", "")
    if not ref:
        return schema
    assert ref.startswith("#/$defs/"), f"{ref}: only local refs resolve offline"
    resolved: dict[str, Any] = SCHEMA["$defs"][ref.removeprefix("#/$defs/")]
    return resolved


def _schema_leaves(schema: dict[str, Any], path: str = "", *,
                   follow_refs: bool = False) -> list[tuple[str, dict[str, Any]]]:
    out = [(path, schema)]
    node = _resolve(schema) if follow_refs else schema
    for key, sub in node.get("properties", {}).items():
        out += _schema_leaves(sub, f"{path}.{key}" if path else key, follow_refs=follow_refs)
    return out


def test_every_schema_value_has_a_description() -> None:
    missing = [p for p, s in _schema_leaves(SCHEMA) if p and not s.get("description")]
    assert missing == []


def test_kubernetes_definitions_are_embedded_and_current() -> None:
    """Every `$ref` is local (Helm would fetch a remote one at lint and install time, with no
    network in CI), and `$defs` holds exactly the definitions they reach, as
    tests/chart/schema_defs.py extracts them from kubernetes-validate."""
    text = (CHART / "values.schema.json").read_text()
    assert set(re.findall(r'"\$ref": "([^"#]*)#', text)) == {""}, "a $ref leaves the file"
    version = schema_defs.embedded_version(SCHEMA)
    assert SCHEMA["$defs"] == schema_defs.expected_defs(SCHEMA, version), (
        "run: .venv/bin/python tests/chart/schema_defs.py " + version)
    assert schema_defs.refs(SCHEMA["$defs"]) <= set(SCHEMA["$defs"])
    for path in ("securityContext", "podSecurityContext", "affinity", "api.securityContext",
                 "migrations.affinity", "monitoring.statsdExporter.securityContext"):
        node: dict[str, Any] = SCHEMA
        for key in path.split("."):
            node = node["properties"][key]
        assert node["$ref"].startswith("#/$defs/io.k8s.api.core.v1."), path


def test_a_values_file_passes_the_schema_python_reads_too() -> None:
    """The schema is valid JSON Schema and means the same to another validator."""
    import jsonschema

    validator = jsonschema.Draft7Validator(SCHEMA)
    assert list(validator.iter_errors(yaml.safe_load((CHART / "values.yaml").read_text()))) == []
    bad = {"securityContext": {"runAsNonRot": True}}
    assert any("runAsNonRot" in e.message for e in validator.iter_errors(bad))


def _value_paths(values: dict[str, Any], path: str = "") -> list[str]:
    out = []
    for key, value in values.items():
        here = f"{path}.{key}" if path else key
        out.append(here)
        if isinstance(value, dict) and value:
            out += _value_paths(value, here)
    return out


def test_every_default_value_is_in_the_schema() -> None:
    known = {p for p, _ in _schema_leaves(SCHEMA, follow_refs=True)}
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())
    undocumented = [p for p in _value_paths(defaults) if p not in known]
    assert undocumented == []


def test_every_key_in_values_yaml_has_a_comment() -> None:
    lines = (CHART / "values.yaml").read_text().splitlines()
    bare = []
    for i, line in enumerate(lines):
        if re.match(r"^\s*[A-Za-z][A-Za-z0-9]*:", line):
            above = lines[i - 1].strip() if i else ""
            if not above.startswith("#"):
                bare.append(line.strip())
    assert bare == []



@pytest.mark.parametrize(("version", "supported"), [
    ("v3.18.4", False), ("v3.19.0-rc.1", True), ("v3.19.0", True), ("v3.19", True),
    ("v3.20.1+g1234", True), ("v4.0.0", True), ("v4.2", True), ("v2.17.0", False),
])
def test_the_helm_version_check(tmp_path: Any, version: str, supported: bool) -> None:
    """The chart's own check, fed each version (helm-python always reports its own v4):
    helm mode refuses Helm < 3.19, which leaves the owner DSN's hook Secret behind."""
    chart = tmp_path / "chart"
    shutil.copytree(CHART, chart)
    call = '{{ include "yomu.helm.supported" "' + version + '" }}'
    (chart / "templates" / "zz-version.yaml").write_text(f"# supported: {call}\n")
    manifests = render_manifests(chart_dir=chart)
    out = next(text for path, text in manifests.items() if path.endswith("zz-version.yaml"))
    assert out.strip() == f"# supported: {'true' if supported else ''}".strip()


def test_helm_mode_names_the_helm_version_in_its_notes() -> None:
    notes = render().notes
    assert "needs 3.19.0 or later" in notes
    assert "Rendered by Helm v" in notes
    assert "needs 3.19.0" not in render({"migrations": {"mode": "argocd"}}).notes
