{{/* The release's full name, at most 63 characters. */}}
{{- define "visionserve.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "visionserve.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "visionserve.labels" -}}
{{ include "visionserve.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* The server's config.yaml: server.config with auth.apiKeys merged in. */}}
{{- define "visionserve.config" -}}
{{- $cfg := dict -}}
{{- if .Values.server.config -}}
{{- $cfg = fromYaml .Values.server.config -}}
{{- if hasKey $cfg "Error" -}}
{{- fail (printf "server.config is not YAML: %s" (get $cfg "Error")) -}}
{{- end -}}
{{- end -}}
{{- if .Values.auth.apiKeys -}}
{{- $auth := get $cfg "auth" | default dict -}}
{{- $_ := set $auth "api_keys" (concat (get $auth "api_keys" | default list) .Values.auth.apiKeys) -}}
{{- $_ := set $cfg "auth" $auth -}}
{{- end -}}
{{- if and (not (hasKey $cfg "auth")) (not .Values.auth.disabled) -}}
{{- fail "visionserve refuses to start without credentials: set auth.apiKeys (visionserve auth hash-key), auth in server.config, or auth.disabled=true" -}}
{{- end -}}
{{- if $cfg -}}
{{- toYaml $cfg -}}
{{- end -}}
{{- end -}}

{{/* The job store: off, embedded or postgres ("off" may arrive as false). */}}
{{- define "visionserve.jobsStore" -}}
{{- $store := .Values.jobs.store | toString | lower -}}
{{- if or (eq $store "off") (eq $store "false") (eq $store "") -}}
off
{{- else if eq $store "embedded" -}}
{{- if gt (int .Values.replicaCount) 1 -}}
{{- fail (printf "jobs.store embedded keeps jobs in one pod's database, and replicaCount is %d: a job submitted through one pod would be 404 on the others. Use jobs.store postgres, or replicaCount 1" (int .Values.replicaCount)) -}}
{{- end -}}
embedded
{{- else if eq $store "postgres" -}}
{{- if not .Values.jobs.postgres.secretName -}}
{{- fail "jobs.store postgres needs jobs.postgres.secretName: a Secret holding the connection string" -}}
{{- end -}}
postgres
{{- else -}}
{{- fail (printf "jobs.store %q: use off, embedded or postgres" $store) -}}
{{- end -}}
{{- end -}}

{{/* "on" when encryption at rest is enabled, after checking its values. */}}
{{- define "visionserve.encryption" -}}
{{- $e := .Values.encryption | default dict -}}
{{- if $e.enabled -}}
{{- $ref := $e.kekSecret | default dict -}}
{{- if or (not $ref.name) (not $ref.key) -}}
{{- fail "encryption.enabled needs encryption.kekSecret.name and .key: the Secret holding the key-encryption key (visionserve keys new); the key never goes in the values" -}}
{{- end -}}
{{- if not (has ($e.algorithm | default "aes-256-gcm") (list "aes-256-gcm" "sm4-gcm")) -}}
{{- fail (printf "encryption.algorithm %q: use aes-256-gcm or sm4-gcm" $e.algorithm) -}}
{{- end -}}
{{- if .Values.server.config -}}
{{- if hasKey (fromYaml .Values.server.config) "encryption" -}}
{{- fail "server.config has an encryption section and encryption.enabled is set: keep one (encryption.kekSecret mounts the key from its Secret)" -}}
{{- end -}}
{{- end -}}
on
{{- end -}}
{{- end -}}
