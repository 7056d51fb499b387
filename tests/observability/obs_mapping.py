"""The statsd_exporter mapping as the exporter reads it: render, validate, map StatsD lines.

statsd_exporter is packaged neither for Debian bookworm nor on PyPI, so the tests cannot run
it here. This module applies the exporter's documented mapping rules instead (README
"Metric Mapping and Configuration" and pkg/mapper): the known keys, the patterns a match,
a name and a label name must fit, glob `*` = one dot-separated component with `$n`
substitution, first matching mapping wins, match_metric_type filters by StatsD type, `ms`
timers are turned into seconds, and one Prometheus name keeps one type, help and label set.
It is stricter than the exporter in one way: unknown keys fail here, while the exporter
ignores them silently (a misspelt `lables:` would drop every label in production).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from obs_tools import MAPPING

# The exporter's own patterns (pkg/mapper/mapper.go).
_STATSD_PART = r"[a-zA-Z_](-?[a-zA-Z0-9_])*"
_TEMPLATE = r"(\$\{?\d+\}?)"
GLOB_MATCH_RE = re.compile(rf"^(\*\.|{_STATSD_PART}\.)+(\*|{_STATSD_PART})$")
METRIC_NAME_RE = re.compile(rf"^([a-zA-Z_]|{_TEMPLATE})([a-zA-Z0-9_]|{_TEMPLATE})*$")
LABEL_NAME_RE = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]+$")

MAPPING_KEYS = {
    "match", "name", "labels", "observer_type", "timer_type", "buckets", "quantiles",
    "match_type", "help", "action", "match_metric_type", "ttl", "summary_options",
    "histogram_options", "scale",
}
DEFAULTS_KEYS = {
    "observer_type", "timer_type", "buckets", "quantiles", "match_type",
    "glob_disable_ordering", "ttl", "summary_options", "histogram_options",
}
STATSD_TYPES = {"c": "counter", "g": "gauge", "ms": "observer", "h": "observer", "d": "observer"}


class MappingError(ValueError):
    """The mapping would be refused, or silently misread, by statsd_exporter."""


@dataclass(frozen=True)
class Sample:
    """One StatsD event after mapping: what Prometheus will scrape."""

    name: str
    kind: str  # counter | gauge | histogram | summary
    labels: dict[str, str]
    value: float


@dataclass
class Mapper:
    mappings: list[dict[str, Any]]
    defaults: dict[str, Any] = field(default_factory=dict)

    def map(self, line: str) -> Sample | None:
        """Map one StatsD line (`name:value|type[|@rate]`); None when nothing matches."""
        name, _, rest = line.partition(":")
        value_text, _, type_text = rest.partition("|")
        statsd_type = STATSD_TYPES[type_text.split("|")[0]]
        value = float(value_text)
        parts = name.split(".")
        for mapping in self.mappings:
            wanted = mapping.get("match_metric_type")
            if wanted and wanted != statsd_type:
                continue
            captures = _glob(mapping["match"].split("."), parts)
            if captures is None:
                continue
            if mapping.get("action") == "drop":
                return None
            templates = mapping.get("labels") or {}
            labels = {k: _expand(str(v), captures) for k, v in templates.items()}
            if statsd_type == "observer":
                observer = mapping.get("observer_type") or self.defaults.get("observer_type")
                kind = observer or "summary"
                if type_text.startswith("ms"):
                    value /= 1000.0  # the exporter turns ms timers into seconds
            else:
                kind = statsd_type
            return Sample(_expand(mapping["name"], captures), kind, labels, value)
        return None


def _glob(pattern: list[str], parts: list[str]) -> list[str] | None:
    if len(pattern) != len(parts):
        return None
    captures = []
    for want, got in zip(pattern, parts, strict=True):
        if want == "*":
            captures.append(got)
        elif want != got:
            return None
    return captures


def _expand(template: str, captures: list[str]) -> str:
    return re.sub(r"\$\{?(\d+)\}?", lambda m: captures[int(m.group(1)) - 1], template)


def load(text: str) -> Mapper:
    """Parse and validate a rendered mapping file the way statsd_exporter would."""
    config = yaml.safe_load(text)
    if not isinstance(config, dict) or set(config) - {"defaults", "mappings"}:
        raise MappingError(f"top level must be defaults/mappings, got {config!r:.80}")
    defaults = config.get("defaults") or {}
    if set(defaults) - DEFAULTS_KEYS:
        raise MappingError(f"unknown defaults keys: {set(defaults) - DEFAULTS_KEYS}")
    if defaults.get("match_type", "glob") != "glob":
        raise MappingError("only glob matching is used (and understood by these tests)")
    seen: dict[str, tuple[str, str, frozenset[str]]] = {}
    for i, mapping in enumerate(config.get("mappings") or []):
        _check_mapping(i, mapping, defaults, seen)
    return Mapper(config.get("mappings") or [], defaults)


def _check_mapping(
    i: int, mapping: dict[str, Any], defaults: dict[str, Any],
    seen: dict[str, tuple[str, str, frozenset[str]]],
) -> None:
    where = f"mapping {i} ({mapping.get('match')!r})"
    if set(mapping) - MAPPING_KEYS:
        raise MappingError(f"{where}: unknown keys {set(mapping) - MAPPING_KEYS}")
    if not mapping.get("name"):
        raise MappingError(f"{where}: metric mapping didn't set a metric name")
    if not METRIC_NAME_RE.match(mapping["name"]):
        raise MappingError(f"{where}: invalid metric name {mapping['name']!r}")
    if mapping.get("match_type", "glob") != "glob":
        raise MappingError(f"{where}: only glob matching is used here")
    if not GLOB_MATCH_RE.match(str(mapping.get("match", ""))):
        raise MappingError(f"{where}: invalid match")
    labels = mapping.get("labels") or {}
    for key, value in labels.items():
        if not LABEL_NAME_RE.match(str(key)):
            raise MappingError(f"{where}: invalid label key {key!r}")
        if not isinstance(value, str):
            raise MappingError(f"{where}: label {key} must be a string, got {value!r}")
    metric_type = mapping.get("match_metric_type", "")
    if metric_type not in {"", "counter", "gauge", "observer"}:
        raise MappingError(f"{where}: match_metric_type {metric_type!r}")
    observer = mapping.get("observer_type") or defaults.get("observer_type") or "summary"
    if observer not in {"histogram", "summary"}:
        raise MappingError(f"{where}: observer_type {observer!r}")
    if observer == "histogram" and "summary_options" in mapping:
        raise MappingError(f"{where}: histogram observer with summary options")
    if observer == "summary" and "histogram_options" in mapping:
        raise MappingError(f"{where}: summary observer with histogram options")
    buckets = (mapping.get("histogram_options") or {}).get("buckets") or []
    if buckets != sorted(set(buckets)):
        raise MappingError(f"{where}: histogram buckets must be strictly increasing")
    # One Prometheus name, one type, one help, one label set (client_golang registration).
    kind = observer if metric_type == "observer" else metric_type
    identity = (kind, str(mapping.get("help", "")), frozenset(labels))
    if seen.setdefault(mapping["name"], identity) != identity:
        raise MappingError(f"{where}: {mapping['name']} redefined with another type/help/labels")


# The release rules_test.yaml and the other alert tests are written for.
RELEASE = "yomu"
ENVIRONMENT = "prod"


def namespace_of(environment: str, release: str = RELEASE) -> str:
    return f"{release}-{environment}"


def render_chart(
    environment: str = ENVIRONMENT, release: str = RELEASE, values: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    """The chart's objects with monitoring on, as `helm upgrade` renders them for a cluster
    with the Prometheus Operator, in namespace <release>-<environment>."""
    from chart_render import merge, render_manifests  # tests/chart, via conftest

    rendered = render_manifests(
        merge({"environment": environment, "monitoring": {"enabled": True}}, values or {}),
        name=release, namespace=namespace_of(environment, release),
    )
    manifests = (text for path, text in rendered.items() if path.endswith(".yaml"))
    return [doc for text in manifests for doc in yaml.safe_load_all(text) if doc]


def render(
    environment: str = ENVIRONMENT, release: str = RELEASE, values: dict[str, Any] | None = None
) -> str:
    """The mapping exactly as the chart hands it to statsd_exporter (its ConfigMap)."""
    (mapping,) = (
        obj["data"][MAPPING.name]
        for obj in render_chart(environment, release, values)
        if obj["kind"] == "ConfigMap" and MAPPING.name in obj.get("data", {})
    )
    return str(mapping)


def rules(
    environment: str = ENVIRONMENT, release: str = RELEASE, values: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The rule groups of the PrometheusRule exactly as the chart renders it for a release."""
    (rule,) = (obj for obj in render_chart(environment, release, values)
               if obj["kind"] == "PrometheusRule")
    spec: dict[str, Any] = rule["spec"]
    return spec


def write_rules(directory: Path, environment: str = ENVIRONMENT, release: str = RELEASE,
                values: dict[str, Any] | None = None) -> Path:
    """The rendered rules as a Prometheus rules file (`rules.yaml`) for promtool."""
    path = directory / "rules.yaml"
    path.write_text(yaml.safe_dump(rules(environment, release, values), sort_keys=False))
    return path
