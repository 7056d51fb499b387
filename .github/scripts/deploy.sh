#!/usr/bin/env bash
# Deploy the chart to one environment, the way every environment is deployed:
#
#   helm upgrade --install yomu ./chart -f values/<env>.yaml --atomic --wait --timeout 5m \
#     --set migrations.helmTimeoutSeconds=300 --set-string <every image>.digest=sha256:...
#
# The chart's pre-install/pre-upgrade hook Job runs `migrator upgrade` before anything else is
# applied. If it fails, Helm fails the release and rolls it back (--atomic on Helm 3,
# --rollback-on-failure on Helm 4, which renamed it), so the API keeps running the previous
# version on the schema it knows. This script then writes the hook Job's logs and events to
# the job summary and exits non-zero. Whatever step fails, it records which one in
# $RUNNER_TEMP/deploy-failed-step; the workflow's next step notifies on-call (it also runs
# when this script never started, or was killed by the step's timeout).
#
# Every image the chart renders (API, migrator, statsd_exporter) is pinned by digest: the
# script renders the chart as it will deploy it (`helm template`, same values), resolves each
# image reference in the registry (`docker buildx imagetools inspect`) and passes the digest
# with --set-string, so the cluster runs exactly the bytes resolved here, even with
# pullPolicy Always. An image it cannot resolve stops the deploy before Helm runs.
#
# Environment (set by .github/workflows/deploy.yml; secrets arrive only through here):
#   ENVIRONMENT          dev | staging | prod  (values/$ENVIRONMENT.yaml)
#   NAMESPACE            Kubernetes namespace (default: yomu-$ENVIRONMENT)
#   RELEASE              Helm release (default: yomu; the hook Job is $RELEASE-migrations)
#   KUBECONFIG_DATA      kubeconfig of the environment's cluster (a secret)
#   MIGRATOR_IMAGE       repository of the migrator image built by this run (optional)
#   MIGRATOR_TAG         its tag (optional; this run's commit SHA)
#   MIGRATOR_DIGEST      its digest, sha256:... (optional; else resolved like the others)
#   API_IMAGE, API_TAG   the API image to deploy (optional; default: the values files')
#   REGISTRY_TOKEN       token to read private images' digests (optional; a secret)
#   REGISTRY, REGISTRY_USER  where and as whom it logs in (default: ghcr.io, $GITHUB_ACTOR)
#   HELM_TIMEOUT         Helm's --timeout, Go duration (default 5m); the chart gets it in
#                        seconds as migrations.helmTimeoutSeconds, so its own check (Job
#                        deadline + grace <= timeout) sees the timeout Helm really uses
set -euo pipefail

MIN_HELM=3.19.0
step="read the inputs"
summary=${GITHUB_STEP_SUMMARY:-/dev/stderr}
failed_step_file=${RUNNER_TEMP:-/tmp}/deploy-failed-step
kubeconfig_file=""
registry_login=""
rm -f "$failed_step_file"

finish() {
  local rc=$1
  [ -z "$kubeconfig_file" ] || rm -f "$kubeconfig_file"
  [ -z "$registry_login" ] || docker logout "$registry_login" >/dev/null 2>&1 || true
  if [ "$rc" -ne 0 ]; then
    printf '%s\n' "$step" >"$failed_step_file"
    if [ "$step" != "helm upgrade" ]; then
      {
        echo "### ❌ ${ENVIRONMENT:-?} deploy failed: $step"
        echo "The deploy stopped before \`helm upgrade\`: nothing changed in the cluster."
      } >>"$summary"
    fi
  fi
}
trap 'finish $?' EXIT
# A cancelled or timed-out step gets SIGINT/SIGTERM: record the step on the way out.
trap 'exit 130' INT
trap 'exit 143' TERM

: "${ENVIRONMENT:?ENVIRONMENT must be dev, staging or prod}"
release=${RELEASE:-yomu}
namespace=${NAMESPACE:-yomu-$ENVIRONMENT}
values=values/$ENVIRONMENT.yaml
job=$release-migrations
[ -f "$values" ] || { echo "no values file $values" >&2; exit 2; }

step="write the kubeconfig"
if [ -n "${KUBECONFIG_DATA:-}" ]; then
  kubeconfig_file=$(mktemp "${RUNNER_TEMP:-/tmp}/kubeconfig.XXXXXX")
  export KUBECONFIG=$kubeconfig_file
  printf '%s\n' "$KUBECONFIG_DATA" >"$kubeconfig_file"
  chmod 600 "$kubeconfig_file"
fi

# The chart's helm mode needs Helm >= 3.19 (a failed hook's log in the output, the hook
# Secret with the owner DSN deleted on failure); Helm 4 renamed --atomic.
step="check the Helm version"
helm_version=$(helm version --template '{{.Version}}')
if ! [[ $helm_version =~ ^v?([0-9]+)\.([0-9]+)(\.([0-9]+))? ]]; then
  echo "cannot read the Helm version from '$helm_version'" >&2
  exit 2
