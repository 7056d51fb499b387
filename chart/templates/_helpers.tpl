{{/*
Named templates: names, labels, images, security contexts, hook annotations, environment.
Every object template includes these so a name or a label is defined in one place.
*/}}

{{/* Base of every object name: fullnameOverride, else the release name. */}}
{{- define "yomu.fullname" -}}
{{- default .Release.Name .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
<fullname>-<suffix>, at most 63 characters (a DNS label: Service and Job names, and the
job-name label Kubernetes puts on the Job's pods, allow no more): the base is shortened so
the suffix always fits. Call with (dict "ctx" . "suffix" "api").
*/}}
{{- define "yomu.componentName" -}}
{{- $room := sub 62 (len .suffix) | int -}}
{{- printf "%s-%s" (include "yomu.fullname" .ctx | trunc $room | trimSuffix "-") .suffix -}}
{{- end -}}

{{- define "yomu.api.name" -}}{{ include "yomu.componentName" (dict "ctx" . "suffix" "api") }}{{- end -}}
{{- define "yomu.config.name" -}}{{ include "yomu.componentName" (dict "ctx" . "suffix" "config") }}{{- end -}}
{{- define "yomu.migrations.name" -}}{{ include "yomu.componentName" (dict "ctx" . "suffix" "migrations") }}{{- end -}}
{{- define "yomu.statsdExporter.name" -}}{{ include "yomu.componentName" (dict "ctx" . "suffix" "statsd-exporter") }}{{- end -}}

{{/* The Secret holding the API's secret env: existingSecret, else the chart's own. */}}
{{- define "yomu.secret.name" -}}
{{- .Values.secrets.existingSecret | default (include "yomu.componentName" (dict "ctx" . "suffix" "env")) -}}
{{- end -}}

{{- define "yomu.api.serviceAccountName" -}}
{{- if .Values.api.serviceAccount.create -}}
{{- .Values.api.serviceAccount.name | default (include "yomu.api.name" .) -}}
{{- else -}}
{{- .Values.api.serviceAccount.name | default "default" -}}
{{- end -}}
{{- end -}}

{{/* Labels every object carries. Call with (dict "ctx" . "component" "api"). */}}
{{- define "yomu.labels" -}}
{{ include "yomu.stableLabels" . }}
helm.sh/chart: {{ printf "%s-%s" .ctx.Chart.Name .ctx.Chart.Version | replace "+" "_" }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
{{- end -}}

{{/*
The labels that do not change with the chart or app version: for pod templates that must not
restart on a chart bump (the statsd_exporter keeps the last run's metrics in memory).
*/}}
{{- define "yomu.stableLabels" -}}
{{ include "yomu.selectorLabels" . }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
app.kubernetes.io/part-of: yomu
yomu.io/environment: {{ .ctx.Values.environment | quote }}
{{- with .ctx.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Labels a selector matches (never change: selectors are immutable). */}}
{{- define "yomu.selectorLabels" -}}
app.kubernetes.io/name: {{ .ctx.Chart.Name }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* repository:tag[@digest]. Call with (dict "image" .Values.x.image "default" "tag"). */}}
{{- define "yomu.image" -}}
{{- $tag := .image.tag | default .default | toString -}}
{{- if not $tag -}}{{- fail (printf "image %s needs a tag" .image.repository) -}}{{- end -}}
{{- printf "%s:%s" .image.repository $tag -}}
{{- with .image.digest }}@{{ . }}{{ end -}}
{{- end -}}

{{- define "yomu.migrations.image" -}}
{{- include "yomu.image" (dict "image" .Values.migrations.image "default" "") -}}
{{- end -}}

{{/*
Deep merge of two dicts, returned as YAML: the override's keys win at every level, false and
0 included (sprig's mergeOverwrite skips those), lists are replaced. So a component that sets
only `readOnlyRootFilesystem: false` keeps runAsNonRoot, capabilities.drop [ALL] and the
seccomp profile of the global default. Call with (dict "base" B "override" O).
*/}}
{{- define "yomu.merge" -}}
{{- $out := deepCopy (.base | default dict) -}}
{{- range $key, $value := (.override | default dict) -}}
{{- $current := get $out $key -}}
{{- if and (kindIs "map" $value) (kindIs "map" $current) -}}
{{- $_ := set $out $key (include "yomu.merge" (dict "base" $current "override" $value) | fromYaml) -}}
{{- else -}}
{{- $_ := set $out $key $value -}}
{{- end -}}
{{- end -}}
{{- toYaml $out -}}
{{- end -}}

{{/* A component's security contexts: the global hardened default with the component's keys merged in. */}}
{{- define "yomu.podSecurityContext" -}}
{{- include "yomu.merge" (dict "base" .ctx.Values.podSecurityContext "override" .component.podSecurityContext) -}}
{{- end -}}
{{- define "yomu.securityContext" -}}
{{- include "yomu.merge" (dict "base" .ctx.Values.securityContext "override" .component.securityContext) -}}
{{- end -}}

{{/* nodeSelector, tolerations, affinity, imagePullSecrets of a pod spec. */}}
{{- define "yomu.scheduling" -}}
{{- with (.component.nodeSelector | default .ctx.Values.nodeSelector) }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with (.component.tolerations | default .ctx.Values.tolerations) }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with (.component.affinity | default .ctx.Values.affinity) }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .ctx.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/*
Hook annotations of every migration object: Helm's pre-install/pre-upgrade hook, or Argo CD's
PreSync hook. Objects earlier in the chain get a lower weight. Call with (dict "ctx" . "weight" N).
A failed Job stays (no hook-failed policy) so its pod, logs and events can be inspected; the
next run deletes it first (before-hook-creation).
*/}}
{{- define "yomu.migrations.hookAnnotations" -}}
{{- if eq .ctx.Values.migrations.mode "argocd" -}}
argocd.argoproj.io/hook: PreSync
argocd.argoproj.io/hook-delete-policy: BeforeHookCreation,HookSucceeded
argocd.argoproj.io/sync-wave: {{ .weight | quote }}
{{- else -}}
helm.sh/hook: pre-install,pre-upgrade
helm.sh/hook-weight: {{ .weight | quote }}
helm.sh/hook-delete-policy: before-hook-creation,hook-succeeded
{{- end -}}
{{- end -}}

