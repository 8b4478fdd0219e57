{{/* Resource names: "<release>-telegate", cut to 63 characters (DNS label). */}}
{{- define "telegate.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "telegate.fullname" -}}
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

{{/* Services get suffixes: keep room for "-headless" within a DNS label. */}}
{{- define "telegate.serviceName" -}}
{{- include "telegate.fullname" . | trunc 54 | trimSuffix "-" }}
{{- end }}

{{- define "telegate.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "telegate.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Selector labels never change after install (a StatefulSet's selector is immutable). */}}
{{- define "telegate.selectorLabels" -}}
app.kubernetes.io/name: {{ include "telegate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "telegate.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "telegate.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The listeners as telegate's config enables them: the Services, container ports and probes
follow config.* so that the port lives in one place. Defaults are telegate's own.
*/}}
{{- define "telegate.httpPort" -}}
{{- (.Values.config.http | default dict).port | default 8080 }}
{{- end }}
{{- define "telegate.mqttEnabled" -}}
{{- if (.Values.config.mqtt | default dict).enabled }}true{{ end }}
{{- end }}
{{- define "telegate.mqttPort" -}}
{{- (.Values.config.mqtt | default dict).port | default 1883 }}
{{- end }}
{{- define "telegate.coapEnabled" -}}
{{- $coap := .Values.config.coap | default dict }}
{{- if and $coap.enabled (ne (toString $coap.port) "0") }}true{{ end }}
{{- end }}
{{- define "telegate.coapPort" -}}
{{- (.Values.config.coap | default dict).port | default 5683 }}
{{- end }}
{{- define "telegate.coapDtlsEnabled" -}}
{{- $coap := .Values.config.coap | default dict }}
{{- if and $coap.enabled $coap.dtls }}true{{ end }}
{{- end }}
{{- define "telegate.coapDtlsPort" -}}
{{- (.Values.config.coap | default dict).dtls_port | default 5684 }}
{{- end }}

{{/* The LoadBalancer-only fields of a client Service, from service or coapService values. */}}
{{- define "telegate.loadBalancerFields" -}}
{{- if eq .type "LoadBalancer" }}
{{- with .loadBalancerSourceRanges }}
loadBalancerSourceRanges:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}
{{- if and .externalTrafficPolicy (has .type (list "LoadBalancer" "NodePort")) }}
externalTrafficPolicy: {{ .externalTrafficPolicy }}
{{- end }}
{{- end }}
