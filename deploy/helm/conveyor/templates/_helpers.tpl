{{/* The release's name for every object: <release>-conveyor, or the release alone when it says conveyor. */}}
{{- define "conveyor.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "conveyor.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* Selector labels of one component: (dict "root" $ "component" "worker-default") */}}
{{- define "conveyor.selector" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "conveyor.image" -}}
{{ printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end -}}

{{- define "conveyor.serviceAccount" -}}
{{- if .Values.serviceAccount.create -}}{{ include "conveyor.fullname" . }}{{- else -}}{{ default "default" .Values.serviceAccount.name }}{{- end -}}
{{- end -}}

{{/* The CONVEYOR_ settings every process shares, as NAME: "value" lines: the ConfigMap's data, and the
     environment of the hook Jobs (which run before the ConfigMap exists). Secrets are not in it. */}}
{{- define "conveyor.config" -}}
CONVEYOR_POSTGRES__HOST: {{ .Values.postgres.host | quote }}
CONVEYOR_POSTGRES__PORT: {{ .Values.postgres.port | quote }}
CONVEYOR_POSTGRES__USER: {{ .Values.postgres.user | quote }}
CONVEYOR_POSTGRES__DATABASE: {{ .Values.postgres.database | quote }}
CONVEYOR_POSTGRES__POOL_MAX_SIZE: {{ .Values.postgres.poolMaxSize | quote }}
{{- if not .Values.redis.existingSecret }}
CONVEYOR_REDIS__URL: {{ .Values.redis.url | quote }}
{{- end }}
CONVEYOR_KAFKA__BOOTSTRAP_SERVERS: {{ .Values.kafka.bootstrapServers | quote }}
CONVEYOR_KAFKA__EVENTS_TOPIC: {{ .Values.kafka.eventsTopic | quote }}
CONVEYOR_KAFKA__DEAD_LETTER_TOPIC: {{ .Values.kafka.deadLetterTopic | quote }}
CONVEYOR_KAFKA__EVENTS_PARTITIONS: {{ .Values.kafka.partitions | quote }}
CONVEYOR_KAFKA__REPLICATION_FACTOR: {{ .Values.kafka.replicationFactor | quote }}
CONVEYOR_S3__ENDPOINT: {{ .Values.s3.endpoint | quote }}
CONVEYOR_S3__REGION: {{ .Values.s3.region | quote }}
CONVEYOR_S3__BUCKETS: {{ .Values.s3.buckets | toJson | quote }}
CONVEYOR_INGEST__GROUP_ID: {{ .Values.ingest.groupId | quote }}
CONVEYOR_WORKER__SHUTDOWN_GRACE_SECONDS: {{ .Values.workers.shutdownGraceSeconds | quote }}
CONVEYOR_WORKER__HANDLER_MODULES: {{ .Values.workers.handlerModules | toJson | quote }}
CONVEYOR_API__HOST: "0.0.0.0"
CONVEYOR_API__PORT: {{ .Values.api.port | quote }}
CONVEYOR_METRICS__HOST: "0.0.0.0"
CONVEYOR_METRICS__PORT: {{ .Values.metrics.port | quote }}
CONVEYOR_LOG__FORMAT: "json"
{{- if .Values.pipelines }}
CONVEYOR_INGEST__PIPELINES_FILE: "/etc/conveyor/pipelines.toml"
{{- end }}
{{- range $name, $value := .Values.extraEnv }}
{{- if not (hasPrefix "CONVEYOR_" $name) }}
{{- fail (printf "extraEnv.%s: conveyor reads only CONVEYOR_ settings" $name) }}
{{- end }}
{{ $name }}: {{ $value | toString | quote }}
{{- end }}
{{- end -}}

{{/* The secrets, each read from an existing Secret. */}}
{{- define "conveyor.secretEnv" -}}
- name: CONVEYOR_POSTGRES__PASSWORD
  valueFrom: {secretKeyRef: {name: {{ .Values.postgres.existingSecret }}, key: {{ .Values.postgres.passwordKey }}}}
- name: CONVEYOR_S3__ACCESS_KEY
  valueFrom: {secretKeyRef: {name: {{ .Values.s3.existingSecret }}, key: {{ .Values.s3.accessKeyKey }}}}
