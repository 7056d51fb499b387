"""The alert rules load in Prometheus and behave as rules_test.yaml says (real promtool)."""

from __future__ import annotations

import re
from typing import Any

import yaml
from obs_mapping import render_chart
from obs_tools import RULES, RULES_TEST, TROUBLESHOOTING_DOC, require, run


def _alerts() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def test_rules_file_passes_promtool_check() -> None:
    result = run([require("promtool", "prometheus"), "check", "rules", str(RULES)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_alert_unit_tests_pass() -> None:
    promtool = require("promtool", "prometheus")
    result = run([promtool, "test", "rules", RULES_TEST.name], cwd=RULES_TEST.parent)
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


def test_alerts_have_severity_summary_and_runbook() -> None:
    for rule in _alerts():
        assert rule["labels"]["severity"] in {"critical", "warning"}, rule["alert"]
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


def test_chart_embeds_exactly_these_rules() -> None:
    """The PrometheusRule in the cluster holds the rules promtool tested, unchanged."""
    (rule,) = (obj for obj in render_chart() if obj["kind"] == "PrometheusRule")
    assert rule["spec"] == yaml.safe_load(RULES.read_text())
