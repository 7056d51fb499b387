"""helm lint and values.schema.json: a typo or a bad value fails at render time, naming the key."""

from __future__ import annotations

import json
import re
from typing import Any

import helm_python
import pytest
import yaml
from chart_render import CHART, VALUES_FILES, load_values, render

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


def _schema_leaves(schema: dict[str, Any], path: str = "") -> list[tuple[str, dict[str, Any]]]:
    out = [(path, schema)]
    for key, sub in schema.get("properties", {}).items():
        out += _schema_leaves(sub, f"{path}.{key}" if path else key)
    return out


def test_every_schema_value_has_a_description() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    missing = [p for p, s in _schema_leaves(schema) if p and not s.get("description")]
    assert missing == []


def _value_paths(values: dict[str, Any], path: str = "") -> list[str]:
    out = []
    for key, value in values.items():
        here = f"{path}.{key}" if path else key
        out.append(here)
        if isinstance(value, dict) and value:
            out += _value_paths(value, here)
    return out


def test_every_default_value_is_in_the_schema() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    known = {p for p, _ in _schema_leaves(schema)}
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())
    free_form = ("podSecurityContext.", "securityContext.", "statsdExporter.podSecurityContext.")
    undocumented = [p for p in _value_paths(defaults)
                    if p not in known and not any(f in p for f in free_form)]
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