fi
helm_major=${BASH_REMATCH[1]} helm_minor=${BASH_REMATCH[2]} helm_patch=${BASH_REMATCH[4]:-0}
IFS=. read -r min_major min_minor min_patch <<<"$MIN_HELM"
if (( helm_major * 1000000 + helm_minor * 1000 + helm_patch
      < min_major * 1000000 + min_minor * 1000 + min_patch )); then
  echo "Helm $helm_version is too old: the chart needs $MIN_HELM or later (set HELM_VERSION)" >&2
  exit 2
fi
if [ "$helm_major" -ge 4 ]; then
  rollback_flag=--rollback-on-failure
else
  rollback_flag=--atomic
fi

# HELM_TIMEOUT as seconds: 5m, 300s, 1h, 4m30s (what Helm accepts that a deploy would use).
step="read HELM_TIMEOUT"
timeout=${HELM_TIMEOUT:-5m}
if ! [[ $timeout =~ ^(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?$ ]]; then
  echo "HELM_TIMEOUT=$timeout: use hours, minutes and seconds, e.g. 5m, 300s or 4m30s" >&2
  exit 2
fi
timeout_seconds=$(( 10#${BASH_REMATCH[2]:-0} * 3600 + 10#${BASH_REMATCH[4]:-0} * 60
                    + 10#${BASH_REMATCH[6]:-0} ))

chart_args=(--namespace "$namespace" -f "$values"
  --set "migrations.helmTimeoutSeconds=$timeout_seconds")
[ -z "${MIGRATOR_IMAGE:-}" ] || chart_args+=(--set-string "migrations.image.repository=$MIGRATOR_IMAGE")
[ -z "${MIGRATOR_TAG:-}" ] || chart_args+=(--set-string "migrations.image.tag=$MIGRATOR_TAG")
[ -z "${MIGRATOR_DIGEST:-}" ] || chart_args+=(--set-string "migrations.image.digest=$MIGRATOR_DIGEST")
[ -z "${API_IMAGE:-}" ] || chart_args+=(--set-string "api.image.repository=$API_IMAGE")
[ -z "${API_TAG:-}" ] || chart_args+=(--set-string "api.image.tag=$API_TAG")

# ---- every image the chart renders, pinned by digest ----
step="render the chart"
rendered=$(helm template "$release" ./chart "${chart_args[@]}")
# "<template> <container> <image>" for every container of every rendered object.
images=$(awk '
  /^# Source: / { source = $3 }
  $1 == "-" && $2 == "name:" { name = $3 }
  $1 == "image:" { gsub(/"/, "", $2); print source, name, $2 }' <<<"$rendered")

step="log in to the registry"
if [ -n "${REGISTRY_TOKEN:-}" ]; then
  registry_login=${REGISTRY:-ghcr.io}
  printf '%s' "$REGISTRY_TOKEN" | docker login "$registry_login" \
    -u "${REGISTRY_USER:-${GITHUB_ACTOR:-deploy}}" --password-stdin >/dev/null
fi

step="resolve the image digests"
digest_of() {
  local manifest digest
  manifest=$(docker buildx imagetools inspect "$1" --format '{{json .Manifest}}') || return 1
  digest=$(jq -r '.digest // empty' <<<"$manifest")
  if ! [[ $digest =~ ^sha256:[0-9a-f]{64}$ ]]; then
    echo "the registry returned no digest for $1" >&2
    return 1
  fi
  printf '%s\n' "$digest"
}
declare -A pinned=()
while read -r source container image; do
  [ -n "$image" ] || continue
  case "$source:$container" in
    */templates/api/deployment.yaml:api) key=api.image ;;
    */templates/api/deployment.yaml:wait-for-migrations | */templates/migrations/job.yaml:migrate)
      key=migrations.image ;;
    */templates/monitoring/statsd-exporter-deployment.yaml:statsd-exporter)
      key=monitoring.statsdExporter.image ;;
    *) echo "$source ($container) renders $image, which this script cannot pin" >&2; exit 2 ;;
  esac
  if [[ $image == *@sha256:* ]]; then
    digest=${image##*@}
  else
    echo "resolving $image"
    digest=$(digest_of "$image") || { echo "cannot resolve $image to a digest" >&2; exit 1; }
  fi
  if [ -n "${pinned[$key]:-}" ] && [ "${pinned[$key]}" != "$digest" ]; then
    echo "$key renders two different images" >&2
    exit 2
  fi
  pinned[$key]=$digest
done <<<"$images"
for key in "${!pinned[@]}"; do
  chart_args+=(--set-string "$key.digest=${pinned[$key]}")
done

step="helm upgrade"
args=(upgrade --install "$release" ./chart "${chart_args[@]}"
  "$rollback_flag" --wait --timeout "$timeout")
echo "helm ${args[*]}"
started=$(date +%s)
if helm "${args[@]}"; then
  {
    echo "### ✅ $ENVIRONMENT deployed"
    echo "Release \`$release\` in \`$namespace\` (helm $helm_version, $rollback_flag), $(( $(date +%s) - started ))s."
    echo
    echo "| image | digest |"
    echo "|---|---|"
    for key in $(printf '%s\n' "${!pinned[@]}" | sort); do
      echo "| \`$key\` | \`${pinned[$key]}\` |"
    done
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
exit 1
