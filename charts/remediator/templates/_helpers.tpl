{{/* The chart's name, and the release-scoped name every object is called. */}}
{{- define "remediator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "remediator.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "remediator.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "remediator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* The operator's Pods; the Services and NetworkPolicies select them by these. */}}
{{- define "remediator.operatorSelector" -}}
app.kubernetes.io/name: {{ include "remediator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{- define "remediator.operatorServiceAccount" -}}
{{ include "remediator.fullname" . }}-operator
{{- end }}

{{- define "remediator.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end }}

{{- define "remediator.targetImage" -}}
{{ .Values.targetImage.repository }}:{{ .Values.targetImage.tag | default .Chart.AppVersion }}
{{- end }}

{{/* Where agents reach the Action API: the leader, behind the operator's Service. */}}
{{- define "remediator.actionApiUrl" -}}
http://{{ include "remediator.fullname" . }}.{{ .Release.Namespace }}.svc:{{ .Values.service.actionApiPort }}
{{- end }}

{{/* The namespaces Incidents live in, as a list. */}}
{{- define "remediator.incidentNamespaces" -}}
{{- if .Values.watchNamespace }}
{{- list .Values.watchNamespace | toJson }}
{{- else }}
{{- .Values.incidentNamespaces | uniq | toJson }}
{{- end }}
{{- end }}

{{- define "remediator.seccompArg" -}}
{{- if eq .Values.sandbox.seccompProfile.type "Localhost" -}}
Localhost:{{ .Values.sandbox.seccompProfile.localhostProfile }}
{{- else -}}
RuntimeDefault
{{- end }}
{{- end }}

{{/*
The OpenTelemetry environment of remediator's own processes; the operator
hands it on to agent Jobs and scenario Pods' sandboxes. Only with
tracing.otlpEndpoint set.
*/}}
{{- define "remediator.tracingEnv" -}}
- name: OTEL_EXPORTER_OTLP_ENDPOINT
  value: {{ .Values.tracing.otlpEndpoint | quote }}
{{- with .Values.tracing.resourceAttributes }}
- name: OTEL_RESOURCE_ATTRIBUTES
  value: {{ . | quote }}
{{- end }}
{{- end }}
