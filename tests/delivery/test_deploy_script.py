""".github/scripts/deploy.sh, the one deploy step of every environment.

helm and kubectl cannot talk to a cluster here, so they are small recording stand-ins on
PATH; everything else is real: bash, jq, curl, and an HTTP server on 127.0.0.1 standing in
for on-call's webhook. The chart's hook Job name comes from rendering the real chart.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import ClassVar

import helm_python
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / ".github" / "scripts" / "deploy.sh"
WEBHOOK_TOKEN = "T0KEN-do-not-leak-5f1c"

HELM = """#!/bin/sh
echo "helm $*" >>"$CALLS"
case "$1" in
  version) echo "$STUB_HELM_VERSION" ;;
  upgrade) [ -f "$KUBECONFIG" ] && echo "kubeconfig: $(cat "$KUBECONFIG")" >>"$CALLS"
           exit "$STUB_UPGRADE_RC" ;;
  *) echo "helm $1 output" ;;
esac
"""
KUBECTL = """#!/bin/sh
echo "kubectl $*" >>"$CALLS"
case "$1" in
  logs) echo '{"event": "run_failed", "exit_code": 8, "message": "lock_timeout on users"}' ;;
  *) echo "kubectl $1 output" ;;
esac
"""


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


def deploy(tmp_path: Path, helm_version: str, upgrade_rc: int, webhook: str | None,
           environment: str = "staging") -> tuple[subprocess.CompletedProcess[str], str, str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name, body in (("helm", HELM), ("kubectl", KUBECTL)):
        (bin_dir / name).write_text(body)
        (bin_dir / name).chmod(stat.S_IRWXU)
    calls, summary = tmp_path / "calls", tmp_path / "summary.md"
    env = {
        "PATH": f"{bin_dir}:{os.environ['PATH']}", "HOME": str(tmp_path),
        "NO_PROXY": "127.0.0.1", "no_proxy": "127.0.0.1",
        "CALLS": str(calls), "STUB_HELM_VERSION": helm_version,
        "STUB_UPGRADE_RC": str(upgrade_rc), "GITHUB_STEP_SUMMARY": str(summary),
        "RUNNER_TEMP": str(tmp_path), "ENVIRONMENT": environment,
        "KUBECONFIG_DATA": "apiVersion: v1\nkind: Config",
        "MIGRATOR_IMAGE": "ghcr.io/yomu/yomu-migrate", "MIGRATOR_TAG": "abc123",
        "MIGRATOR_DIGEST": "sha256:" + "a" * 64,
        "GITHUB_SERVER_URL": "https://github.com", "GITHUB_REPOSITORY": "yomu/yomu-migrate",
        "GITHUB_RUN_ID": "42",
    }
    if webhook:
        env["ONCALL_WEBHOOK_URL"] = webhook
    proc = subprocess.run(["bash", str(SCRIPT)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=60)
    called = calls.read_text() if calls.exists() else ""
    return proc, called, summary.read_text() if summary.exists() else ""


def upgrade_call(calls: str) -> str:
    (line,) = [c for c in calls.splitlines() if c.startswith("helm upgrade")]
    return line


def test_helm3_gets_atomic_and_the_documented_command(tmp_path: Path, webhook: str) -> None:
    proc, calls, summary = deploy(tmp_path, "v3.19.0", 0, webhook)
    assert proc.returncode == 0, proc.stderr
    line = upgrade_call(calls)
    assert line.startswith("helm upgrade --install yomu ./chart --namespace yomu-staging")
    for part in ("-f values/staging.yaml", "--atomic", "--wait", "--timeout 5m",
                 "migrations.image.digest=sha256:", "migrations.image.tag=abc123"):
        assert part in line
    assert "--rollback-on-failure" not in line
    assert "kubeconfig: apiVersion: v1" in calls
    assert "staging deployed" in summary
    assert Webhook.received == []
    assert not list(tmp_path.glob("kubeconfig.*")), "the kubeconfig must not outlive the step"


def test_helm4_gets_rollback_on_failure(tmp_path: Path, webhook: str) -> None:
    proc, calls, _ = deploy(tmp_path, "v4.0.0", 0, webhook)
    assert proc.returncode == 0, proc.stderr
    line = upgrade_call(calls)
    assert "--rollback-on-failure" in line
    assert "--atomic" not in line


def test_failure_reports_hook_logs_pages_on_call_and_fails(tmp_path: Path, webhook: str) -> None:
    proc, calls, summary = deploy(tmp_path, "v3.19.0", 1, webhook, environment="prod")
    assert proc.returncode == 1
    job = "yomu-migrations"
    assert f"kubectl logs job/{job} --namespace yomu-prod" in calls
    assert f"involvedObject.name={job}" in calls
    assert "rolled back" in summary and "lock_timeout on users" in summary
    assert "docs/troubleshooting.md" in summary
    (path, payload), = Webhook.received
    assert path == f"/hooks/{WEBHOOK_TOKEN}"
    assert payload["environment"] == "prod"
    assert "https://github.com/yomu/yomu-migrate/actions/runs/42" in str(payload["run_url"])
    # The webhook URL is a secret: never printed, never in the summary.
    assert WEBHOOK_TOKEN not in proc.stdout + proc.stderr + summary + calls


def test_failure_without_webhook_still_fails_and_says_so(tmp_path: Path) -> None:
    proc, _, summary = deploy(tmp_path, "v3.19.0", 1, None)
    assert proc.returncode == 1
    assert "on-call was not notified" in proc.stdout
    assert "rolled back" in summary


def test_unknown_environment_is_refused(tmp_path: Path) -> None:
    proc, calls, _ = deploy(tmp_path, "v3.19.0", 0, None, environment="qa")
    assert proc.returncode == 2
    assert "helm upgrade" not in calls


def test_hook_job_name_matches_the_chart() -> None:
    """deploy.sh reads logs of `<release>-migrations`: the name the chart gives the hook Job."""
    values = yaml.safe_load((REPO / "values" / "prod.yaml").read_text())
    rendered = helm_python.Chart.load(str(REPO / "chart")).render(
        values, name="yomu", namespace="yomu-prod", is_install=True)
    jobs = [yaml.safe_load(text) for path, text in rendered.items()
            if "migrations" in path and "kind: Job" in text]
    assert [job["metadata"]["name"] for job in jobs] == ["yomu-migrations"]
    assert "pre-upgrade" in jobs[0]["metadata"]["annotations"]["helm.sh/hook"]
    assert "RELEASE:-yomu" in SCRIPT.read_text()
