"""A non-default STATSD_PREFIX, end to end: values -> the env the chart renders for the hook
Job -> the real CLI's packets (real PostgreSQL) -> the chart's mapping -> the series the
rendered alert rules select -> real promtool.

Every other test uses the default prefix, where a chart that forgot to pass `metrics.prefix`
on, or a mapping that hard-coded it, would still pass. Here nothing is restated: the prefix
is read from what the chart rendered at each step.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from chart_render import VALUES_DIR, Rendered, load_values, merge, render
from contract_run import job_container, run_container
from obs_mapping import Mapper, Sample, load
from obs_promtool import firing
from obs_statsd import StatsdListener

from migrator.lock import LOCK_KEY

PREFIX = "acme.yomu_db"
_SELECTOR = re.compile(r"\b(yomu_migrate_\w+)\{([^}]*)\}")
_MATCHER = re.compile(r'(\w+)="([^"]*)"')


@pytest.fixture
def statsd() -> Iterator[StatsdListener]:
    listener = StatsdListener()
    yield listener
    listener.close()


def _values(database_url: str, port: int) -> dict[str, Any]:
    """values/dev.yaml at the test database, production's monitoring, our prefix."""
    return merge(load_values(VALUES_DIR / "dev.yaml"), {
        "environment": "prod",
        "secrets": {"databaseUrl": database_url},
        "migrations": {"ownerDatabaseUrl": database_url, "appRoles": []},
        "metrics": {"enabled": True, "prefix": PREFIX, "statsdHost": "127.0.0.1",
                    "statsdPort": port},
        "monitoring": {"enabled": True},
    })


def _mapper(rendered: Rendered) -> Mapper:
    configmap = rendered.get("ConfigMap", "yomu-statsd-exporter")
    return load(configmap["data"]["statsd-mapping.yaml"])


def _rules(rendered: Rendered) -> dict[str, Any]:
    spec: dict[str, Any] = rendered.get("PrometheusRule", "yomu-migrations")["spec"]
    return spec


def _run_job(rendered: Rendered, statsd: StatsdListener) -> tuple[int, list[Sample]]:
    statsd.packets.clear()
    proc = run_container(job_container(rendered), rendered)
    packets = statsd.drain()
    assert packets, proc.stdout + proc.stderr
    assert all(p.name.startswith(PREFIX + ".") for p in packets), [p.line for p in packets]
    mapper = _mapper(rendered)
    samples = [mapper.map(p.line) for p in packets]
    unmapped = [p.line for p, s in zip(packets, samples, strict=True) if s is None]
    assert unmapped == [], f"the rendered mapping drops {unmapped}"
    return proc.returncode, [s for s in samples if s is not None]


def _selected(samples: list[Sample], name: str, matchers: str) -> bool:
    wanted = dict(_MATCHER.findall(matchers))
    return any(s.name == name and wanted.items() <= s.labels.items() for s in samples)


def test_a_non_default_prefix_reaches_the_alerts(
    database_url: str, statsd: StatsdListener, tmp_path: Path
) -> None:
    values = _values(database_url, statsd.port)
    rendered = render(values)

    # values -> the Job's env.
    (container,) = rendered.job()["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["STATSD_PREFIX"] == PREFIX
    assert env["STATSD_HOST"] == "127.0.0.1"
    mapper = _mapper(rendered)
    assert mapper.map("yomu_migrate.last_run.success:0|g") is None, (
        "the mapping must follow the prefix, not the default")

    # A failed run (another migrator holds the lock; the Job's env, one setting shorter):
    # its packets, under the prefix, through the rendered mapping, page prod under the
    # rendered rules.
    failing = render(merge(values, {"migrations": {"settings": {"lockWaitSeconds": 1}}}))
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (LOCK_KEY,))
        code, samples = _run_job(failing, statsd)
    assert code == 7
    assert firing(samples, tmp_path, rules_spec=_rules(failing)) == {
        ("MigrationFailed", "prod", "critical")}

    # A good run, the Job exactly as rendered: fires nothing ...
    code, samples = _run_job(rendered, statsd)
    assert code == 0
    assert firing(samples, tmp_path, rules_spec=_rules(rendered)) == set()

    # ... and every yomu_migrate series a rendered rule selects is one it produced, with the
    # labels the selector asks for (this release's namespace and Job name).
    exprs = [r["expr"] for g in _rules(rendered)["groups"] for r in g["rules"]]
    selectors = {m for expr in exprs for m in _SELECTOR.findall(expr)}
    assert {name for name, _ in selectors} == {
        "yomu_migrate_in_progress", "yomu_migrate_run_started_timestamp_seconds",
        "yomu_migrate_last_run_success", "yomu_migrate_last_run_duration_seconds",
        "yomu_migrate_last_run_timestamp_seconds"}
    missing = [(n, m) for n, m in selectors if not _selected(samples, n, m)]
    assert missing == [], f"rules select series this run never produced: {missing}"
