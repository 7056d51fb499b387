"""The statsd_exporter mapping: valid as rendered, and it yields what the alert rules read.

Closes the loop migrator StatsD names -> mapping -> Prometheus series -> alert rules, the
last step with the real promtool (see obs_mapping for why the exporter is emulated).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from obs_mapping import Mapper, MappingError, Sample, load, render, rules
from obs_promtool import firing

COMMON = {"environment": "prod", "release": "yomu", "namespace": "yomu-prod",
          "job_name": "yomu-migrations"}


@pytest.fixture(scope="module")
def rendered() -> str:
    return render(environment="prod", release="yomu")


@pytest.fixture(scope="module")
def mapper(rendered: str) -> Mapper:
    return load(rendered)


@pytest.mark.parametrize("environment", ["dev", "staging", "prod"])
def test_mapping_renders_valid_for_every_environment(environment: str) -> None:
    mapper = load(render(environment=environment, release="yomu"))
    sample = mapper.map("yomu_migrate.last_run.success:0|g")
    assert sample is not None and sample.labels["environment"] == environment


@pytest.mark.parametrize(
    ("old", "new", "why"),
    [
        ("    labels:\n", "    lables:\n", "unknown keys"),
        ("environment: prod", "environ-ment: prod", "invalid label key"),
        ("name: yomu_migrate_in_progress", "name: yomu-migrate-in-progress", "invalid metric"),
        ("[0.5, 1, 2.5,", "[1, 0.5, 2.5,", "strictly increasing"),
        ("      outcome: noop\n", "      result: noop\n", "redefined"),
        ('"yomu_migrate.in_progress"', '"yomu_migrate..in_progress"', "invalid match"),
        ("match_metric_type: gauge", "match_metric_type: timer", "match_metric_type"),
    ],
)
def test_validation_refuses_what_the_exporter_would(
    rendered: str, old: str, new: str, why: str
) -> None:
    """The validity check can fail: each edit breaks the mapping as the exporter sees it."""
    assert old in rendered
    with pytest.raises(MappingError, match=why):
        load(rendered.replace(old, new, 1))


@pytest.mark.parametrize(
    ("line", "name", "kind", "extra", "value"),
    [
        ("yomu_migrate.run.duration:31000.000000|ms", "yomu_migrate_run_duration_seconds",
         "histogram", {}, 31.0),
        ("yomu_migrate.revision.duration:1500|ms", "yomu_migrate_revision_duration_seconds",
         "histogram", {}, 1.5),
        ("yomu_migrate.lock.wait:250|ms", "yomu_migrate_lock_wait_seconds", "histogram", {}, 0.25),
        ("yomu_migrate.run.success:1|c", "yomu_migrate_runs_total", "counter",
         {"outcome": "success", "kind": "none"}, 1.0),
        ("yomu_migrate.run.noop:1|c", "yomu_migrate_runs_total", "counter",
         {"outcome": "noop", "kind": "none"}, 1.0),
        ("yomu_migrate.run.failure.drift:1|c", "yomu_migrate_runs_total", "counter",
         {"outcome": "failure", "kind": "drift"}, 1.0),
        ("yomu_migrate.run.failure.lock_wait:1|c", "yomu_migrate_runs_total", "counter",
         {"outcome": "failure", "kind": "lock_wait"}, 1.0),
        ("yomu_migrate.schema.version:7|g", "yomu_migrate_schema_version", "gauge", {}, 7.0),
        ("yomu_migrate.last_run.success:0|g", "yomu_migrate_last_run_success", "gauge", {}, 0.0),
        ("yomu_migrate.last_run.duration_seconds:31|g",
         "yomu_migrate_last_run_duration_seconds", "gauge", {}, 31.0),
        ("yomu_migrate.last_run.timestamp:1700000000|g",
         "yomu_migrate_last_run_timestamp_seconds", "gauge", {}, 1.7e9),
        ("yomu_migrate.in_progress:1|g", "yomu_migrate_in_progress", "gauge", {}, 1.0),
        ("yomu_migrate.run.started_timestamp:1700000000|g",
         "yomu_migrate_run_started_timestamp_seconds", "gauge", {}, 1.7e9),
    ],
)
def test_contract_metrics_map_to_labelled_prometheus_series(
    mapper: Mapper, line: str, name: str, kind: str, extra: dict[str, str], value: float
) -> None:
    assert mapper.map(line) == Sample(name, kind, {**extra, **COMMON}, value)


def test_run_duration_histogram_has_a_30s_bucket(rendered: str) -> None:
    """A run over 30 s is countable from the histogram too: `le="30"` must be a bucket."""
    config = yaml.safe_load(rendered)
    (run_mapping,) = (m for m in config["mappings"] if m["name"].startswith("yomu_migrate_run_d"))
    assert 30 in run_mapping["histogram_options"]["buckets"]


def test_other_prefixes_and_types_are_not_mapped(mapper: Mapper) -> None:
    assert mapper.map("other_app.run.success:1|c") is None
    assert mapper.map("yomu_migrate.run.success:1|g") is None  # a gauge is not the counter
    assert mapper.map("yomu_migrate.run.failure.a.b:1|c") is None


def test_mapping_follows_the_statsd_prefix_value() -> None:
    mapper = load(render(values={"metrics": {"prefix": "acme.yomu"}}))
    sample = mapper.map("acme.yomu.run.failure.checksum:1|c")
    assert sample is not None and sample.name == "yomu_migrate_runs_total"
    assert sample.labels["kind"] == "checksum"
    assert mapper.map("yomu_migrate.run.failure.checksum:1|c") is None


def test_rules_read_only_series_and_labels_the_mapping_yields(rendered: str) -> None:
    config = yaml.safe_load(rendered)
    exposed = set()
    labels: dict[str, set[str]] = {}
    for mapping in config["mappings"]:
        names = [mapping["name"]]
        if mapping["match_metric_type"] == "observer":
            names += [mapping["name"] + suffix for suffix in ("_bucket", "_sum", "_count")]
        exposed.update(names)
        for n in names:
            labels.setdefault(n, set()).update(mapping["labels"])
    exprs = " ".join(rule["expr"] for group in rules()["groups"] for rule in group["rules"])
    used = set(re.findall(r"(?<![:\w])yomu_migrate_[a-z_]+(?![:\w])", exprs))
    assert used, "the rules read no yomu_migrate series"
    assert used <= exposed, f"rules read series the mapping never exposes: {used - exposed}"
    for name in used:
        assert {"environment", "release", "namespace", "job_name"} <= labels[name]


def _firing(tmp_path: Path, lines: list[str], environment: str) -> set[tuple[str, ...]]:
    mapper = load(render(environment=environment, release="yomu"))
    samples = [s for s in map(mapper.map, lines) if s is not None]
    assert len(samples) == len(lines), "every line of a run is mapped"
    return firing(samples, tmp_path, environment=environment)


def _run_lines(seconds: int, outcome: str) -> list[str]:
    success = "1" if outcome != "failure" else "0"
    counter = "yomu_migrate.run.failure.migration_failed" if outcome == "failure" else (
        f"yomu_migrate.run.{outcome}"
    )
    return [
        "yomu_migrate.run.started_timestamp:0|g",
        "yomu_migrate.in_progress:1|g",
        "yomu_migrate.in_progress:0|g",
        f"yomu_migrate.run.duration:{seconds * 1000}.000000|ms",
        f"{counter}:1|c",
        "yomu_migrate.schema.version:3|g",
        f"yomu_migrate.last_run.success:{success}|g",
        f"yomu_migrate.last_run.duration_seconds:{seconds}|g",
        "yomu_migrate.last_run.timestamp:0|g",
    ]


def test_a_failed_31s_prod_run_fires_failed_and_slow(tmp_path: Path) -> None:
    assert _firing(tmp_path, _run_lines(31, "failure"), "prod") == {
        ("MigrationFailed", "prod", "critical"),
        ("MigrationSlow", "prod", "warning"),
    }


def test_a_successful_29s_run_fires_nothing(tmp_path: Path) -> None:
    assert _firing(tmp_path, _run_lines(29, "success"), "prod") == set()
    assert _firing(tmp_path, _run_lines(1, "noop"), "prod") == set()


def test_a_failed_staging_run_fires_with_environment_staging(tmp_path: Path) -> None:
    assert _firing(tmp_path, _run_lines(2, "failure"), "staging") == {
        ("MigrationFailed", "staging", "critical"),
    }
