""".github/scripts/deploy.sh, the one deploy step of every environment, and the step after
it in .github/workflows/deploy.yml that notifies on-call when anything in the job failed.

helm, kubectl and docker are stand-ins on PATH (tests/chart/pipeline.py; `helm template`
renders the real chart); everything else is real: bash, awk, jq, curl, and an HTTP server on
127.0.0.1 standing in for on-call's webhook.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "chart"))
from chart_render import render
from pipeline import Deploy, deploy, fake_digest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / ".github" / "scripts" / "deploy.sh"
WORKFLOW = REPO / ".github" / "workflows" / "deploy.yml"
WEBHOOK_TOKEN = "T0KEN-do-not-leak-5f1c"
REGISTRY_TOKEN = "ghs_registry-token-do-not-leak-77"
DIGEST = "sha256:" + "a" * 64


class Webhook(BaseHTTPRequestHandler):
    received: ClassVar[list[tuple[str, dict[str, object]]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Webhook.received.append((self.path, json.loads(body)))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def webhook() -> Iterator[str]:
    Webhook.received = []
    server = HTTPServer(("127.0.0.1", 0), Webhook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/hooks/{WEBHOOK_TOKEN}"
    server.shutdown()
    server.server_close()


def _set_strings(run: Deploy) -> dict[str, str]:
    args = run.upgrade_args()
    pairs = [args[i + 1] for i, a in enumerate(args) if a in ("--set-string", "--set")]
    return dict(pair.split("=", 1) for pair in pairs)


# ---- the command ---------------------------------------------------------------------------

def test_helm3_gets_atomic_and_the_documented_command(tmp_path: Path) -> None:
    run = deploy(tmp_path, "staging")
    assert run.proc.returncode == 0, run.proc.stderr
    line = run.upgrade_line()
    assert line.startswith("helm upgrade --install yomu ./chart --namespace yomu-staging")
    for part in ("-f values/staging.yaml", "--atomic", "--wait", "--timeout 5m",
                 "migrations.image.tag=abc123"):
        assert part in line
    assert "--rollback-on-failure" not in line
    assert "kubeconfig: apiVersion: v1" in run.calls
    assert "staging deployed" in run.summary
    assert run.failed_step is None
    assert not list(tmp_path.glob("kubeconfig.*")), "the kubeconfig must not outlive the step"


def test_helm4_gets_rollback_on_failure(tmp_path: Path) -> None:
    run = deploy(tmp_path, helm_version="v4.0.0")
    assert run.proc.returncode == 0, run.proc.stderr
    line = run.upgrade_line()
    assert "--rollback-on-failure" in line
    assert "--atomic" not in line


@pytest.mark.parametrize("version", ["v3.18.4", "v3.17.0", "v2.17.0"])
def test_helm_older_than_3_19_is_refused_before_anything_runs(tmp_path: Path,
                                                              version: str) -> None:
    run = deploy(tmp_path, helm_version=version)
    assert run.proc.returncode == 2
    assert "needs 3.19.0 or later" in run.proc.stderr
    assert "helm upgrade" not in run.calls and "helm template" not in run.calls
    assert run.failed_step == "check the Helm version"
    assert "nothing changed in the cluster" in run.summary


# ---- every image pinned by digest ----------------------------------------------------------

def test_every_image_is_pinned_by_the_digest_the_registry_resolves(tmp_path: Path) -> None:
    """prod: API, migrator and statsd_exporter. The migrator's digest is the one its build
    produced; the others are resolved from the references the chart renders."""
    run = deploy(tmp_path, "prod")
    assert run.proc.returncode == 0, run.proc.stderr
    sets = _set_strings(run)
    assert sets["migrations.image.digest"] == DIGEST
    assert sets["api.image.digest"] == fake_digest("ghcr.io/yomu/yomu-api:1.0.0")
    assert sets["monitoring.statsdExporter.image.digest"] == fake_digest(
        "prom/statsd-exporter:v0.28.0")
    inspected = [c.split()[4] for c in run.calls.splitlines() if "imagetools inspect" in c]
    assert sorted(inspected) == ["ghcr.io/yomu/yomu-api:1.0.0", "prom/statsd-exporter:v0.28.0"]
    # What Helm renders from these arguments: every container's image carries a digest.
    values, release, _ = run.deployed_values()
    rendered = render(values, name=release)
    images = [c["image"] for o in rendered.objects if o["kind"] in ("Deployment", "Job")
              for c in [*o["spec"]["template"]["spec"].get("initContainers", []),
                        *o["spec"]["template"]["spec"]["containers"]]]
    assert len(images) == 4
    assert all("@sha256:" in image for image in images), images
    assert "`api.image`" in run.summary and sets["api.image.digest"] in run.summary


def test_the_api_release_and_an_unpinned_migrator_are_resolved_too(tmp_path: Path) -> None:
    run = deploy(tmp_path, "dev", extra_env={"MIGRATOR_DIGEST": None, "API_TAG": "2.3.4"})
    assert run.proc.returncode == 0, run.proc.stderr
    sets = _set_strings(run)
    assert sets["api.image.tag"] == "2.3.4"
    assert sets["api.image.digest"] == fake_digest("ghcr.io/yomu/yomu-api:2.3.4")
    assert sets["migrations.image.digest"] == fake_digest("ghcr.io/yomu/yomu-migrate:abc123")
    assert "monitoring.statsdExporter.image.digest" not in sets, "dev renders no exporter"


def test_an_image_the_registry_does_not_know_stops_the_deploy(tmp_path: Path) -> None:
    run = deploy(tmp_path, "prod", extra_env={"STUB_MISSING_IMAGE": "statsd-exporter"})
    assert run.proc.returncode == 1
    assert "cannot resolve prom/statsd-exporter:v0.28.0" in run.proc.stderr
    assert "helm upgrade" not in run.calls
    assert run.failed_step == "resolve the image digests"


def test_the_registry_token_is_used_on_stdin_and_never_printed(tmp_path: Path) -> None:
    run = deploy(tmp_path, "prod", extra_env={"REGISTRY_TOKEN": REGISTRY_TOKEN})
    assert run.proc.returncode == 0, run.proc.stderr
    login = [c for c in run.calls.splitlines() if c.startswith("docker login")]
    assert login == ["docker login ghcr.io -u deploy-bot --password-stdin"]
    assert (tmp_path / "calls.login").read_text() == REGISTRY_TOKEN
    assert "docker logout ghcr.io" in run.calls
    assert REGISTRY_TOKEN not in run.proc.stdout + run.proc.stderr + run.summary + run.calls


# ---- HELM_TIMEOUT reaches the chart's own deadline check -----------------------------------

@pytest.mark.parametrize(("timeout", "seconds"), [("5m", 300), ("400s", 400), ("1h", 3600),
                                                   ("4m30s", 270)])
def test_helm_timeout_is_passed_to_the_chart_in_seconds(tmp_path: Path, timeout: str,
                                                        seconds: int) -> None:
    run = deploy(tmp_path, extra_env={"HELM_TIMEOUT": timeout})
    assert run.proc.returncode == 0, run.proc.stderr
    assert f"--timeout {timeout}" in run.upgrade_line()
    assert _set_strings(run)["migrations.helmTimeoutSeconds"] == str(seconds)
    values, _, _ = run.deployed_values()
    assert values["migrations"]["helmTimeoutSeconds"] == seconds


def test_a_helm_timeout_shorter_than_the_jobs_deadline_is_refused(tmp_path: Path) -> None:
    """240 s deadline + 30 s grace > 4m: Helm would give up before the Job fails and prints
    its log. The chart's check stops it, because deploy.sh told the chart the real timeout."""
    run = deploy(tmp_path, "prod", extra_env={"HELM_TIMEOUT": "4m"})
    assert run.proc.returncode != 0
    assert "must not exceed migrations.helmTimeoutSeconds (240)" in run.proc.stderr
    assert "helm upgrade" not in run.calls
    assert run.failed_step == "render the chart"


