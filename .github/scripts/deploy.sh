#!/usr/bin/env bash
# Deploy the chart to one environment, the way every environment is deployed:
#
#   helm upgrade --install yomu ./chart -f values/<env>.yaml --atomic --wait --timeout 5m
#
# The chart's pre-install/pre-upgrade hook Job runs `migrator upgrade` before anything else is
# applied. If it fails, Helm fails the release and rolls it back (--atomic on Helm 3,
# --rollback-on-failure on Helm 4, which renamed it), so the API keeps running the
# previous version on the schema it knows. This script then writes the hook Job's logs and
# events to the job summary, notifies on-call, and exits non-zero so the workflow fails.
#
# Environment (set by .github/workflows/deploy.yml; secrets arrive only through here):
#   ENVIRONMENT          dev | staging | prod  (values/$ENVIRONMENT.yaml)
#   NAMESPACE            Kubernetes namespace (default: yomu-$ENVIRONMENT)
#   RELEASE              Helm release (default: yomu; the hook Job is $RELEASE-migrations)
#   KUBECONFIG_DATA      kubeconfig of the environment's cluster (a secret)
#   MIGRATOR_IMAGE       repository of the migrator image built by this run (optional)
#   MIGRATOR_TAG         its tag (optional; this run's commit SHA)
#   MIGRATOR_DIGEST      its digest, sha256:... (optional; pins the exact bytes)
#   ONCALL_WEBHOOK_URL   incoming-webhook URL to notify on failure (a secret; optional)
#   HELM_TIMEOUT         default 5m
set -euo pipefail

: "${ENVIRONMENT:?ENVIRONMENT must be dev, staging or prod}"
release=${RELEASE:-yomu}
namespace=${NAMESPACE:-yomu-$ENVIRONMENT}
values=values/$ENVIRONMENT.yaml
job=$release-migrations
summary=${GITHUB_STEP_SUMMARY:-/dev/stderr}
[ -f "$values" ] || { echo "no values file $values" >&2; exit 2; }

if [ -n "${KUBECONFIG_DATA:-}" ]; then
  KUBECONFIG=$(mktemp "${RUNNER_TEMP:-/tmp}/kubeconfig.XXXXXX")
  export KUBECONFIG
  trap 'rm -f "$KUBECONFIG"' EXIT
  printf '%s\n' "$KUBECONFIG_DATA" >"$KUBECONFIG"
  chmod 600 "$KUBECONFIG"
fi

# Helm 4 renamed --atomic to --rollback-on-failure: pick the flag by the major version.
helm_major=$(helm version --template '{{.Version}}' | sed -E 's/^v?([0-9]+).*/\1/')
if [ "$helm_major" -ge 4 ]; then
  rollback_flag=--rollback-on-failure
else
  rollback_flag=--atomic
fi

args=(upgrade --install "$release" ./chart
  --namespace "$namespace"
  -f "$values"
  "$rollback_flag" --wait --timeout "${HELM_TIMEOUT:-5m}")
if [ -n "${MIGRATOR_IMAGE:-}" ]; then
  args+=(--set-string "migrations.image.repository=$MIGRATOR_IMAGE")
fi
if [ -n "${MIGRATOR_TAG:-}" ]; then
  args+=(--set-string "migrations.image.tag=$MIGRATOR_TAG")
fi
if [ -n "${MIGRATOR_DIGEST:-}" ]; then
  args+=(--set-string "migrations.image.digest=$MIGRATOR_DIGEST")
fi

echo "helm ${args[*]}"
started=$(date +%s)
if helm "${args[@]}"; then
  {
    echo "### ✅ $ENVIRONMENT deployed"
    echo "Release \`$release\` in \`$namespace\` (helm v$helm_major, $rollback_flag), $(( $(date +%s) - started ))s."
    echo '```'
    helm status "$release" --namespace "$namespace" --show-resources 2>&1 | head -40 || true
    echo '```'
  } >>"$summary"
  exit 0
fi

# ---- failed: the release was rolled back. Say why, where everyone looks. ----
{
  echo "### ❌ $ENVIRONMENT deploy failed and was rolled back"
  echo "Release \`$release\` in \`$namespace\`: the API still runs the previous version."
  echo "If the migration hook failed, its exit code is in the log below; the runbook for each"
  echo "code is docs/troubleshooting.md (e.g. #7 lock held by another migrator)."
  echo
  echo "#### Hook Job \`$job\`"
  echo '```'
  kubectl get job "$job" --namespace "$namespace" -o wide 2>&1 || true
  kubectl get pods --namespace "$namespace" -l "job-name=$job" -o wide 2>&1 || true
  echo '```'
  echo "#### Migrator log (last 200 lines)"
  echo '```'
  kubectl logs "job/$job" --namespace "$namespace" --all-containers --tail=200 2>&1 || true
  echo '```'
  echo "#### Events"
  echo '```'
  kubectl get events --namespace "$namespace" --sort-by=.lastTimestamp \
    --field-selector "involvedObject.name=$job" 2>&1 | tail -30 || true
  kubectl get events --namespace "$namespace" --sort-by=.lastTimestamp 2>&1 \
    | grep -E "$job|Warning" | tail -30 || true
  echo '```'
  echo "#### Release history"
  echo '```'
  helm history "$release" --namespace "$namespace" --max 5 2>&1 || true
  echo '```'
} >>"$summary"

if [ -n "${ONCALL_WEBHOOK_URL:-}" ]; then
  run_url="${GITHUB_SERVER_URL:-}/${GITHUB_REPOSITORY:-}/actions/runs/${GITHUB_RUN_ID:-}"
  text="yomu deploy to $ENVIRONMENT failed and was rolled back (migration hook job $job). Logs: $run_url"
  payload=$(jq -n --arg text "$text" --arg environment "$ENVIRONMENT" --arg run "$run_url" \
    '{text: $text, environment: $environment, run_url: $run}')
  # The URL is a secret: it goes to curl on stdin (a config line), never on a command line.
  if ! printf 'url = "%s"\n' "$ONCALL_WEBHOOK_URL" | curl --silent --show-error --fail \
      --max-time 20 --retry 3 --config - -H 'Content-Type: application/json' \
      --data "$payload" >/dev/null; then
    echo "::warning::could not notify on-call (webhook failed)"
  fi
else
  echo "::warning::ONCALL_WEBHOOK_URL is not set: on-call was not notified"
fi
exit 1
