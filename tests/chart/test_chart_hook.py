"""The migration hook Job: when it runs, what it runs, what it sees, what survives a failure."""

from __future__ import annotations

import pytest
from chart_render import (
    FULLNAME,
    HOOK_KINDS_BEFORE_JOB,
    VALUES_DIR,
    Obj,
    Rendered,
    hook_annotations,
    render,
    rendered_file,
)

JOB_NAME = f"{FULLNAME}-migrations"


def _env(container: Obj) -> dict[str, Obj]:
    return {e["name"]: e for e in container.get("env", [])}


def _hooks(rendered: Rendered) -> list[Obj]:
    return [o for o in rendered.objects if hook_annotations(o)]


def test_job_is_a_pre_install_pre_upgrade_hook_that_keeps_failures(each_env: Rendered) -> None:
    ann = each_env.job()["metadata"]["annotations"]
    assert ann["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert ann["helm.sh/hook-weight"] == "0"
    # Deleted before the next run and on success; NOT on failure, so it can be inspected.
    assert ann["helm.sh/hook-delete-policy"] == "before-hook-creation,hook-succeeded"
    assert "hook-failed" not in ann["helm.sh/hook-delete-policy"]
    # Helm >= 3.18 copies the failed pod's log into its own output.
    assert ann["helm.sh/hook-output-log-policy"] == "hook-failed"


def test_objects_the_job_needs_are_hooks_created_before_it(each_env: Rendered) -> None:
    job_weight = int(each_env.job()["metadata"]["annotations"]["helm.sh/hook-weight"])
    others = [o for o in _hooks(each_env) if o["kind"] != "Job"]
    assert {o["kind"] for o in others} <= set(HOOK_KINDS_BEFORE_JOB)
    assert any(o["kind"] == "ServiceAccount" for o in others)
    for obj in others:
        ann = obj["metadata"]["annotations"]
        assert ann["helm.sh/hook"] == "pre-install,pre-upgrade"
        assert int(ann["helm.sh/hook-weight"]) < job_weight, obj["metadata"]["name"]
        assert ann["helm.sh/hook-delete-policy"] == "before-hook-creation,hook-succeeded"


def test_hook_weight_is_configurable_and_keeps_the_order() -> None:
    rendered = render({"migrations": {"hookWeight": 5}})
    assert rendered.job()["metadata"]["annotations"]["helm.sh/hook-weight"] == "5"
    sa = rendered.get("ServiceAccount", JOB_NAME)
    assert sa["metadata"]["annotations"]["helm.sh/hook-weight"] == "4"


def test_job_fails_fast_and_before_helm_gives_up(each_env: Rendered) -> None:
    spec = each_env.job()["spec"]
    pod = spec["template"]["spec"]
    settings = each_env.values["migrations"]
    assert spec["backoffLimit"] == 0
    assert pod["restartPolicy"] == "Never"
    assert spec["activeDeadlineSeconds"] < settings["helmTimeoutSeconds"]
    # The deadline leaves the migrator its SIGTERM grace before Helm's timeout.
    assert spec["activeDeadlineSeconds"] + pod["terminationGracePeriodSeconds"] <= (
        settings["helmTimeoutSeconds"]
    )
    assert spec["ttlSecondsAfterFinished"] >= 60


def test_documented_helm_timeout_is_five_minutes_in_prod(prod: Rendered) -> None:
    """docs/chart.md and values/prod.yaml say `--timeout 5m`."""
    assert prod.values["migrations"]["helmTimeoutSeconds"] == 300
    assert prod.job()["spec"]["activeDeadlineSeconds"] == 240


def test_job_runs_migrator_upgrade_from_its_own_pinned_image(each_env: Rendered) -> None:
    (container,) = each_env.job()["spec"]["template"]["spec"]["containers"]
    assert "command" not in container, "the image ENTRYPOINT `migrator` must run"
    assert container["args"] == ["upgrade"]
    repo, tag = container["image"].rsplit(":", 1)
    assert repo.endswith("/yomu-migrate")
    assert tag not in ("", "latest")
    api_image = each_env.api()["spec"]["template"]["spec"]["containers"][0]["image"]
    assert container["image"] != api_image


def test_digest_is_pinned_after_the_tag() -> None:
    digest = "sha256:" + "ab" * 32
    rendered = render({"migrations": {"image": {"tag": "1.2.3", "digest": digest}}})
    (container,) = rendered.job()["spec"]["template"]["spec"]["containers"]
    assert container["image"] == f"ghcr.io/yomu/yomu-migrate:1.2.3@{digest}"


def test_job_env_carries_every_migrator_setting(default: Rendered) -> None:
    (container,) = default.job()["spec"]["template"]["spec"]["containers"]
    env = _env(container)
    expected = {
        "MIGRATOR_LOCK_WAIT": "60", "MIGRATOR_LOCK_TIMEOUT_MS": "100",
        "MIGRATOR_LOCK_TIMEOUT_CAP_MS": "250", "MIGRATOR_LOCK_RETRIES": "40",
        "MIGRATOR_RETRY_DEADLINE": "120", "MIGRATOR_STATEMENT_TIMEOUT_MS": "60000",
        "MIGRATOR_IDLE_IN_TRANSACTION_TIMEOUT_MS": "60000", "MIGRATOR_CONNECT_TIMEOUT": "30",
        "MIGRATOR_LOG_FORMAT": "json",
    }
    assert {k: env[k].get("value") for k in expected} == expected


def test_large_settings_render_as_plain_integers() -> None:
    """Helm reads numbers as floats: 3600000 must not become 3.6e+06."""
    rendered = render({"migrations": {"settings": {"statementTimeoutMs": 3600000}}})
    (container,) = rendered.job()["spec"]["template"]["spec"]["containers"]
    assert _env(container)["MIGRATOR_STATEMENT_TIMEOUT_MS"]["value"] == "3600000"


@pytest.mark.parametrize(
    ("values", "secret", "variable"),
    [
        # prod/staging: the owner DSN from the existing Secret
        ({"migrations": {"ownerSecret": {"key": "OWNER_DSN"}}}, "yomu-env",
         "MIGRATION_DATABASE_URL"),
        ({"migrations": {"ownerSecret": {"name": "pg-owner", "key": "dsn"}}}, "pg-owner",
         "MIGRATION_DATABASE_URL"),
        # no owner role: the app's DATABASE_URL from the existing Secret
        ({}, "yomu-env", "DATABASE_URL"),
    ],
)
def test_job_reads_its_dsn_from_a_secret(values: Obj, secret: str, variable: str) -> None:
    (container,) = render(values).job()["spec"]["template"]["spec"]["containers"]
    dsn_vars = [e for e in container["env"] if e["name"].endswith("DATABASE_URL")]
    assert [e["name"] for e in dsn_vars] == [variable]
    assert dsn_vars[0]["valueFrom"]["secretKeyRef"]["name"] == secret


def test_inline_owner_dsn_goes_to_a_hook_scoped_secret(dev: Rendered) -> None:
    (container,) = dev.job()["spec"]["template"]["spec"]["containers"]
    ref = _env(container)["MIGRATION_DATABASE_URL"]["valueFrom"]["secretKeyRef"]
    assert "DATABASE_URL" not in _env(container), "the Job needs one DSN, the owner's"
    hook_secret = dev.get("Secret", ref["name"])
    assert hook_annotations(hook_secret), "the Job's Secret must exist on pre-install"
    assert ref["key"] in hook_secret["data"]


def test_job_never_reads_the_releases_own_secret_or_configmap(each_env: Rendered) -> None:
    """On pre-install only hooks and pre-existing Secrets exist."""
    pod = each_env.job()["spec"]["template"]["spec"]
    existing = each_env.values["secrets"]["existingSecret"]
    hook_secrets = {o["metadata"]["name"] for o in _hooks(each_env) if o["kind"] == "Secret"}
    for env in pod["containers"][0]["env"]:
        source = env.get("valueFrom", {})
        assert "configMapKeyRef" not in source
        if "secretKeyRef" in source:
            assert source["secretKeyRef"]["name"] in hook_secrets | {existing} - {""}
    assert "envFrom" not in pod["containers"][0]
    assert pod["serviceAccountName"] in {
        o["metadata"]["name"] for o in _hooks(each_env) if o["kind"] == "ServiceAccount"
    }


def test_statsd_goes_to_the_in_chart_exporter_when_monitoring(prod: Rendered) -> None:
    (container,) = prod.job()["spec"]["template"]["spec"]["containers"]
    env = {k: v.get("value") for k, v in _env(container).items()}
    service = prod.get("Service", f"{FULLNAME}-statsd-exporter")
    assert env["STATSD_HOST"] == f"{service['metadata']['name']}.yomu.svc"
    udp = [p for p in service["spec"]["ports"] if p["protocol"] == "UDP"]
    assert [str(p["port"]) for p in udp] == [env["STATSD_PORT"]]
    assert env["STATSD_PREFIX"] == "yomu_migrate"


def test_statsd_host_value_wins_and_no_host_means_no_metrics() -> None:
    explicit = render({"metrics": {"statsdHost": "statsd.infra", "statsdPort": 8125},
                       "monitoring": {"enabled": True}})
    (container,) = explicit.job()["spec"]["template"]["spec"]["containers"]
    env = {k: v.get("value") for k, v in _env(container).items()}
    assert (env["STATSD_HOST"], env["STATSD_PORT"]) == ("statsd.infra", "8125")
    for values in ({}, {"monitoring": {"enabled": True}, "metrics": {"enabled": False}}):
        (container,) = render(values).job()["spec"]["template"]["spec"]["containers"]
        assert "STATSD_HOST" not in _env(container)


def test_extra_env_reaches_the_job() -> None:
    """How the e2e workflow makes a migration fail on purpose."""
    extra = [{"name": "MIGRATOR_MIGRATIONS_DIR", "value": "/nonexistent"}]
    (container,) = render({"migrations": {"extraEnv": extra}}).job()["spec"]["template"]["spec"][
        "containers"
    ]
    assert container["env"][-1] == extra[0]


def test_notes_say_how_to_read_the_migration_logs(prod: Rendered) -> None:
    assert f"kubectl -n yomu logs job/{JOB_NAME}" in prod.notes
    assert "kubectl -n yomu get events" in prod.notes
    assert "--atomic" in prod.notes and "--rollback-on-failure" in prod.notes


def test_job_name_does_not_depend_on_the_release_name() -> None:
    assert rendered_file("default").job()["metadata"]["name"] == render(name="other").job()[
        "metadata"]["name"]
    unprefixed = render({"fullnameOverride": ""}, name="blue")
    assert unprefixed.get("Job", "blue-migrations")
    assert unprefixed.get("Deployment", "blue-api")


LONGEST_RELEASE = "r" * 53  # Helm's limit for a release name


def test_every_name_fits_a_dns_label_whatever_the_release_name() -> None:
    """Service and Job names (and the job-name label of the Job's pods) allow 63 characters."""
    for values in ({"fullnameOverride": ""}, {"fullnameOverride": "y" * 50}):
        base = values["fullnameOverride"] or LONGEST_RELEASE
        rendered = render({**values, "monitoring": {"enabled": True}, "networkPolicy": {
            "enabled": True}}, name=LONGEST_RELEASE)
        names = {(o["kind"], o["metadata"]["name"]) for o in rendered.objects}
        assert max(len(name) for _, name in names) <= 63, sorted(names)
        # Truncation keeps every name distinct and every suffix whole.
        assert len(names) == len(rendered.objects)
        suffixes = {name.rsplit("-", 2)[-1] for _, name in names}
        assert {"api", "migrations", "exporter", "config"} <= suffixes
        job = next(n for k, n in names if k == "Job")
        assert job.endswith("-migrations")
        assert len(job) == min(63, len(base) + len("-migrations"))


def test_a_disrupted_pod_is_retried_not_a_failed_migration(each_env: Rendered) -> None:
    """A drain or preemption must not fail the release: the Job starts another pod."""
    policy = each_env.job()["spec"]["podFailurePolicy"]
    assert policy == {"rules": [{"action": "Ignore", "onPodConditions": [
        {"type": "DisruptionTarget", "status": "True"}]}]}
    # A real failure still fails at once: Ignore covers disruptions only.
    assert each_env.job()["spec"]["backoffLimit"] == 0


def test_the_job_opts_out_of_mesh_sidecars_by_default(each_env: Rendered) -> None:
    """A classic sidecar never exits: the Job would never complete, and its deadline would
    fail a migration that had committed."""
    meta = each_env.job()["spec"]["template"]["metadata"]
    assert meta["labels"]["sidecar.istio.io/inject"] == "false"
    assert meta["annotations"]["sidecar.istio.io/inject"] == "false"
    assert meta["annotations"]["linkerd.io/inject"] == "disabled"
    assert meta["annotations"]["traffic.sidecar.istio.io/excludeOutboundPorts"] == "5432"


def test_mesh_injection_can_be_allowed_and_pod_annotations_win() -> None:
    rendered = render({"mesh": {"injectMigrationJob": True, "excludeOutboundPorts": []},
                       "migrations": {"podAnnotations": {"a": "b"}}})
    meta = rendered.job()["spec"]["template"]["metadata"]
    assert "sidecar.istio.io/inject" not in meta["labels"]
    assert meta["annotations"] == {"a": "b"}
    own = render({"migrations": {"podAnnotations": {"linkerd.io/inject": "enabled"}}})
    assert own.job()["spec"]["template"]["metadata"]["annotations"]["linkerd.io/inject"] == (
        "enabled")


def test_app_roles_become_migrator_app_role_only_when_set(default: Rendered,
                                                          prod: Rendered) -> None:
    (container,) = default.job()["spec"]["template"]["spec"]["containers"]
    assert "MIGRATOR_APP_ROLE" not in _env(container)
    (container,) = prod.job()["spec"]["template"]["spec"]["containers"]
    assert _env(container)["MIGRATOR_APP_ROLE"] == {"name": "MIGRATOR_APP_ROLE",
                                                     "value": "yomu_app"}
    two = render({"migrations": {"appRoles": ["yomu_app", "yomu_reports"]}})
    (container,) = two.job()["spec"]["template"]["spec"]["containers"]
    assert _env(container)["MIGRATOR_APP_ROLE"]["value"] == "yomu_app,yomu_reports"
    # The app role is the Job's business only: the API and its init container never see it.
    for c in [*two.api()["spec"]["template"]["spec"]["containers"],
              *two.api()["spec"]["template"]["spec"]["initContainers"]]:
        assert "MIGRATOR_APP_ROLE" not in _env(c)


@pytest.mark.parametrize("name", ["dev.yaml", "staging.yaml", "prod.yaml"])
def test_each_environment_grants_the_role_of_its_app_dsn(name: str) -> None:
    values = rendered_file(name).values
    assert values["migrations"]["appRoles"] == ["yomu_app"]
    if values["secrets"]["databaseUrl"]:  # dev: the inline DSN names the role
        user = values["secrets"]["databaseUrl"].split("://", 1)[1].split(":", 1)[0]
        assert values["migrations"]["appRoles"] == [user]
    else:  # the role is in the Secret: the values file must say so next to it
        text = (VALUES_DIR / name).read_text()
        assert "appRoles" in text.split("DATABASE_URL")[-2] + text.split("DATABASE_URL")[-1]
