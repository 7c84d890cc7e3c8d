{{/*
Helpers of the cni chart. They render nothing by themselves.
*/}}

{{/* The image reference: hub/image:tag[-variant], or `image` alone when it is already a full reference. */}}
{{- define "cni.image" -}}
{{- if contains "/" .Values.image -}}
{{ .Values.image }}
{{- else -}}
{{ .Values.hub }}/{{ .Values.image }}:{{ .Values.tag | default .Chart.AppVersion }}{{ with .Values.variant }}-{{ . }}{{ end }}
{{- end -}}
{{- end }}

{{/* Labels on every object of the release. */}}
{{- define "cni.labels" -}}
app.kubernetes.io/name: istio-cni
app.kubernetes.io/instance: {{ .Release.Name | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service | quote }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: istio
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | quote }}
istio.io/rev: {{ .Values.revision | default "default" | quote }}
{{- end }}

{{/* Name of a cluster-scoped object: <base>[-<revision>], so two revisions can coexist (as Istio). */}}
{{- define "cni.clusterName" -}}
{{ .base }}{{ with .root.Values.revision }}-{{ . }}{{ end }}
{{- end }}

{{/* An env entry from a value of any scalar type, numbers without Go's 1e+06 form. */}}
{{- define "cni.envValue" -}}
{{- if kindIs "string" . -}}
{{ . | quote }}
{{- else -}}
{{ toJson . | quote }}
{{- end -}}
{{- end }}