def test_a_malformed_helm_timeout_is_refused(tmp_path: Path) -> None:
    run = deploy(tmp_path, extra_env={"HELM_TIMEOUT": "5 minutes"})
    assert run.proc.returncode == 2
    assert "HELM_TIMEOUT=5 minutes" in run.proc.stderr
    assert run.failed_step == "read HELM_TIMEOUT"


# ---- failures -------------------------------------------------------------------------------

def test_failure_reports_the_hook_logs_and_fails(tmp_path: Path) -> None:
    run = deploy(tmp_path, "prod", upgrade_rc=1)
    assert run.proc.returncode == 1
    job = "yomu-migrations"
    assert f"kubectl logs job/{job} --namespace yomu-prod" in run.calls
    assert f"involvedObject.name={job}" in run.calls
    assert "rolled back" in run.summary and "lock_timeout on users" in run.summary
    assert "docs/troubleshooting.md" in run.summary
    assert run.failed_step == "helm upgrade"


def test_unknown_environment_is_refused(tmp_path: Path) -> None:
    run = deploy(tmp_path, "qa")
    assert run.proc.returncode == 2
    assert "helm upgrade" not in run.calls
    assert run.failed_step == "read the inputs"


def test_hook_job_name_matches_the_chart() -> None:
    """deploy.sh reads logs of `<release>-migrations`: the name the chart gives the hook Job."""
    values = yaml.safe_load((REPO / "values" / "prod.yaml").read_text())
    job = render(values, name="yomu").job()
    assert job["metadata"]["name"] == "yomu-migrations"
    assert "pre-upgrade" in job["metadata"]["annotations"]["helm.sh/hook"]
    assert "RELEASE:-yomu" in SCRIPT.read_text()


