"""Which alerts would fire on given series: the rules as the chart renders them for the
release, evaluated by the real promtool."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from obs_mapping import ENVIRONMENT, RELEASE, Sample, write_rules
from obs_tools import require, run

_ALERTS = 'count by (alertname, severity, environment) (ALERTS{alertstate="firing"})'
_GOT = re.compile(r'alertname="(\w+)", environment="(\w+)", severity="(\w+)"')
# What a scrape adds to every series and the rules must not depend on: it changes when
# the exporter's pod is replaced.
SCRAPE_LABELS = {"instance": "10.1.2.3:9102", "pod": "yomu-statsd-exporter-7d9f8-x2x4q",
                 "job": "yomu-statsd-exporter"}


def _series(samples: list[Sample]) -> list[dict[str, str]]:
    """Scrape-time view: a gauge keeps its last value, a counter the sum of its increments."""
    values: dict[str, float] = {}
    for s in samples:
        if s.kind not in {"gauge", "counter"}:
            continue  # histograms: no alert reads them
        labels = sorted({**SCRAPE_LABELS, **s.labels}.items())
        key = s.name + "{" + ",".join(f'{k}="{v}"' for k, v in labels) + "}"
        values[key] = s.value + (values.get(key, 0.0) if s.kind == "counter" else 0.0)
    return [{"series": key, "values": f"{value:g}x5"} for key, value in values.items()]


def firing(samples: list[Sample], tmp_path: Path, environment: str = ENVIRONMENT,
           release: str = RELEASE, values: dict[str, Any] | None = None,
           rules_spec: dict[str, Any] | None = None) -> set[tuple[str, ...]]:
    """(alertname, environment, severity) of every alert firing 2 min after these samples,
    under the rules the chart renders for this release (environment, name, values), or
    under `rules_spec`, the groups of a PrometheusRule rendered elsewhere."""
    promtool = require("promtool", "prometheus")
    if rules_spec is None:
        rules = write_rules(tmp_path, environment, release, values)
    else:
        rules = tmp_path / "rules.yaml"
        rules.write_text(yaml.safe_dump(rules_spec, sort_keys=False))
    test = {
        "rule_files": [rules.name],
        "evaluation_interval": "1m",
        "tests": [{
            "interval": "1m",
            "input_series": _series(samples),
            # Expect nothing, so promtool prints whatever does fire.
            "promql_expr_test": [{"expr": _ALERTS, "eval_time": "2m", "exp_samples": []}],
        }],
    }
    path = tmp_path / "firing_test.yaml"
    path.write_text(yaml.safe_dump(test))
    result = run([promtool, "test", "rules", path.name], cwd=tmp_path)
    if result.returncode == 0:
        return set()
    found = {tuple(m) for m in _GOT.findall(result.stdout + result.stderr)}
    assert found, result.stdout + result.stderr
    return found
