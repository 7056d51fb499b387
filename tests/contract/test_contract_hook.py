"""Chart <-> migrator: the rendered hook Job and init container, run as is, on real PostgreSQL.

If the chart and the migrator disagree on a verb, a flag, a variable or a Secret key, these
tests fail: nothing here restates what the chart sets, it is all read from the render. The
database has production's roles: the Job migrates as the owner and grants the API's role
(MIGRATOR_APP_ROLE, from migrations.appRoles); the init container checks as the API's role,
which can create nothing (no CREATE, no TEMP).
"""

from __future__ import annotations

import copy
import socket
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from chart_render import VALUES_DIR as ENV_VALUES
from chart_render import Rendered, load_values, merge, render
from contract_run import init_container, job_container, json_lines, run_container
from pgtest import Roles

from migrator.errors import ConfigError, NotAtHead, PermissionDenied

APP_SECRETS = {"VALKEY_URL": "redis://valkey:6379/0", "GOOGLE_CLIENT_SECRET": "g-secret",
               "SESSION_SECRET": "s-secret"}


@pytest.fixture
def statsd_listener() -> Iterator[socket.socket]:
    """A UDP socket on loopback standing in for the statsd_exporter."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.2)
    yield sock
    sock.close()


def _received(sock: socket.socket) -> list[str]:
    lines: list[str] = []
    while True:
        try:
            data = sock.recv(65535)
        except TimeoutError:
            return lines
        lines += data.decode().splitlines()


def _alembic_versions(url: str) -> list[str]:
    with psycopg.connect(url) as conn:
        return [row[0] for row in conn.execute("SELECT version_num FROM alembic_version")]


def _table_exists(url: str, name: str) -> bool:
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT to_regclass(%s)", (name,)).fetchone() != (None,)


@pytest.fixture
def dev_roles(make_roles: Callable[..., Roles]) -> Roles:
    """The roles values/dev.yaml names: the app role is the one in migrations.appRoles."""
    (app,) = load_values(ENV_VALUES / "dev.yaml")["migrations"]["appRoles"]
    return make_roles(app)


def _dev_values(roles: Roles, *extra: dict[str, Any]) -> dict[str, Any]:
    """values/dev.yaml pointed at the test database (the inline-secret path)."""
    secrets = {"existingSecret": "", "databaseUrl": roles.app_url,
               "valkeyUrl": APP_SECRETS["VALKEY_URL"],
               "googleClientSecret": APP_SECRETS["GOOGLE_CLIENT_SECRET"],
               "sessionSecret": APP_SECRETS["SESSION_SECRET"]}
    return merge(load_values(ENV_VALUES / "dev.yaml"),
                 {"secrets": secrets, "migrations": {"ownerDatabaseUrl": roles.owner_url}},
                 *extra)


def _passwords(roles: Roles) -> list[str]:
    found = [psycopg.conninfo.conninfo_to_dict(url)["password"]
             for url in (roles.owner_url, roles.app_url)]
    assert all(isinstance(p, str) and p for p in found)
    return [str(p) for p in found]


def _assert_clean_output(proc: Any, passwords: list[str]) -> list[dict[str, Any]]:
    for password in passwords:
        assert password not in proc.stdout + proc.stderr, "a password reached the pod log"
    return json_lines(proc.stdout)


def test_rendered_hook_job_migrates_to_head_and_unblocks_the_api(
    dev_roles: Roles, statsd_listener: socket.socket
) -> None:
    port = statsd_listener.getsockname()[1]
    values = _dev_values(dev_roles, {
        "metrics": {"enabled": True, "statsdHost": "127.0.0.1", "statsdPort": port},
        "api": {"waitForMigrations": {"timeoutSeconds": 2}},
    })
    rendered = render(values)
    password = _passwords(dev_roles)
    database_url = dev_roles.admin_url

    # Before the hook: the API's init container holds the pod (empty database, not at head).
    held = run_container(init_container(rendered), rendered)
    assert held.returncode == NotAtHead.exit_code, held.stdout + held.stderr

    # The hook Job, exactly as rendered.
    job = run_container(job_container(rendered), rendered)
    assert job.returncode == 0, job.stdout + job.stderr
    logs = _assert_clean_output(job, password)
    assert logs and all({"timestamp", "level", "event", "run_id"} <= set(entry) for entry in logs)
    assert _alembic_versions(database_url), "alembic_version is empty after the hook"

    # Its metrics reached STATSD_HOST:STATSD_PORT under STATSD_PREFIX.
    metrics = _received(statsd_listener)
    prefix = rendered.values["metrics"]["prefix"] + "."
    assert any(line.startswith(prefix + "run.") for line in metrics), metrics

    # After it: `migrator check` passes as the API's role, and so does the init container,
    # promptly: the hook granted that role what it needs.
    check_spec = copy.deepcopy(init_container(rendered))
    check_spec["args"] = ["check"]
    check = run_container(check_spec, rendered)
    assert check.returncode == 0, check.stdout + check.stderr
    released = run_container(init_container(rendered), rendered, timeout=30)
    assert released.returncode == 0, released.stdout + released.stderr
    _assert_clean_output(released, password)

    # The next upgrade's hook on an up-to-date database is a no-op that succeeds.
    again = run_container(job_container(render(values, upgrade=True)), rendered)
    assert again.returncode == 0, again.stdout + again.stderr


def test_prod_shape_reads_both_dsns_from_the_existing_secret(
        make_roles: Callable[..., Roles]) -> None:
    """values/prod.yaml as is: owner DSN and app DSN from `yomu-env`, exporter not yet there;
    the app role is the one migrations.appRoles names."""
    rendered: Rendered = render(load_values(ENV_VALUES / "prod.yaml"))
    (app,) = rendered.values["migrations"]["appRoles"]
    roles = make_roles(app)
    existing = rendered.values["secrets"]["existingSecret"]
    key = rendered.values["migrations"]["ownerSecret"]["key"]
    assert rendered.find("Secret", existing) is None, "prod must not render its own Secret"
    secret = {existing: {"DATABASE_URL": roles.app_url, key: roles.owner_url, **APP_SECRETS}}

    # On a first install the exporter Service does not exist yet: metrics must not fail the run.
    job = run_container(job_container(rendered), rendered, existing_secrets=secret)
    assert job.returncode == 0, job.stdout + job.stderr
    assert _alembic_versions(roles.admin_url)
    init = run_container(init_container(rendered), rendered, existing_secrets=secret, timeout=30)
    assert init.returncode == 0, init.stdout + init.stderr
    _assert_clean_output(init, _passwords(roles))


def test_default_values_migrate_with_the_apps_dsn_from_the_existing_secret(
        database_url: str) -> None:
    """The chart's own defaults: one role, its DSN in the existing Secret `yomu-env`."""
    rendered: Rendered = render({})
    existing = rendered.values["secrets"]["existingSecret"]
    assert not rendered.values["migrations"]["ownerSecret"]["key"]
    secret = {existing: {"DATABASE_URL": database_url, **APP_SECRETS}}
    job = run_container(job_container(rendered), rendered, existing_secrets=secret)
    assert job.returncode == 0, job.stdout + job.stderr
    assert _alembic_versions(database_url)
    init = run_container(init_container(rendered), rendered, existing_secrets=secret, timeout=30)
    assert init.returncode == 0, init.stdout + init.stderr