{{/* Does the Job need its own hook-scoped Secret (anything inline to carry)? */}}
{{- define "yomu.migrations.needsSecret" -}}
{{- if or (not .Values.secrets.existingSecret) .Values.migrations.ownerDatabaseUrl -}}true{{- end -}}
{{- end -}}

{{/*
The DSN the Job migrates with, as one EnvVar: the owner role's MIGRATION_DATABASE_URL when
configured (inline or from a Secret), else the app's DATABASE_URL. The Job reads only Secrets
that exist before the release: its own hook-scoped Secret or an existing one.
*/}}
{{- define "yomu.migrations.databaseEnv" -}}
{{- $m := .Values.migrations -}}
{{- if $m.ownerDatabaseUrl -}}
- name: MIGRATION_DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "yomu.migrations.name" . }}
      key: MIGRATION_DATABASE_URL
{{- else if $m.ownerSecret.key -}}
{{- $name := $m.ownerSecret.name | default .Values.secrets.existingSecret -}}
{{- if not $name -}}
{{- fail "migrations.ownerSecret.key is set but neither migrations.ownerSecret.name nor secrets.existingSecret names the Secret holding it" -}}
{{- end -}}
- name: MIGRATION_DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ $name }}
      key: {{ $m.ownerSecret.key }}
{{- else -}}
- name: DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ .Values.secrets.existingSecret | default (include "yomu.migrations.name" .) }}
      key: DATABASE_URL
{{- end -}}
{{- end -}}