# ---- the workflow's notify step --------------------------------------------------------------

def _notify_steps() -> dict[str, dict[str, Any]]:
    jobs = yaml.safe_load(WORKFLOW.read_text())["jobs"]
    steps = {}
    for name in ("dev", "staging", "production"):
        (step,) = [s for s in jobs[name]["steps"] if s.get("name", "").startswith("notify")]
        steps[name] = step
    return steps


def _notify(tmp_path: Path, webhook: str | None, failed_step: str | None,
            environment: str = "prod") -> subprocess.CompletedProcess[str]:
    step = _notify_steps()["production"]
    if failed_step is not None:
        (tmp_path / "deploy-failed-step").write_text(failed_step + "\n")
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "RUNNER_TEMP": str(tmp_path),
           "NO_PROXY": "127.0.0.1", "no_proxy": "127.0.0.1", "ENVIRONMENT": environment,
           "GITHUB_SERVER_URL": "https://github.com", "GITHUB_REPOSITORY": "yomu/yomu-migrate",
           "GITHUB_RUN_ID": "42"}
    if webhook:
        env["ONCALL_WEBHOOK_URL"] = webhook
    return subprocess.run(["bash", "-e", "-c", step["run"]], env=env, capture_output=True,
                          text=True, timeout=60)


def test_every_deploy_job_notifies_on_any_failure_the_same_way() -> None:
    steps = _notify_steps()
    jobs = yaml.safe_load(WORKFLOW.read_text())["jobs"]
    for name, step in steps.items():
        assert step["if"] == "${{ failure() || cancelled() }}", name
        assert step["env"]["ONCALL_WEBHOOK_URL"] == "${{ secrets.ONCALL_WEBHOOK_URL }}"
        assert step["run"] == steps["dev"]["run"], f"{name}'s notify step drifted"
        assert jobs[name]["steps"][-1] == step, "notify must be the job's last step"
        (deploy_step,) = [s for s in jobs[name]["steps"] if s.get("run") ==
                          ".github/scripts/deploy.sh"]
        assert "ONCALL_WEBHOOK_URL" not in deploy_step["env"]
        assert deploy_step["timeout-minutes"] < jobs[name]["timeout-minutes"], (
            "a hung deploy step must time out while the job can still notify")
    # The image build failing is a failed deploy too: dev runs to say so.
    assert jobs["dev"]["if"] == "${{ !cancelled() }}"
    assert "needs.image.result" in str(jobs["dev"]["steps"][0])


def test_a_failed_step_pages_on_call_without_leaking_the_url(tmp_path: Path,
                                                            webhook: str) -> None:
    run = deploy(tmp_path, "prod", upgrade_rc=1)
    proc = _notify(tmp_path, webhook, failed_step=None)  # deploy.sh wrote the step itself
    assert proc.returncode == 0, proc.stderr
    (path, payload), = Webhook.received
    assert path == f"/hooks/{WEBHOOK_TOKEN}"
    assert payload["environment"] == "prod"
    assert payload["failed_step"] == "helm upgrade"
    assert "https://github.com/yomu/yomu-migrate/actions/runs/42" in str(payload["run_url"])
    # The webhook URL is a secret: never printed, never in the summary.
    everything = proc.stdout + proc.stderr + run.proc.stdout + run.proc.stderr + run.summary
    assert WEBHOOK_TOKEN not in everything + run.calls


def test_a_step_before_the_script_still_pages(tmp_path: Path, webhook: str) -> None:
    """Checkout or Helm setup failed, or the step timed out before deploy.sh said anything."""
    proc = _notify(tmp_path, webhook, failed_step=None, environment="staging")
    assert proc.returncode == 0, proc.stderr
    ((_, payload),) = Webhook.received
    assert payload["failed_step"] == "a step before the deploy script"
    assert payload["environment"] == "staging"


def test_a_digest_failure_pages_with_its_step(tmp_path: Path, webhook: str) -> None:
    deploy(tmp_path, "prod", extra_env={"STUB_MISSING_IMAGE": "yomu-api"})
    assert _notify(tmp_path, webhook, failed_step=None).returncode == 0
    ((_, payload),) = Webhook.received
    assert payload["failed_step"] == "resolve the image digests"


def test_without_a_webhook_the_step_says_on_call_was_not_notified(tmp_path: Path) -> None:
    proc = _notify(tmp_path, None, failed_step="helm upgrade")
    assert proc.returncode == 0
    assert "on-call was not notified" in proc.stdout


def test_a_webhook_that_fails_fails_the_step(tmp_path: Path) -> None:
    proc = _notify(tmp_path, "http://127.0.0.1:9/hooks/x", failed_step="helm upgrade")
    assert proc.returncode == 1
    assert "could not notify on-call" in proc.stdout
