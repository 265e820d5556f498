{{/* The name of the operator's objects: `stash` for a release named stash. */}}
{{- define "stash.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "stash.selectorLabels" -}}
app.kubernetes.io/name: stash
app.kubernetes.io/component: operator
{{- end -}}

{{- define "stash.labels" -}}
{{ include "stash.selectorLabels" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* The executor ClusterRoles: the operator server-side applies the same objects, so no chart labels. */}}
{{- define "stash.executorLabels" -}}
app.kubernetes.io/managed-by: stash.appscode.com
{{- end -}}

{{- define "stash.imageTag" -}}
{{- default .Chart.AppVersion .Values.image.tag -}}
{{- end -}}

{{- define "stash.embedded" -}}
{{- if .Values.embedded.enabled -}}
{{- if not (and .Values.embedded.securePort .Values.embedded.metricsPort) -}}
{{- fail "embedded.enabled needs embedded.securePort and embedded.metricsPort (free loopback ports)" -}}
{{- end -}}
true
{{- end -}}
{{- end -}}

{{- define "stash.securePort" -}}
{{- if include "stash.embedded" . }}{{ .Values.embedded.securePort }}{{ else }}{{ .Values.operator.securePort }}{{ end -}}
{{- end -}}

{{- define "stash.metricsAddress" -}}
{{- if include "stash.embedded" . -}}
127.0.0.1:{{ .Values.embedded.metricsPort }}
{{- else -}}
0.0.0.0:{{ .Values.operator.metricsPort }}
{{- end -}}
{{- end -}}

{{- define "stash.pushgatewaySidecar" -}}
{{- if and .Values.pushgateway.enabled (not (include "stash.embedded" .)) }}true{{ end -}}
{{- end -}}

{{/* The executors run in other pods and push to the URL the operator hands them: the Service, never loopback. */}}
{{- define "stash.pushgatewayURL" -}}
{{- if .Values.pushgateway.url -}}
{{- .Values.pushgateway.url -}}
{{- else if not (include "stash.pushgatewaySidecar" .) -}}
{{- fail "no Pushgateway: set pushgateway.url to your own, or pushgateway.enabled=true for the bundled sidecar (not in embedded mode)" -}}
{{- else -}}
{{- printf "http://%s.%s.svc:56789" (include "stash.fullname" .) .Release.Namespace -}}
{{- end -}}
{{- end -}}

{{/* The port the webhook configurations name: the Service's 443, or with ExternalName the operator's own. */}}
{{- define "stash.webhookPort" -}}
{{- if include "stash.embedded" . }}{{ .Values.embedded.securePort }}{{ else }}443{{ end -}}
{{- end -}}

{{/* Whether the operator serves HTTPS to the API server: admission webhooks or the Snapshot aggregated API. */}}
{{- define "stash.servesTLS" -}}
{{- if or .Values.webhook.mutating .Values.webhook.validating .Values.snapshotAPI.enabled }}true{{ end -}}
{{- end -}}

{{/* The PodDisruptionBudget: as set, or (null) only when more than one replica runs. */}}
{{- define "stash.podDisruptionBudget" -}}
{{- $enabled := .Values.podDisruptionBudget.enabled -}}
{{- if kindIs "invalid" $enabled -}}
{{- if gt (int .Values.replicaCount) 1 }}true{{ end -}}
{{- else if $enabled -}}
true
{{- end -}}
{{- end -}}

{{/* One CA and serving certificate per render, shared by the Secret and the caBundles. */}}
{{- define "stash.webhookCert" -}}
{{- if not .Values._webhookCert -}}
{{- $fullname := include "stash.fullname" . -}}
{{- $dns := printf "%s.%s.svc" $fullname .Release.Namespace -}}
{{- $days := int .Values.webhook.certValidityDays -}}
{{- $ca := genCA "stash-webhook-ca" $days -}}
{{- $cert := genSignedCert $dns nil (list $fullname (printf "%s.%s" $fullname .Release.Namespace) $dns (printf "%s.cluster.local" $dns)) $days $ca -}}
{{- $_ := set .Values "_webhookCert" (dict "ca" $ca.Cert "cert" $cert.Cert "key" $cert.Key) -}}
{{- end -}}
{{- end -}}
