{{/*
Named templates: names, labels, images, security contexts, hook annotations, environment.
Every object template includes these so a name or a label is defined in one place.
*/}}

{{/* Base of every object name: fullnameOverride, else the release name. */}}
{{- define "yomu.fullname" -}}
{{- default .Release.Name .Values.fullnameOverride | trunc 50 | trimSuffix "-" -}}
{{- end -}}

{{- define "yomu.api.name" -}}{{ include "yomu.fullname" . }}-api{{- end -}}
{{- define "yomu.config.name" -}}{{ include "yomu.fullname" . }}-config{{- end -}}
{{- define "yomu.migrations.name" -}}{{ include "yomu.fullname" . }}-migrations{{- end -}}
{{- define "yomu.statsdExporter.name" -}}{{ include "yomu.fullname" . }}-statsd-exporter{{- end -}}

{{/* The Secret holding the API's secret env: existingSecret, else the chart's own. */}}
{{- define "yomu.secret.name" -}}
{{- .Values.secrets.existingSecret | default (printf "%s-env" (include "yomu.fullname" .)) -}}
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
{{ include "yomu.selectorLabels" . }}
helm.sh/chart: {{ printf "%s-%s" .ctx.Chart.Name .ctx.Chart.Version | replace "+" "_" }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
app.kubernetes.io/part-of: yomu
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
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

{{/* Per-component override of a global setting, Airflow style: the component's, else global. */}}
{{- define "yomu.podSecurityContext" -}}
{{- toYaml (.component.podSecurityContext | default .ctx.Values.podSecurityContext) -}}
{{- end -}}
{{- define "yomu.securityContext" -}}
{{- toYaml (.component.securityContext | default .ctx.Values.securityContext) -}}
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
{{- else if .Values.monitoring.enabled -}}
- name: STATSD_HOST
  value: {{ printf "%s.%s.svc" (include "yomu.statsdExporter.name" .) .Release.Namespace | quote }}
- name: STATSD_PORT
  value: "9125"
- name: STATSD_PREFIX
  value: {{ .Values.metrics.prefix | quote }}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Render-time checks the schema cannot express (relations between values). */}}
{{- define "yomu.validate" -}}
{{- $m := .Values.migrations -}}
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
