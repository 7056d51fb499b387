"""The Alertmanager route in docs/observability.md pages on-call for production only (amtool)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from obs_mapping import rules
from obs_tools import OBSERVABILITY_DOC, require, run

BLOCK = re.compile(r"```yaml\n(# alertmanager\.yml.*?)```", re.DOTALL)


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The documented config, exactly as a reader would copy it."""
    (text,) = BLOCK.findall(OBSERVABILITY_DOC.read_text())
    path = tmp_path_factory.mktemp("alertmanager") / "alertmanager.yml"
    path.write_text(text)
    return path


def _receivers(config: Path, labels: dict[str, str]) -> set[str]:
    amtool = require("amtool", "prometheus-alertmanager")
    args = [amtool, "config", "routes", "test", f"--config.file={config}"]
    result = run(args + [f"{k}={v}" for k, v in labels.items()])
    assert result.returncode == 0, result.stdout + result.stderr
    return set(result.stdout.strip().split(","))


def test_documented_config_is_valid(config: Path) -> None:
    result = run([require("amtool", "prometheus-alertmanager"), "check-config", str(config)])
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("environment", ["dev", "staging", "prod"])
def test_only_critical_alerts_from_prod_page(config: Path, environment: str) -> None:
    alerts = [
        rule for group in rules(environment=environment)["groups"]
        for rule in group["rules"] if "alert" in rule
    ]
    for rule in alerts:
        severity = rule["labels"]["severity"]
        # The rule itself labels every alert with its release's environment.
        assert rule["labels"]["environment"] == environment
        got = _receivers(config, {"alertname": rule["alert"], "severity": severity,
                                  "environment": environment, "namespace": f"yomu-{environment}"})
        pages = severity == "critical" and environment == "prod"
        expected = {"oncall-pager", "team-chat"} if pages else {"team-chat"}
        assert got == expected, (rule["alert"], environment)


def test_an_alert_without_environment_does_not_page(config: Path) -> None:
    """Only Prometheus' external_labels can make such an alert page; routing never guesses."""
    got = _receivers(config, {"alertname": "MigrationJobFailed", "severity": "critical"})
    assert got == {"team-chat"}
