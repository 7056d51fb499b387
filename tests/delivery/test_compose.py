"""docker-compose.yml: valid Compose, and ordered so the API never starts on an old schema.

The schema is the Compose Specification's own JSON schema (compose-spec/compose-spec,
schema/compose-spec.json at commit 00655e2222608fa6eaecdf12ac5195889ca2244a), vendored next
to this file because no registry ships a current copy.
"""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml
from jsonschema import Draft7Validator

REPO = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((Path(__file__).parent / "compose-spec.json").read_text())


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    assert isinstance(data, dict)
    return data


def errors(doc: dict[str, Any]) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
            for e in Draft7Validator(SCHEMA).iter_errors(doc)]


def test_compose_file_is_valid_against_the_compose_spec(compose: dict[str, Any]) -> None:
    assert errors(compose) == []


def test_the_validator_rejects_what_compose_would(compose: dict[str, Any]) -> None:
    """Guards the test above: the vendored schema does catch a mistyped condition."""
    broken = copy.deepcopy(compose)
    broken["services"]["api"]["depends_on"]["migrate"]["condition"] = "service_completed"
    assert errors(broken)
    broken = copy.deepcopy(compose)
    broken["services"]["migrate"]["restart_policy"] = "no"
    assert errors(broken)


def test_api_waits_for_a_successful_migration(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert services["api"]["depends_on"]["migrate"]["condition"] == (
        "service_completed_successfully"
    )
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])
    # One shot: a restarted migrate would hide a failure behind a retry loop.
    assert services["migrate"].get("restart", "no") == "no"
    assert services["migrate"]["command"] == ["upgrade"]


def test_migrate_is_built_from_the_migrator_image(compose: dict[str, Any]) -> None:
    build = compose["services"]["migrate"]["build"]
    assert (REPO / build["context"] / build["dockerfile"]).resolve() == (
        REPO / "migrator" / "Dockerfile"
    )
    dockerfile = (REPO / "migrator" / "Dockerfile").read_text()
    user = re.search(r"^USER (\S+)", dockerfile, re.M)
    assert user is not None
    migrate = compose["services"]["migrate"]
    assert migrate["user"] == user.group(1)
    assert migrate["read_only"] is True
    assert "/tmp" in migrate["tmpfs"]


def test_legacy_init_sql_is_not_mounted(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            text = volume if isinstance(volume, str) else json.dumps(volume)
            assert "init.sql" not in text, f"{name} mounts the deprecated init.sql"
            if "docker-entrypoint-initdb.d" in text:  # roles only: the schema is migrated
                script = (REPO / text.split(":", 1)[0]).read_text().upper()
                assert "CREATE ROLE" in script
                assert not re.search(r"CREATE (UNIQUE )?(TABLE|INDEX)", script), text
    header = (REPO / "docker" / "postgres" / "init.sql").read_text().splitlines()[0]
    assert header.startswith("-- DEPRECATED")


def test_database_lives_in_a_named_volume(compose: dict[str, Any]) -> None:
    volumes = compose["services"]["postgres"]["volumes"]
    named = {v.split(":", 1)[0] for v in volumes if isinstance(v, str)}
    assert named & set(compose["volumes"]), volumes


def test_metrics_exporter_is_optional(compose: dict[str, Any]) -> None:
    services = compose["services"]
    exporter = next(s for s in services.values() if "statsd-exporter" in s.get("image", ""))
    assert exporter["profiles"] == ["metrics"]
    assert services["migrate"]["depends_on"]["statsd-exporter"]["required"] is False


def _interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's ${VAR:-default}, with `env` as the shell's environment."""
    return re.sub(r"\$\{(\w+):-([^}]*)\}", lambda m: env.get(m.group(1), m.group(2)), value)


def test_compose_runs_with_production_roles(compose: dict[str, Any], pg_server: Any) -> None:
    """roles.sh as the postgres image runs it, then `migrate` and the API as compose wires
    them: the owner migrates and grants, the app role passes the API's checks."""
    from pgtest import run_migrator, superuser_dsn

    from migrator.localdb import bin_dir

    services = compose["services"]
    name = "compose_" + uuid.uuid4().hex[:8]
    admin = superuser_dsn(pg_server)
    with psycopg.connect(admin, autocommit=True) as conn:
        for role in ("yomu_owner", "yomu_app"):  # roles are cluster-wide: a rerun starts clean
            conn.execute(f"DROP ROLE IF EXISTS {role}")
        conn.execute(f'CREATE DATABASE "{name}"')
    postgres_env = {k: _interpolate(str(v), {}) for k, v in
                    services["postgres"]["environment"].items()}
    server = {"PGHOST": "127.0.0.1", "PGPORT": str(pg_server.port), "PGUSER": "postgres",
              "PGPASSWORD": admin.split(":")[2].split("@")[0], "POSTGRES_DB": name,
              "PATH": f"{bin_dir()}:{os.environ['PATH']}"}
    script = next(v.split(":", 1)[0] for v in services["postgres"]["volumes"]
                  if "docker-entrypoint-initdb.d" in v)
    try:
        created = subprocess.run(["sh", str(REPO / script)], env={**postgres_env, **server},
                                 capture_output=True, text=True, check=False)
        assert created.returncode == 0, created.stderr

        def here(url: str) -> str:  # the compose network's `postgres:5432` is our server
            url = _interpolate(url, {}).replace("@postgres:5432/yomu",
                                                f"@127.0.0.1:{pg_server.port}/{name}")
            return url

        migrate = {k: here(str(v)) for k, v in services["migrate"]["environment"].items()
                   if v not in ("", None) and not str(v).startswith("${STATSD")}
        upgraded = run_migrator("upgrade", env=migrate)
        assert upgraded.returncode == 0, upgraded.stdout + upgraded.stderr
        app_url = here(str(services["api"]["environment"]["DATABASE_URL"]))
        assert "yomu_app" in app_url
        assert run_migrator("check", env={"DATABASE_URL": app_url}).returncode == 0
        with psycopg.connect(app_url) as conn:
            conn.execute("INSERT INTO users (google_id, email) VALUES ('g', 'g@example.com')")
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute("CREATE TEMP TABLE scratch (id int)")
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            for role in ("yomu_owner", "yomu_app"):
                conn.execute(f"DROP ROLE IF EXISTS {role}")
