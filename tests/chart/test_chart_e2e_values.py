"""The e2e workflow's values are valid and keep the production shape."""

from __future__ import annotations

from pathlib import Path

import helm_python
import kubernetes_validate
from chart_render import CHART, load_values, render

E2E_VALUES = Path(__file__).with_name("e2e-values.yaml")
WORKFLOW = Path(__file__).resolve().parents[2] / ".github" / "workflows" / "chart-e2e.yml"


def test_e2e_values_lint_and_validate() -> None:
    values = load_values(E2E_VALUES)
    report = helm_python.lint(CHART, values, strict=True)
    assert report["errors"] == []
    rendered = render(values)
    for obj in rendered.objects:
        kubernetes_validate.validate(obj, kubernetes_validate.latest_version(), strict=True)
    assert rendered.find("Secret", "yomu-env") is None
    (container,) = rendered.job()["spec"]["template"]["spec"]["containers"]
    assert container["image"] == "yomu-migrate:e2e"
    assert container["imagePullPolicy"] == "Never"


def test_workflow_uses_these_values_and_the_failure_the_contract_test_proves() -> None:
    text = WORKFLOW.read_text()
    assert "tests/chart/e2e-values.yaml" in text
    # tests/contract/test_contract_hook.py proves this makes the hook exit 3 (config).
    assert "migrations.extraEnv[0].name=MIGRATOR_MIGRATIONS_DIR" in text
    assert "--atomic" in text and "--rollback-on-failure" in text


def test_e2e_runs_with_production_s_two_roles() -> None:
    """An owner role that migrates, an app role without CREATE/TEMP for the API and the init
    container, and MIGRATOR_APP_ROLE naming the app role."""
    rendered = render(load_values(E2E_VALUES))
    (container,) = rendered.job()["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e for e in container["env"]}
    assert env["MIGRATOR_APP_ROLE"]["value"] == "yomu_app"
    assert env["MIGRATION_DATABASE_URL"]["valueFrom"]["secretKeyRef"]["key"] == (
        "MIGRATION_DATABASE_URL")
    (init,) = rendered.api()["spec"]["template"]["spec"]["initContainers"]
    assert {e["name"] for e in init["env"]} >= {"DATABASE_URL"}
    text = WORKFLOW.read_text()
    assert 'DATABASE_URL="postgresql://yomu_app:' in text
    assert 'MIGRATION_DATABASE_URL="postgresql://yomu_owner:' in text
    assert "REVOKE CREATE, TEMPORARY ON DATABASE yomu FROM PUBLIC" in text
    assert "ALTER DATABASE yomu OWNER TO yomu_owner" in text
