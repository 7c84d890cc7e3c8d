{{/*
Helpers of the waypoint chart. They render nothing by themselves.
*/}}

{{/* The image reference: hub/image:tag[-variant], or `image` alone when it is already a full reference. */}}
{{- define "waypoint.image" -}}
{{- if contains "/" .Values.image -}}
{{ .Values.image }}
{{- else -}}
{{ .Values.hub }}/{{ .Values.image }}:{{ .Values.tag | default .Chart.AppVersion }}{{ with .Values.variant }}-{{ . }}{{ end }}
{{- end -}}
{{- end }}

{{/* istiod's address for XDS and the CA: https://istiod[-<revision>].<istioNamespace>.svc:15012 (Istio's default). */}}
{{- define "waypoint.istiodAddress" -}}
https://istiod{{ with .Values.revision }}-{{ . }}{{ end }}.{{ .Values.istioNamespace }}.svc:15012
{{- end }}

{{/* The Gateway's address: the value, or the Service's cluster hostname. */}}
{{- define "waypoint.address" -}}
{{ .Values.gateway.address | default (printf "%s.%s.svc.%s" .Values.name .Release.Namespace .Values.clusterDomain) }}
{{- end }}

{{/* Drain deadline inside the grace period, as Istio's ztunnel computes it: grace - 5 s when > 10 s, else - 1 s; at least 1 s. */}}
{{- define "waypoint.terminationDeadline" -}}
{{- $grace := int .Values.terminationGracePeriodSeconds -}}
{{- $deadline := ternary (sub $grace 5) (sub $grace 1) (gt $grace 10) -}}
{{- max $deadline 1 }}s
{{- end }}

{{/* Labels on every object of the release. */}}
{{- define "waypoint.labels" -}}
app.kubernetes.io/name: waypoint
app.kubernetes.io/instance: {{ .Release.Name | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service | quote }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: istio
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | quote }}
gateway.networking.k8s.io/gateway-name: {{ .Values.name | quote }}
{{- end }}

{{/* The pod selector: Istio's label for the pods of a Gateway. */}}
{{- define "waypoint.selector" -}}
gateway.networking.k8s.io/gateway-name: {{ .Values.name | quote }}
{{- end }}

{{/* An env entry from a value of any scalar type, numbers without Go's 1e+06 form. */}}
{{- define "waypoint.envValue" -}}
{{- if kindIs "string" . -}}
{{ . | quote }}
{{- else -}}
{{ toJson . | quote }}
{{- end -}}
{{- end }}
