{{/* Chart name, overridable. */}}
{{- define "kubeloop.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* "<release>-<chart>" (or just the release when it already holds the chart name), max 63 chars. */}}
{{- define "kubeloop.fullname" -}}
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

{{/* Labels every object carries. */}}
{{- define "kubeloop.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/part-of: kubeloop
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{ include "kubeloop.selectorLabels" . }}
{{- end -}}

{{/* Labels a selector matches: name and instance (add app.kubernetes.io/component per workload). */}}
{{- define "kubeloop.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kubeloop.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* An image reference: registry/repository, then @digest if set, else :tag (appVersion when empty).
     Call with (dict "root" $ "image" .Values.images.NAME). */}}
{{- define "kubeloop.image" -}}
{{- $image := .image -}}
{{- $ref := printf "%s/%s" .root.Values.images.registry $image.repository -}}
{{- if $image.digest -}}
{{- printf "%s@%s" $ref $image.digest -}}
{{- else -}}
{{- printf "%s:%s" $ref (default .root.Chart.AppVersion $image.tag) -}}
{{- end -}}
{{- end -}}

{{/* The restricted Pod Security profile, pod level. */}}
{{- define "kubeloop.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
fsGroup: 10001
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* The restricted Pod Security profile, container level, with a read-only root filesystem. */}}
{{- define "kubeloop.containerSecurityContext" -}}
runAsNonRoot: true
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* The store's S3 endpoint: the bundled MinIO's Service when it is on. */}}
{{- define "kubeloop.storeEndpoint" -}}
{{- if .Values.minio.enabled -}}
{{- printf "http://%s-minio.%s.svc:9000" (include "kubeloop.fullname" .) .Release.Namespace -}}
{{- else -}}
{{- .Values.store.endpoint -}}
{{- end -}}
{{- end -}}

{{/* The Secret holding the store's accesskey and secretkey. */}}
{{- define "kubeloop.storeSecret" -}}
{{- if .Values.minio.enabled -}}
{{- default (printf "%s-minio" (include "kubeloop.fullname" .)) .Values.minio.existingSecret -}}
{{- else -}}
{{- .Values.store.existingSecret -}}
{{- end -}}
{{- end -}}

{{/* Store env: the endpoint, and the credentials only by Secret reference. */}}
{{- define "kubeloop.storeEnv" -}}
- name: KUBELOOP_S3_ENDPOINT
  value: {{ include "kubeloop.storeEndpoint" . | quote }}
- name: AWS_ACCESS_KEY_ID
  valueFrom:
    secretKeyRef:
      name: {{ include "kubeloop.storeSecret" . }}
      key: accesskey
- name: AWS_SECRET_ACCESS_KEY
  valueFrom:
    secretKeyRef:
      name: {{ include "kubeloop.storeSecret" . }}
      key: secretkey
{{- end -}}

{{/* imagePullSecrets of every kubeloop pod. */}}
{{- define "kubeloop.pullSecrets" -}}
{{- with .Values.images.pullSecrets }}
imagePullSecrets:
{{- range . }}
  - name: {{ . }}
{{- end }}
{{- end }}
{{- end -}}
