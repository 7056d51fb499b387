"""The alert rules load in Prometheus and behave as rules_test.yaml says (real promtool).

Every check runs on the rules exactly as the chart renders them into its PrometheusRule
(release `yomu` in namespace `yomu-prod`, environment prod): the per-release values (the
Job's identity, the deadline) are part of what is tested.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from obs_mapping import rules, write_rules
from obs_tools import RULES_SOURCE, RULES_TEST, TROUBLESHOOTING_DOC, require, run


def _alerts(groups: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    spec = groups or rules()
    return [rule for group in spec["groups"] for rule in group["rules"] if "alert" in rule]


@pytest.fixture(scope="module")
def rendered_rules(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_rules(tmp_path_factory.mktemp("rules"))


def test_rendered_rules_pass_promtool_check(rendered_rules: Path) -> None:
    result = run([require("promtool", "prometheus"), "check", "rules", str(rendered_rules)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_alert_unit_tests_pass(rendered_rules: Path) -> None:
    """rules_test.yaml next to the rendered rules.yaml it names."""
    shutil.copy(RULES_TEST, rendered_rules.parent / RULES_TEST.name)
    assert yaml.safe_load(RULES_TEST.read_text())["rule_files"] == [rendered_rules.name]
    promtool = require("promtool", "prometheus")
    result = run([promtool, "test", "rules", RULES_TEST.name], cwd=rendered_rules.parent)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_is_tested_firing_and_silent() -> None:
    """An alert with no firing case, or no silent case, is not tested."""
    fires: set[str] = set()
    silent: set[str] = set()
    for case in yaml.safe_load(RULES_TEST.read_text())["tests"]:
        for check in case.get("alert_rule_test", []):
            (fires if check.get("exp_alerts") else silent).add(check["alertname"])
    names = {rule["alert"] for rule in _alerts()}
    assert names == {"MigrationFailed", "MigrationSlow", "MigrationStuck", "MigrationJobFailed"}
    assert names <= fires, f"never seen firing: {names - fires}"
    assert names <= silent, f"never seen silent: {names - silent}"


def test_alerts_have_severity_summary_runbook_and_routing_labels() -> None:
    for rule in _alerts():
        assert rule["labels"]["severity"] in {"critical", "warning"}, rule["alert"]
        # Static, so an alert routes even when no yomu_migrate series carried them.
        assert (rule["labels"]["environment"], rule["labels"]["release"]) == ("prod", "yomu")
        annotations = rule["annotations"]
        assert annotations["summary"] and annotations["description"], rule["alert"]
        assert annotations["runbook_url"] == (
            f"docs/troubleshooting.md#alert-{rule['alert'].lower()}"
        )


def test_runbook_anchors_exist_in_troubleshooting() -> None:
    """A runbook link on-call clicks at 3 am must land on a section."""
    assert TROUBLESHOOTING_DOC.exists(), "docs/troubleshooting.md is missing"
    text = TROUBLESHOOTING_DOC.read_text()
    anchors = set(re.findall(r'<a id="([^"]+)"></a>', text))
    for rule in _alerts():
        anchor = rule["annotations"]["runbook_url"].split("#", 1)[1]
        assert anchor in anchors, f'docs/troubleshooting.md lacks <a id="{anchor}"></a>'


def test_only_failures_and_stuck_runs_are_critical() -> None:
    """Critical pages on-call in prod; a slow run is worth a look, not a page."""
    severities = {rule["alert"]: rule["labels"]["severity"] for rule in _alerts()}
    assert severities == {
        "MigrationFailed": "critical",
        "MigrationSlow": "warning",
        "MigrationStuck": "critical",
        "MigrationJobFailed": "critical",
    }


_SELECTOR = re.compile(r"\b((?:kube|yomu|namespace_job_name)[\w:]*)\{([^}]*)\}")


def test_every_selector_is_scoped_to_this_releases_job() -> None:
    """No name pattern, no unscoped series: another release's or another team's Job (a
    `payments-migrations` anywhere in the cluster) can never fire these alerts."""
    spec = rules(environment="staging", release="blue", values={"fullnameOverride": ""})
    exprs = [rule["expr"] for group in spec["groups"] for rule in group["rules"]]
    selectors = [m for expr in exprs for m in _SELECTOR.findall(expr)]
    assert len(selectors) >= 15
    for name, matchers in selectors:
        assert 'namespace="blue-staging"' in matchers, name
        assert 'job_name="blue-migrations"' in matchers, name
        assert "=~" not in matchers, name
    bare = re.findall(r"\b(?:kube_job|yomu_migrate)_\w+(?![\w{:])", " ".join(exprs))
    assert bare == [], f"series read without a selector: {bare}"


def test_stuck_waits_for_the_jobs_own_deadline() -> None:
    """`for` = activeDeadlineSeconds + terminationGracePeriodSeconds + 60 s of scraping."""
    def stuck(values: dict[str, Any] | None = None) -> dict[str, Any]:
        (rule,) = (r for r in _alerts(rules(values=values)) if r["alert"] == "MigrationStuck")
        return rule

    assert stuck()["for"] == "330s"
    longer = stuck({"migrations": {"activeDeadlineSeconds": 600, "helmTimeoutSeconds": 900,
                                   "terminationGracePeriodSeconds": 60}})
    assert longer["for"] == "720s"
    assert "600 s" in longer["annotations"]["description"]


def test_prometheus_templates_reach_prometheus_untouched() -> None:
    """No `tpl`: the alerts' {{ $labels }} are Prometheus' own, and every placeholder of the
    source was replaced."""
    source = RULES_SOURCE.read_text()
    rendered = json.dumps(rules())
    assert source.count("{{ $labels.environment }}") == rendered.count(
        "{{ $labels.environment }}") > 0
    assert "${" not in rendered
    assert set(re.findall(r"\$\{(\w+)\}", source)) == {
        "namespace", "job_name", "environment", "release", "stuck_for", "deadline", "grace"}