{{/* STATSD_HOST of the Job: metrics.statsdHost, else the in-chart exporter, else none. */}}
{{- define "yomu.migrations.statsdEnv" -}}
{{- if .Values.metrics.enabled -}}
{{- if .Values.metrics.statsdHost -}}
- name: STATSD_HOST
  value: {{ .Values.metrics.statsdHost | quote }}
- name: STATSD_PORT
  value: {{ .Values.metrics.statsdPort | int64 | quote }}
- name: STATSD_PREFIX
  value: {{ .Values.metrics.prefix | quote }}
{{- else if include "yomu.statsdExporter.enabled" . -}}
- name: STATSD_HOST
  value: {{ printf "%s.%s.svc" (include "yomu.statsdExporter.name" .) .Release.Namespace | quote }}
- name: STATSD_PORT
  value: "9125"
- name: STATSD_PREFIX
  value: {{ .Values.metrics.prefix | quote }}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Is the in-chart statsd_exporter rendered? */}}
{{- define "yomu.statsdExporter.enabled" -}}
{{- if and .Values.monitoring.enabled .Values.monitoring.statsdExporter.enabled -}}true{{- end -}}
{{- end -}}

{{/* The statsd_exporter mapping: chart/files/statsd-mapping.yaml rendered for this release. */}}
{{- define "yomu.statsdExporter.mapping" -}}
{{- tpl (.Files.Get "files/statsd-mapping.yaml") . -}}
{{- end -}}

{{/*
Capability checks for the Prometheus Operator's kinds: a cluster without its CRDs would refuse
the whole release. `helm install/upgrade` asks the cluster; `helm template` and Argo CD need
`--api-versions monitoring.coreos.com/v1` (Argo CD passes the cluster's). NOTES say when one
was left out.
*/}}
{{- define "yomu.capabilities.prometheusRule" -}}
{{- if or (.Capabilities.APIVersions.Has "monitoring.coreos.com/v1/PrometheusRule") (.Capabilities.APIVersions.Has "monitoring.coreos.com/v1") -}}true{{- end -}}
{{- end -}}
{{- define "yomu.capabilities.serviceMonitor" -}}
{{- if or (.Capabilities.APIVersions.Has "monitoring.coreos.com/v1/ServiceMonitor") (.Capabilities.APIVersions.Has "monitoring.coreos.com/v1") -}}true{{- end -}}
{{- end -}}

{{/*
The alert rules of chart/files/prometheus-rules.yaml for this release: its ${...}
placeholders replaced by plain string replacement, never `tpl`, so the Prometheus templates
({{ $labels.x }}) in it reach Prometheus untouched.
*/}}
{{- define "yomu.rules" -}}
{{- $m := .Values.migrations -}}
{{- $vars := dict
  "namespace" .Release.Namespace
  "job_name" (include "yomu.migrations.name" .)
  "environment" .Values.environment
  "release" .Release.Name
  "stuck_for" (printf "%ds" (add $m.activeDeadlineSeconds $m.terminationGracePeriodSeconds 60 | int64))
  "deadline" (printf "%d" ($m.activeDeadlineSeconds | int64))
  "grace" (printf "%d" ($m.terminationGracePeriodSeconds | int64))
-}}
{{- $rules := .Files.Get "files/prometheus-rules.yaml" -}}
{{- range $name, $value := $vars -}}
{{- $rules = replace (printf "${%s}" $name) $value $rules -}}
{{- end -}}
{{- with regexFind `\$\{[A-Za-z_]+\}` $rules -}}
{{- fail (printf "chart/files/prometheus-rules.yaml uses the unknown placeholder %s" .) -}}
{{- end -}}
{{- $rules -}}
{{- end -}}

{{/*
Mesh settings of a pod: the outbound ports (PostgreSQL's) the Istio and Linkerd proxies must
not capture. An init container runs before a classic sidecar proxy is up, and its
connections would otherwise go nowhere.
*/}}
{{- define "yomu.mesh.annotations" -}}
{{- with .Values.mesh.excludeOutboundPorts }}
traffic.sidecar.istio.io/excludeOutboundPorts: {{ join "," . | quote }}
config.linkerd.io/skip-outbound-ports: {{ join "," . | quote }}
{{- end }}
{{- end -}}