- name: CONVEYOR_S3__SECRET_KEY
  valueFrom: {secretKeyRef: {name: {{ .Values.s3.existingSecret }}, key: {{ .Values.s3.secretKeyKey }}}}
- name: CONVEYOR_API__TOKENS
  valueFrom: {secretKeyRef: {name: {{ .Values.api.existingSecret }}, key: {{ .Values.api.tokensKey }}}}
{{- if .Values.api.readOnlyTokensKey }}
- name: CONVEYOR_API__READ_ONLY_TOKENS
  valueFrom: {secretKeyRef: {name: {{ .Values.api.existingSecret }}, key: {{ .Values.api.readOnlyTokensKey }}}}
{{- end }}
{{- if .Values.redis.existingSecret }}
- name: CONVEYOR_REDIS__URL
  valueFrom: {secretKeyRef: {name: {{ .Values.redis.existingSecret }}, key: {{ .Values.redis.urlKey }}}}
{{- end }}
{{- end -}}

{{/* A writable /tmp (the root filesystem is read-only: handlers spool there), and the pipelines file
     where CONVEYOR_INGEST__PIPELINES_FILE points. */}}
{{- define "conveyor.mounts" -}}
volumeMounts:
  - {name: tmp, mountPath: /tmp}
{{- if .Values.pipelines }}
  - {name: pipelines, mountPath: /etc/conveyor, readOnly: true}
{{- end }}
{{- end -}}
{{- define "conveyor.volumes" -}}
volumes:
  - name: tmp
    emptyDir: {}
{{- if .Values.pipelines }}
  - name: pipelines
    configMap: {name: {{ include "conveyor.fullname" . }}-pipelines}
{{- end }}
{{- end -}}

{{/* Liveness and readiness of an ingest or worker process, from its metrics server. */}}
{{- define "conveyor.processProbes" -}}
ports:
  - {name: metrics, containerPort: {{ .Values.metrics.port }}}
livenessProbe:
  httpGet: {path: /health/live, port: metrics}
  periodSeconds: 10
  failureThreshold: 3
readinessProbe:
  httpGet: {path: /health/ready, port: metrics}
  periodSeconds: 5
  failureThreshold: 2
{{- end -}}

{{/* Pod-level settings shared by every Deployment and Job. */}}
{{- define "conveyor.podCommon" -}}
serviceAccountName: {{ include "conveyor.serviceAccount" . }}
securityContext: {runAsNonRoot: true, runAsUser: 10001, runAsGroup: 10001, fsGroup: 10001}
{{- with .Values.imagePullSecrets }}
imagePullSecrets: {{ toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.nodeSelector }}
nodeSelector: {{ toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations: {{ toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.affinity }}
affinity: {{ toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{- define "conveyor.containerSecurity" -}}
securityContext: {allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: {drop: [ALL]}}
{{- end -}}

{{/* The ready-backlog query of one worker group, for KEDA: the statement `job_ready_backlog` of
     db/queries/autoscaling.sql (files/ links to it), its comments dropped and the group's job types
     written as an array literal in place of the parameter KEDA cannot bind. (dict "root" $ "group" .) */}}
{{- define "conveyor.readyBacklogQuery" -}}
{{- $file := .root.Files.Get "files/autoscaling.sql" -}}
{{- $statement := regexFind `(?s)-- name: job_ready_backlog\n.*?;[ \t]*(\n|\z)` $file -}}
{{- if not $statement -}}{{- fail "files/autoscaling.sql has no statement job_ready_backlog" -}}{{- end -}}
{{- range .group.jobTypes -}}
{{- if not (regexMatch "^[A-Za-z0-9_.-]+$" .) -}}
{{- fail (printf "workers.groups[].jobTypes: %q is not a job type name (letters, digits, '_', '.', '-')" .) -}}
{{- end -}}
{{- end -}}
{{- $types := printf "'{%s}'::text[]" (join "," .group.jobTypes) -}}
{{- regexReplaceAll `(?m)^--.*\n` $statement "" | trim | replace "$1::text[]" $types -}}
{{- end -}}
