{{/*
Helpers of the ztunnel chart. They render nothing by themselves.
*/}}

{{/* The image reference: hub/image:tag[-variant], or `image` alone when it is already a full reference. */}}
{{- define "ztunnel.image" -}}
{{- if contains "/" .Values.image -}}
{{ .Values.image }}
{{- else -}}
{{ .Values.hub }}/{{ .Values.image }}:{{ .Values.tag | default .Chart.AppVersion }}{{ with .Values.variant }}-{{ . }}{{ end }}
{{- end -}}
{{- end }}

{{/* istiod's address for XDS and the CA: https://istiod[-<revision>].<istioNamespace>.svc:15012 (Istio's default). */}}
{{- define "ztunnel.istiodAddress" -}}
https://istiod{{ with .Values.revision }}-{{ . }}{{ end }}.{{ .Values.istioNamespace }}.svc:15012
{{- end }}

{{/*
The drain deadline ztunnel keeps inside the pod's grace period, as Istio's ztunnel computes it from
TERMINATION_GRACE_PERIOD_SECONDS: grace - 5 s when grace > 10 s, else grace - 1 s; at least 1 s.
*/}}
{{- define "ztunnel.terminationDeadline" -}}
{{- $grace := int .Values.terminationGracePeriodSeconds -}}
{{- $deadline := ternary (sub $grace 5) (sub $grace 1) (gt $grace 10) -}}
{{- max $deadline 1 }}s
{{- end }}

{{/* Labels on every object of the release. */}}
{{- define "ztunnel.labels" -}}
app.kubernetes.io/name: ztunnel
app.kubernetes.io/instance: {{ .Release.Name | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service | quote }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: istio
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | quote }}
istio.io/rev: {{ .Values.revision | default "default" | quote }}
{{- end }}

{{/* An env entry from a value of any scalar type, numbers without Go's 1e+06 form. */}}
{{- define "ztunnel.envValue" -}}
{{- if kindIs "string" . -}}
{{ . | quote }}
{{- else -}}
{{ toJson . | quote }}
{{- end -}}
{{- end }}