{{/*
The migration Job's pod opts out of sidecar injection unless mesh.injectMigrationJob: a
classic sidecar never exits, so the Job would never complete and the deadline would fail a
migration that had committed.
*/}}
{{- define "yomu.mesh.jobLabels" -}}
{{- if not .Values.mesh.injectMigrationJob }}
sidecar.istio.io/inject: "false"
{{- end }}
{{- end -}}
{{- define "yomu.mesh.jobAnnotations" -}}
{{- if not .Values.mesh.injectMigrationJob }}
sidecar.istio.io/inject: "false"
linkerd.io/inject: disabled
{{- end }}
{{- include "yomu.mesh.annotations" . }}
{{- end -}}

{{/*
The oldest Helm the helm mode supports: 3.19 prints a failed hook's log
(helm.sh/hook-output-log-policy) and deletes the chain's earlier hooks (the Secret with the
owner DSN) when the Job fails. Call with the version string, e.g. "v3.19.0".
*/}}
{{- define "yomu.helm.minVersion" -}}3.19.0{{- end -}}
{{- define "yomu.helm.supported" -}}
{{- if semverCompare (printf ">=%s-0" (include "yomu.helm.minVersion" dict)) . -}}true{{- end -}}
{{- end -}}

{{/* Render-time checks the schema cannot express (relations between values). */}}
{{- define "yomu.validate" -}}
{{- $m := .Values.migrations -}}
{{- if and (eq $m.mode "helm") (not (include "yomu.helm.supported" .Capabilities.HelmVersion.Version)) -}}
{{- fail (printf "migrations.mode helm needs Helm %s or later, this is %s: older Helm neither prints the failed hook's log nor deletes the hook Secret holding the owner DSN when the migration fails. Upgrade Helm (or render for Argo CD with migrations.mode argocd)" (include "yomu.helm.minVersion" dict) .Capabilities.HelmVersion.Version) -}}
{{- end -}}
{{- if and (ne $m.mode "none") (gt (add $m.activeDeadlineSeconds $m.terminationGracePeriodSeconds) (int $m.helmTimeoutSeconds)) -}}
{{- fail (printf "migrations.activeDeadlineSeconds (%v) + migrations.terminationGracePeriodSeconds (%v) must not exceed migrations.helmTimeoutSeconds (%v): the Job must fail, and print its logs, before Helm gives up waiting" $m.activeDeadlineSeconds $m.terminationGracePeriodSeconds $m.helmTimeoutSeconds) -}}
{{- end -}}
{{- if gt (int $m.settings.lockTimeoutMs) (int $m.settings.lockTimeoutCapMs) -}}
{{- fail (printf "migrations.settings.lockTimeoutMs (%v) must not exceed migrations.settings.lockTimeoutCapMs (%v)" $m.settings.lockTimeoutMs $m.settings.lockTimeoutCapMs) -}}
{{- end -}}
{{- if not .Values.secrets.existingSecret -}}
{{- range $key := list "databaseUrl" "valkeyUrl" "googleClientSecret" "sessionSecret" -}}
{{- if not (index $.Values.secrets $key) -}}
{{- fail (printf "secrets.%s is required when secrets.existingSecret is empty (or set secrets.existingSecret)" $key) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- if and .Values.api.podDisruptionBudget.enabled (ge (int .Values.api.podDisruptionBudget.minAvailable) (int .Values.api.replicas)) -}}
{{- fail (printf "api.podDisruptionBudget.minAvailable (%v) must be below api.replicas (%v), or no node could ever be drained" .Values.api.podDisruptionBudget.minAvailable .Values.api.replicas) -}}
{{- end -}}
{{- end -}}
