"""Run .github/scripts/deploy.sh here, and render exactly what it would deploy.

helm, kubectl and docker cannot reach a cluster or a registry here, so they are stand-ins on
PATH; everything else is real (bash, awk, jq, curl). The helm stand-in renders for real:
`helm template` goes through the chart with helm-python, so the images deploy.sh pins are
the ones the chart renders; `helm upgrade` records its arguments (one JSON array per call),
which `deployed_values` turns back into the values Helm would have merged. The docker
stand-in answers `buildx imagetools inspect` with a digest derived from the reference.

Used by tests/delivery/test_deploy_script.py (the script's behaviour) and
tests/chart/test_chart_checkov.py (checkov on what the pipeline deploys, not on values the
test makes up).
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import helm_python
from chart_render import REPO, load_values, merge

SCRIPT = REPO / ".github" / "scripts" / "deploy.sh"
HERE = Path(__file__).resolve().parent

HELM = f"""#!{sys.executable}
# Stand-in for helm: records every call; `template` renders the real chart.
import json, os, sys
sys.path.insert(0, {str(HERE)!r})
args = sys.argv[1:]
with open(os.environ["CALLS"], "a") as calls:
    calls.write("helm " + " ".join(args) + "\\n")
with open(os.environ["CALLS"] + ".json", "a") as calls:
    calls.write(json.dumps(args) + "\\n")
verb = args[0] if args else ""
if verb == "version":
    print(os.environ["STUB_HELM_VERSION"])
elif verb == "template":
    from pipeline import render_cli
    sys.exit(render_cli(args[1:]))
elif verb == "upgrade":
    if os.environ.get("KUBECONFIG") and os.path.exists(os.environ["KUBECONFIG"]):
        with open(os.environ["CALLS"], "a") as calls:
            calls.write("kubeconfig: " + open(os.environ["KUBECONFIG"]).read())
    sys.exit(int(os.environ["STUB_UPGRADE_RC"]))
else:
    print("helm " + verb + " output")
"""
KUBECTL = """#!/bin/sh
echo "kubectl $*" >>"$CALLS"
case "$1" in
  logs) echo '{"event": "run_failed", "exit_code": 8, "message": "lock_timeout on users"}' ;;
  *) echo "kubectl $1 output" ;;
esac
"""
DOCKER = """#!/bin/sh
echo "docker $*" >>"$CALLS"
case "$1 $2 $3" in
  "buildx imagetools inspect")
    case "$4" in *"${STUB_MISSING_IMAGE:-@none@}"*) echo "ERROR: $4: not found" >&2; exit 1 ;; esac
    digest=$(printf '%s' "$4" | sha256sum | cut -d' ' -f1)
    index=application/vnd.oci.image.index.v1+json
    printf '{"mediaType":"%s","digest":"sha256:%s","size":1}\\n' "$index" "$digest" ;;
  login*) cat >"$CALLS.login" ;;
  logout*) ;;
  *) echo "unexpected docker $*" >&2; exit 1 ;;
esac
"""


def fake_digest(reference: str) -> str:
    """The digest the docker stand-in resolves `reference` to."""
    return "sha256:" + hashlib.sha256(reference.encode()).hexdigest()


def _values_from_args(args: list[str]) -> tuple[dict[str, Any], str, str]:
    """(values, release, namespace) of a `helm template|upgrade --install` argument list."""
    values: dict[str, Any] = {}
    positional: list[str] = []
    namespace = "default"
    i = 0
    while i < len(args):
        arg = args[i]
        if arg in ("-f", "--values"):
            values = merge(values, load_values(Path(args[i + 1])))
        elif arg == "--set-string":
            values = merge(values, helm_python.parse_set_string_values(args[i + 1]))
        elif arg == "--set":
            values = merge(values, helm_python.parse_set_string(args[i + 1]))
        elif arg in ("--namespace", "-n"):
            namespace = args[i + 1]
        elif arg in ("--timeout",):
            pass
        elif arg.startswith("-"):
            i += 1
            continue
        else:
            positional.append(arg)
            i += 1
            continue
        i += 2
    release = positional[-2]
    return values, release, namespace


def render_cli(args: list[str]) -> int:
    """`helm template RELEASE CHART [flags]`, printed as Helm prints it."""
    from chart_render import render_manifests

    values, release, namespace = _values_from_args(args)
    try:
        manifests = render_manifests(values, name=release, namespace=namespace,
                                     api_versions=())
    except helm_python.HelmError as error:
        print(f"Error: {error}", file=sys.stderr)
        return 1
    for path, text in sorted(manifests.items()):
        if path.endswith(".yaml") and text.strip():
            print(f"---\n# Source: {path}\n{text.strip()}")
    return 0


@dataclass
class Deploy:
    """One run of deploy.sh: its process, the commands it ran, the summary it wrote."""

    proc: subprocess.CompletedProcess[str]
    calls: str
    summary: str
    argv: list[list[str]]
    failed_step: str | None

    def upgrade_line(self) -> str:
        (line,) = [c for c in self.calls.splitlines() if c.startswith("helm upgrade")]
        return line

    def upgrade_args(self) -> list[str]:
        (args,) = [a for a in self.argv if a[:1] == ["upgrade"]]
        return args

    def deployed_values(self) -> tuple[dict[str, Any], str, str]:
        """(values, release, namespace) exactly as `helm upgrade` was given them."""
        return _values_from_args(self.upgrade_args()[1:])


def deploy(tmp_path: Path, environment: str = "staging", *, helm_version: str = "v3.19.0",
           upgrade_rc: int = 0, extra_env: dict[str, str | None] | None = None) -> Deploy:
    """Run deploy.sh from the repository root with the stand-ins first on PATH."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name, body in (("helm", HELM), ("kubectl", KUBECTL), ("docker", DOCKER)):
        (bin_dir / name).write_text(body)
        (bin_dir / name).chmod(stat.S_IRWXU)
    calls, summary = tmp_path / "calls", tmp_path / "summary.md"
    env: dict[str, str | None] = {
        "PATH": f"{bin_dir}:{os.environ['PATH']}", "HOME": str(tmp_path),
        "CALLS": str(calls), "STUB_HELM_VERSION": helm_version,
        "STUB_UPGRADE_RC": str(upgrade_rc), "GITHUB_STEP_SUMMARY": str(summary),
        "RUNNER_TEMP": str(tmp_path), "ENVIRONMENT": environment,
        "KUBECONFIG_DATA": "apiVersion: v1\nkind: Config",
        "MIGRATOR_IMAGE": "ghcr.io/yomu/yomu-migrate", "MIGRATOR_TAG": "abc123",
        "MIGRATOR_DIGEST": "sha256:" + "a" * 64,
        "GITHUB_SERVER_URL": "https://github.com", "GITHUB_REPOSITORY": "yomu/yomu-migrate",
        "GITHUB_RUN_ID": "42", "GITHUB_ACTOR": "deploy-bot",
        **(extra_env or {}),
    }
    proc = subprocess.run(["bash", str(SCRIPT)], cwd=REPO,
                          env={k: v for k, v in env.items() if v is not None},
                          capture_output=True, text=True, timeout=120)
    argv_file = Path(str(calls) + ".json")
    argv = [json.loads(line) for line in argv_file.read_text().splitlines()] if (
        argv_file.exists()) else []
    failed = tmp_path / "deploy-failed-step"
    return Deploy(proc, calls.read_text() if calls.exists() else "",
                  summary.read_text() if summary.exists() else "", argv,
                  failed.read_text().strip() if failed.exists() else None)