def test_owner_dsn_is_what_the_job_migrates_with(dev_roles: Roles) -> None:
    """The Job gets only MIGRATION_DATABASE_URL; a wrong app DSN cannot matter to it."""
    values = _dev_values(dev_roles, {"secrets": {
        "databaseUrl": "postgresql://x:y@nowhere.invalid/db"}})
    rendered = render(values)
    job = run_container(job_container(rendered), rendered)
    assert job.returncode == 0, job.stdout + job.stderr
    assert _alembic_versions(dev_roles.admin_url)
    with psycopg.connect(dev_roles.admin_url) as conn:  # the tables belong to the owner
        owners = {row[0] for row in conn.execute(
            "SELECT tableowner FROM pg_tables WHERE schemaname = 'public'")}
    assert owners == {dev_roles.owner}


def test_without_app_roles_the_init_container_names_the_missing_grant(dev_roles: Roles) -> None:
    """migrations.appRoles emptied: the API's role cannot read where the schema stands."""
    values = _dev_values(dev_roles, {"migrations": {"appRoles": []},
                                     "api": {"waitForMigrations": {"timeoutSeconds": 2}}})
    rendered = render(values)
    assert run_container(job_container(rendered), rendered).returncode == 0
    init = run_container(init_container(rendered), rendered, timeout=30)
    assert init.returncode == PermissionDenied.exit_code, init.stdout + init.stderr
    assert "migrations.appRoles" in init.stdout + init.stderr


def test_failure_injected_by_the_e2e_workflow_fails_the_hook(dev_roles: Roles) -> None:
    """.github/workflows/chart-e2e.yml breaks an upgrade this way: it must fail, change nothing."""
    values = _dev_values(dev_roles, {"migrations": {"extraEnv": [
        {"name": "MIGRATOR_MIGRATIONS_DIR", "value": "/nonexistent"}]}})
    rendered = render(values, upgrade=True)
    job = run_container(job_container(rendered), rendered)
    assert job.returncode == ConfigError.exit_code, job.stdout + job.stderr
    assert "MIGRATOR_MIGRATIONS_DIR" in job.stdout + job.stderr
    assert not _table_exists(dev_roles.admin_url, "alembic_version")
